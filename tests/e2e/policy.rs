//! Site policies end to end: the Rust and Python examples amend, refuse and see job ids through the
//! real binary and cluster; the site layer's policies run first whatever the user's Slurmfile says;
//! what a policy returns is checked as a Slurmfile's values are; an 0.1 component is no policy.

use std::path::{Path, PathBuf};

use slurmkit::journal::{Journal, Submission};
use slurmkit_e2e::{Project, Run, artifacts, cluster, cluster_if_up};

fn sha256(path: &Path) -> String {
    slurmkit::plugin::sha256_hex(&std::fs::read(path).unwrap())
}

fn python() -> &'static str {
    artifacts::PYTHON_SITE_POLICY.unwrap_or_else(|reason| panic!("{reason}"))
}

/// The Rust example as a `[[policy]]` entry of a file in `dir`: partition `short` by default, at most
/// 5 minutes and 4 GPUs, submitted ids logged in `policy-log/`.
fn rust_policy(dir: &Path, name: &str, extra: &str) -> String {
    let plugin = slurmkit_e2e::install_plugin(dir, artifacts::RUST_SITE_POLICY);
    let hash = sha256(&dir.join(&plugin));
    format!(
        "[[policy]]\nplugin = \"{plugin}\"\nname = \"{name}\"\nsha256 = \"{hash}\"\n\
         config = {{ default_partition = \"short\", max_time_minutes = 5, max_gpus = 4, log_dir = \"policy-log\"{extra} }}\n\
         [policy.grants]\nwrite = [\"policy-log\"]\n"
    )
}

/// A project whose one job asks for `job` (TOML lines), with `policies` after it.
fn project(job: &str, policies: impl FnOnce(&Project) -> String) -> Project {
    let project = Project::new();
    let section = policies(&project);
    let cluster_table = cluster_if_up()
        .map(|c| c.cluster_table())
        .unwrap_or_default();
    project.slurmfile(&format!(
        "{cluster_table}\n[jobs.policed]\nname = \"{}\"\ncommand = [\"bash\", \"-c\", \"echo policed\"]\n{job}\n\n{section}",
        project.unique_name()
    ));
    project
}

fn journaled(project: &Project) -> Vec<Submission> {
    let c = cluster();
    let key = format!("ssh://{}@{}:{}", c.user, c.host, c.port);
    Journal::open(&project.data_dir().join("journal.sqlite"))
        .unwrap()
        .recent(&key, 10)
        .unwrap()
}

/// The job directory on the cluster of the one job `project` submitted.
fn job_dir(project: &Project) -> PathBuf {
    let dirs = cluster().job_dirs_named(&project.unique_name());
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    cluster().user_home.join("slurm_jobs").join(&dirs[0])
}

#[track_caller]
fn submitted_id(run: &Run) -> String {
    run.ok();
    let id = run.first_line();
    assert!(
        id.chars().all(|c| c.is_ascii_digit()) && !id.is_empty(),
        "{}",
        run.stderr
    );
    id
}

#[test]
fn an_amended_job_is_submitted_journaled_and_seen_by_post_submit() {
    let project = project("time = \"30m\"\n", |p| rust_policy(p.path(), "limits", ""));
    let run = project.run(&["submit"]);
    let id = submitted_id(&run);

    // The policy filled in the partition and cut the time limit: the script submitted says so.
    let script = std::fs::read_to_string(job_dir(&project).join("job.sbatch")).unwrap();
    assert!(script.contains("#SBATCH --partition=\"short\""), "{script}");
    assert!(script.contains("#SBATCH --time=\"00:05:00\""), "{script}");

    // The journal holds the spec as amended, and which policy passed it.
    let records = journaled(&project);
    assert_eq!(records.len(), 1);
    let record = &records[0];
    assert_eq!(record.job_id.as_ref().unwrap().as_str(), id);
    assert_eq!(record.spec.partition.as_ref().unwrap().as_str(), "short");
    assert_eq!(record.spec.time_limit.unwrap().seconds(), 300);
    assert_eq!(record.policies.len(), 1);
    assert_eq!(record.policies[0].name, "limits");
    assert_eq!(
        record.policies[0].sha256,
        sha256(Path::new(artifacts::RUST_SITE_POLICY))
    );

    // post-submit saw the id sbatch returned.
    let log = std::fs::read_to_string(project.path().join("policy-log/submitted.tsv")).unwrap();
    assert_eq!(
        log,
        format!("{id}\t{}\tshort\t5\n", project.unique_name()),
        "{log}"
    );
}

#[test]
fn a_refused_job_exits_7_with_the_policys_message_and_sends_nothing() {
    let project = project("gpus = \"8\"\ntime = \"2m\"\n", |p| {
        rust_policy(p.path(), "limits", "")
    });
    let run = project.run(&["submit"]);
    run.expect_code(7)
        .stderr_contains("site policy limits refused the job")
        .stderr_contains("asks for 8 GPUs; this site allows at most 4 per job");
    assert_eq!(run.stdout, "", "no job id");
    assert!(
        cluster().job_dirs_named(&project.unique_name()).is_empty(),
        "no job directory is created for a refused job"
    );
    assert!(journaled(&project).is_empty(), "nothing is journaled");
    assert!(!project.path().join("policy-log/submitted.tsv").exists());
    // `render` shows the same refusal.
    project
        .run(&["render"])
        .expect_code(7)
        .stderr_contains("at most 4 per job");
}

