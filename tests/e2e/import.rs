//! `slurmkit import`, without a cluster: the Python SDK's Slurmfile and a pyproject.toml's
//! `[tool.slurm]` converted into Slurmfiles that load and render, what has no equivalent listed on
//! stderr, `--output` never replacing a file without `--force`, and input that is not TOML refused
//! at its line.

use slurmkit_e2e::Project;

/// Two environments over `[default]`, as the SDK's users write them, with a Python callback and a
/// password slurmkit does not take.
const SDK_SLURMFILE: &str = r#"[default.cluster]
backend = "ssh"
job_base_dir = "~/slurm_jobs"

[default.cluster.backend_config]
hostname = "login.hpc.example.edu"
username = "alice"
host_key_policy = "reject"
default_account = "proj42"

[default.submit]
partition = "debug"
time = "00:30:00"
mem = "4G"

[default.packaging]
type = "wheel"

[dev.cluster]
backend = "local"

[prod.cluster.backend_config]
hostname = "hpc-prod.example.edu"
password = "hunter2"

[prod.submit]
partition = "gpu"
time = "1-00:00:00"
cpus_per_task = 16
mail_type = "END"

[[prod.callbacks]]
target = "myproject.callbacks:SlackNotifier"
kwargs = { channel = "ml-jobs" }
"#;

#[test]
fn an_sdk_slurmfile_imports_into_one_that_renders_and_lists_what_it_left_out() {
    let project = Project::new();
    project.write("sdk/Slurmfile", SDK_SLURMFILE);
    let run = project.run(&["import", "sdk/Slurmfile", "--output", "Slurmfile.toml"]);
    run.ok()
        .stderr_contains("not carried over: prod.callbacks[0]: \"myproject.callbacks:SlackNotifier\": a Python callback")
        .stderr_contains("not carried over: prod.cluster.backend_config.password: passwords are never copied")
        .stderr_contains("not carried over: default.packaging.type:");
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    let written = std::fs::read_to_string(project.path().join("Slurmfile.toml")).unwrap();
    assert!(!written.contains("hunter2"), "{written}");
    assert!(
        written.contains("#   prod.callbacks[0]: \"myproject.callbacks:SlackNotifier\""),
        "{written}"
    );

    let prod = project.run(&[
        "--slurmfile",
        "Slurmfile.toml",
        "--env",
        "prod",
        "render",
        "--",
        "python",
        "train.py",
    ]);
    prod.ok()
        .stdout_contains("#SBATCH --partition=\"gpu\"")
        .stdout_contains("#SBATCH --time=\"1-00:00:00\"")
        .stdout_contains("#SBATCH --account=\"proj42\"")
        .stdout_contains("#SBATCH --cpus-per-task=\"16\"")
        .stdout_contains("#SBATCH --mail-type=\"END\"");
    // Without --env: the SDK's [default], now [environments.default].
    project
        .run(&["--slurmfile", "Slurmfile.toml", "render", "--", "true"])
        .ok()
        .stdout_contains("#SBATCH --partition=\"debug\"")
        .stdout_contains("#SBATCH --time=\"00:30:00\"");
}

/// Printed on stdout by default; `--env` narrows it, and a `SLURM_ENV` left set for the other
/// commands does not.
#[test]
fn environments_are_converted_as_asked_on_the_command_line_only() {
    let project = Project::new();
    project.write("Slurmfile.sdk", SDK_SLURMFILE);
    let all = project
        .command(&["import", "Slurmfile.sdk"])
        .env("SLURM_ENV", "dev")
        .output()
        .unwrap();
    assert!(all.status.success());
    let all = String::from_utf8(all.stdout).unwrap();
    for table in [
        "[environments.default.cluster]",
        "[environments.dev.cluster]",
        "[environments.prod.job]",
    ] {
        assert!(all.contains(table), "{table} missing:\n{all}");
    }
    let run = project.run(&["import", "Slurmfile.sdk", "--env", "dev"]);
    run.ok()
        .stdout_contains("# Environments not converted (not asked for): prod")
        .stdout_contains("[environments.dev.cluster]");
    assert!(!run.stdout.contains("[environments.prod"), "{}", run.stdout);
    project
        .run(&["import", "Slurmfile.sdk", "--env", "staging"])
        .expect_code(3)
        .stderr_contains("environment \"staging\" is not defined (defined: default, dev, prod)");
}

#[test]
fn a_pyproject_tool_slurm_table_imports() {
    let project = Project::new();
    project.write(
        "pyproject.toml",
        r#"[project]
name = "mlproj"
version = "0.1.0"

[tool.slurm.default.cluster]
backend = "ssh"
backend_config = { hostname = "hpc.example.edu", username = "bob" }

[tool.slurm.default.submit]
partition = "cpu"
time = 120

[tool.slurm.gpu.submit]
partition = "gpu"
gres = "gpu:a100:2"
"#,
    );
    project
        .run(&["import", "pyproject.toml", "-o", "Slurmfile.toml"])
        .ok();
    project
        .run(&["--env", "gpu", "render", "--", "nvidia-smi"])
        .ok()
        .stdout_contains("#SBATCH --partition=\"gpu\"")
        .stdout_contains("#SBATCH --gres=\"gpu:a100:2\"")
        .stdout_contains("#SBATCH --time=\"02:00:00\"");

    project.write("other/pyproject.toml", "[project]\nname = \"x\"\n");
    project
        .run(&["import", "other/pyproject.toml"])
        .expect_code(3)
        .stderr_contains("no [tool.slurm] table");
}

#[test]
fn output_is_never_replaced_without_force() {
    let project = Project::new();
    project.write("sdk.toml", SDK_SLURMFILE);
    let existing = project.write("Slurmfile.toml", "# mine\n");
    let run = project.run(&["import", "sdk.toml", "--output", "Slurmfile.toml"]);
    run.expect_code(18)
        .stderr_contains("exists: not replacing it")
        .stderr_contains("--force");
    assert_eq!(std::fs::read_to_string(&existing).unwrap(), "# mine\n");
    project
        .run(&[
            "import",
            "sdk.toml",
            "--output",
            "Slurmfile.toml",
            "--force",
        ])
        .ok();
    let written = std::fs::read_to_string(&existing).unwrap();
    assert!(written.contains("[environments.prod.job]"), "{written}");
    // Nothing but the two files: no temporary left behind.
    let names: Vec<String> = std::fs::read_dir(project.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".toml") || n.starts_with('.'))
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

#[test]
fn input_that_is_not_toml_is_refused_at_its_line() {
    let project = Project::new();
    let path = project.write(
        "Slurmfile",
        "[default.cluster]\nbackend = \"ssh\"\n\n[prod.submit]\npartition = gpu\n",
    );
    let run = project.run(&["import", path.to_str().unwrap()]);
    run.expect_code(3)
        .stderr_contains(&format!(
            "error: {}:5:13: string values must be quoted",
            path.display()
        ))
        .stderr_contains("5 | partition = gpu");
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    project.write(
        "plain.toml",
        "[cluster]\nhostname = \"x\"\n\n[job]\npartition = \"p\"\n",
    );
    project
        .run(&["import", "plain.toml"])
        .expect_code(3)
        .stderr_contains("a slurmkit Slurmfile already");
}