#[test]
fn the_site_layers_policies_run_first_without_the_users_slurmfile_naming_them() {
    // The user's own policy is the Python example; the site's is the Rust one.
    let project = project("time = \"2h\"\n", |p| {
        let plugin = slurmkit_e2e::install_plugin(p.path(), python());
        format!(
            "[[policy]]\nplugin = \"{plugin}\"\nconfig = {{ site = \"testsite\", require_time = true }}\n[policy.grants]\nwrite = [\"audit\"]\n"
        )
    });
    let site = project.path().join("site");
    std::fs::create_dir_all(site.join("policy-log")).unwrap();
    std::fs::write(
        site.join("Slurmfile.toml"),
        rust_policy(&site, "site-limits", ""),
    )
    .unwrap();

    let run = project.run(&["submit"]);
    let id = submitted_id(&run);
    let script = std::fs::read_to_string(job_dir(&project).join("job.sbatch")).unwrap();
    // The site's policy (its partition and limit), then the user's (its variables).
    assert!(script.contains("#SBATCH --partition=\"short\""), "{script}");
    assert!(script.contains("#SBATCH --time=\"00:05:00\""), "{script}");
    assert!(script.contains("export SITE='testsite'"), "{script}");
    assert!(
        script.contains("export SLURMKIT_POLICY='python-site-policy'"),
        "{script}"
    );
    let record = &journaled(&project)[0];
    let names: Vec<&str> = record.policies.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["site-limits", "python_site_policy"]);
    // Each post-submit saw the id, in its own granted directory.
    let site_log = std::fs::read_to_string(site.join("policy-log/submitted.tsv")).unwrap();
    assert!(site_log.starts_with(&format!("{id}\t")), "{site_log}");
    let audit = std::fs::read_to_string(project.path().join(format!("audit/{id}.json"))).unwrap();
    let audit: serde_json::Value = serde_json::from_str(&audit).unwrap();
    assert_eq!(audit["partition"], "short");
    assert_eq!(audit["time_limit_seconds"], 300);

    // A user's Slurmfile without any [[policy]] still gets the site's.
    let plain = self::project("time = \"2h\"\n", |_| String::new());
    let site = plain.path().join("site");
    std::fs::create_dir_all(&site).unwrap();
    std::fs::write(
        site.join("Slurmfile.toml"),
        rust_policy(&site, "site-limits", ""),
    )
    .unwrap();
    plain
        .run(&["render"])
        .ok()
        .stdout_contains("#SBATCH --partition=\"short\"")
        .stdout_contains("#SBATCH --time=\"00:05:00\"");
}

#[test]
fn the_python_policy_refuses_a_job_without_a_time_limit() {
    let project = project("", |p| {
        let plugin = slurmkit_e2e::install_plugin(p.path(), python());
        format!(
            "[[policy]]\nplugin = \"{plugin}\"\nname = \"timekeeper\"\nconfig = {{ require_time = true }}\n"
        )
    });
    project
        .run(&["render"])
        .expect_code(7)
        .stderr_contains("site policy timekeeper refused the job: job ")
        .stderr_contains("has no time limit: set `time`");
}

#[test]
fn a_policy_returning_an_invalid_value_is_an_error_naming_it_and_the_field() {
    let project = project("time = \"2m\"\n", |p| {
        rust_policy(p.path(), "broken", "").replace(
            "default_partition = \"short\"",
            "default_partition = \"no such\"",
        )
    });
    project
        .run(&["render"])
        .expect_code(7)
        .stderr_contains(
            "site policy broken returned an unusable job from setup-defaults: field partition",
        )
        .stderr_contains("invalid partition \"no such\"");
}

#[test]
fn a_bad_site_file_names_its_line_and_an_0_1_component_is_no_policy() {
    let project = project("time = \"2m\"\n", |_| String::new());
    project.write(
        "site/Slurmfile.toml",
        "[[policy]]\nplugin = \"x.wasm\"\nplugn = 1\n",
    );
    project
        .run(&["render"])
        .expect_code(3)
        .stderr_contains("site/Slurmfile.toml:3:1")
        .stderr_contains("unknown field `plugn`");

    let old = project.path().join("site");
    let plugin = slurmkit_e2e::install_plugin(&old, artifacts::V0_1_LEDGER);
    project.write(
        "site/Slurmfile.toml",
        &format!("[[policy]]\nplugin = \"{plugin}\"\nname = \"old\"\n"),
    );
    project.run(&["render"]).expect_code(7).stderr_contains(
        "policy old was built against slurmkit:plugin@0.1.0, which has no policy world",
    );
}

#[test]
fn plugin_check_runs_a_policy() {
    let project = Project::new();
    // `check` takes the Python policy's grants from the Slurmfile entry naming it: its post-submit
    // writes an audit record.
    let python = slurmkit_e2e::install_plugin(project.path(), python());
    project.slurmfile(&format!(
        "[[policy]]\nplugin = \"{python}\"\n[policy.grants]\nwrite = [\"audit\"]\n"
    ));
    for plugin in [artifacts::RUST_SITE_POLICY, python.as_str()] {
        project
            .run(&["plugin", "check", plugin])
            .ok()
            .stdout_contains("(policy,")
            .stdout_contains("ok    pre-submit")
            .stdout_contains("passed");
    }
    let inspect = project.run(&["plugin", "inspect", "--json", artifacts::RUST_SITE_POLICY]);
    let json: serde_json::Value = serde_json::from_str(&inspect.ok().stdout).unwrap();
    assert_eq!(json["world"], "policy");
}
