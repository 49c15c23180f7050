use super::*;
use crate::config::Slurmfile;

/// A Slurmfile as the SDK's users write it (its loader's schema: environments at the top, `default`
/// under all of them), with what slurmkit has no place for.
const SDK_SLURMFILE: &str = r#"
[default.cluster]
backend = "ssh"
job_base_dir = "~/slurm_jobs"

[default.cluster.backend_config]
hostname = "login.hpc.example.edu"
username = "alice"
port = 22
key_filename = "~/.ssh/id_ed25519"
host_key_policy = "reject"
banner_timeout = 30
default_account = "proj42"

[default.packaging]
type = "wheel"
build_tool = "uv"
python_version = "3.11"

[default.submit]
partition = "debug"
time = "00:30:00"
mem = "4G"
mail-type = "END"

[default]
callbacks = ["myproject.callbacks:SlackNotifier"]

[prod.cluster.backend_config]
hostname = "hpc-prod.example.edu"
password = "hunter2"
timeout = 12.5
env = { HF_HOME = "/scratch/hf", OMP_NUM_THREADS = 8 }

[prod.submit]
partition = "gpu"
time = "1-00:00:00"
cpus_per_task = "16"
memory = "1.5G"
gpus = 4
exclusive = true
mail_user = "alice@example.edu"
requeue = true
no_kill = false

[prod.packaging]
type = "container"
image = "nvcr.io#nvidia/pytorch:24.05-py3"
mounts = ["/scratch:/scratch"]
workdir = "/workspace"
modules = ["cuda/12.4"]
push = false
srun_args = ["--mpi=pmix"]

[[prod.callbacks]]
target = "slurm.callbacks:LoggerCallback"
kwargs = { poll_interval = 2.0 }

[dev.cluster]
backend = "local"
"#;

fn convert_sdk(text: &str, only: &[&str]) -> Conversion {
    let only: Vec<String> = only.iter().map(|s| s.to_string()).collect();
    convert(Path::new("/p/Slurmfile"), text, &only).unwrap_or_else(|e| panic!("{e}"))
}

fn load(conversion: &Conversion, env: Option<&str>) -> Slurmfile {
    Slurmfile::parse(Path::new("/out/Slurmfile.toml"), &conversion.text, env)
        .unwrap_or_else(|e| panic!("{e}\n{}", conversion.text))
}

fn dropped_at<'a>(conversion: &'a Conversion, path: &str) -> &'a Dropped {
    conversion
        .dropped
        .iter()
        .find(|d| d.path == path)
        .unwrap_or_else(|| panic!("{path} not listed: {:#?}", conversion.dropped))
}

#[test]
fn an_sdk_slurmfile_converts_into_one_that_loads_under_every_environment() {
    let conversion = convert_sdk(SDK_SLURMFILE, &[]);
    assert_eq!(conversion.environments, ["default", "dev", "prod"]);

    let default = load(&conversion, None);
    let cluster = default.settings.cluster.as_ref().unwrap();
    assert_eq!(cluster.hostname.as_deref(), Some("login.hpc.example.edu"));
    assert_eq!(cluster.username.as_deref(), Some("alice"));
    assert_eq!(cluster.port, Some(22));
    assert_eq!(cluster.key_filename.as_deref(), Some("~/.ssh/id_ed25519"));
    assert_eq!(
        cluster.host_key_policy,
        Some(crate::types::HostKeyPolicy::Reject)
    );
    assert_eq!(
        cluster.job_base_dir.as_ref().unwrap().as_str(),
        "~/slurm_jobs"
    );
    let job = &default.settings.job.as_ref().unwrap().0;
    assert_eq!(job.partition.as_ref().unwrap().as_str(), "debug");
    assert_eq!(job.account.as_ref().unwrap().as_str(), "proj42");
    assert_eq!(job.time.unwrap().seconds(), 1800);
    assert_eq!(job.mem.unwrap().mebibytes(), 4096);
    assert!(job.container.is_none());

    // prod: over default, its own values where it sets them.
    let prod = load(&conversion, Some("prod"));
    let cluster = prod.settings.cluster.as_ref().unwrap();
    assert_eq!(cluster.hostname.as_deref(), Some("hpc-prod.example.edu"));
    assert_eq!(cluster.username.as_deref(), Some("alice"));
    assert_eq!(cluster.connect_timeout, Some(13));
    let job = &prod.settings.job.as_ref().unwrap().0;
    assert_eq!(job.partition.as_ref().unwrap().as_str(), "gpu");
    assert_eq!(job.account.as_ref().unwrap().as_str(), "proj42");
    assert_eq!(job.time.unwrap().seconds(), 86_400);
    assert_eq!(job.cpus_per_task, Some(16));
    assert_eq!(job.mem.unwrap().mebibytes(), 1536);
    assert_eq!(job.gpus.as_ref().unwrap().as_str(), "4");
    assert_eq!(job.exclusive, Some(true));
    assert_eq!(
        job.modules.as_ref().unwrap()[0].as_str(),
        "cuda/12.4",
        "module loads carry over"
    );
    let env = job.environment.as_ref().unwrap();
    assert_eq!(env["HF_HOME"].as_str(), "/scratch/hf");
    assert_eq!(env["OMP_NUM_THREADS"].as_str(), "8");
    let directives: Vec<&str> = job
        .extra_directives
        .as_ref()
        .unwrap()
        .iter()
        .map(|d| d.as_str())
        .collect();
    assert_eq!(
        directives,
        [
            "--mail-type=END",
            "--mail-user=alice@example.edu",
            "--requeue"
        ],
        "default's options are kept under prod, as the SDK merged [submit]"
    );
    let container = job.container.as_ref().unwrap();
    assert_eq!(container.image.as_str(), "nvcr.io#nvidia/pytorch:24.05-py3");
    assert_eq!(container.mounts.len(), 1);
    assert_eq!(container.runtime, crate::wit::ContainerRuntime::Pyxis);

    let dev = load(&conversion, Some("dev"));
    assert_eq!(
        dev.settings.cluster.as_ref().unwrap().backend,
        Some(crate::config::BackendKind::Local)
    );
}

#[test]
fn what_has_no_equivalent_is_listed_with_why_and_nothing_is_silently_dropped() {
    let conversion = convert_sdk(SDK_SLURMFILE, &[]);
    let paths: Vec<&str> = conversion.dropped.iter().map(|d| d.path.as_str()).collect();
    for path in [
        "default.callbacks[0]",
        "default.cluster.backend_config.banner_timeout",
        "default.packaging.build_tool",
        "default.packaging.python_version",
        "default.packaging.type",
        "prod.callbacks[0]",
        "prod.cluster.backend_config.password",
        "prod.packaging.push",
        "prod.packaging.srun_args",
        "prod.submit.no_kill",
    ] {
        assert!(paths.contains(&path), "{path} not in {paths:#?}");
    }
    assert_eq!(paths.len(), 10, "{paths:#?}");
    let callback = dropped_at(&conversion, "default.callbacks[0]");
    assert!(
        callback
            .why
            .contains("\"myproject.callbacks:SlackNotifier\"")
            && callback.why.contains("WebAssembly"),
        "{callback}"
    );
    assert!(
        dropped_at(&conversion, "prod.callbacks[0]")
            .why
            .contains("slurm.callbacks:LoggerCallback")
    );
    // A password is named, never shown.
    assert!(!conversion.text.contains("hunter2"), "{}", conversion.text);
    assert!(
        !conversion
            .dropped
            .iter()
            .any(|d| d.to_string().contains("hunter2"))
    );
    // The same list heads the file, as comments.
    let (header, _) = conversion.text.split_once("\n\n").unwrap();
    for item in &conversion.dropped {
        assert!(header.contains(&format!("#   {item}")), "{header}");
    }
    assert!(header.lines().all(|l| l.starts_with('#')), "{header}");
}

#[test]
fn environments_under_an_environments_table_and_a_root_default_merge_as_the_sdk_merges() {
    let text = r#"
[default.submit]
partition = "debug"
account = "a1"

[environments.default.submit]
partition = "normal"

[environments.prod.submit]
time = 90

[other]
x = 1
"#;
    let conversion = convert_sdk(text, &[]);
    assert_eq!(conversion.environments, ["default", "prod"]);
    let prod = load(&conversion, Some("prod"));
    let job = &prod.settings.job.as_ref().unwrap().0;
    assert_eq!(job.partition.as_ref().unwrap().as_str(), "normal");
    assert_eq!(job.account.as_ref().unwrap().as_str(), "a1");
    assert_eq!(job.time.unwrap().seconds(), 5400);
    assert_eq!(dropped_at(&conversion, "other").path, "other");
}

#[test]
fn a_pyproject_tool_slurm_table_is_read_as_the_root() {
    let text = r#"
[project]
name = "mlproj"

[tool.ruff]
line-length = 100

[tool.slurm.default.cluster]
backend = "ssh"
backend_config = { hostname = "hpc", username = "bob" }

[tool.slurm.default.submit]
partition = "cpu"
time = "2:00:00"

[tool.slurm.gpu.submit]
partition = "gpu"
gres = "gpu:a100:2"
unknown_table_key = [1, 2]

[tool.slurm.gpu.extra]
k = 1
"#;
    let conversion = convert(Path::new("/p/pyproject.toml"), text, &[]).unwrap();
    let gpu = load(&conversion, Some("gpu"));
    assert_eq!(
        gpu.settings.cluster.as_ref().unwrap().hostname.as_deref(),
        Some("hpc")
    );
    let job = &gpu.settings.job.as_ref().unwrap().0;
    assert_eq!(job.partition.as_ref().unwrap().as_str(), "gpu");
    assert_eq!(job.gres.as_ref().unwrap().as_str(), "gpu:a100:2");
    assert_eq!(job.time.unwrap().seconds(), 7200);
    dropped_at(&conversion, "tool.slurm.gpu.submit.unknown_table_key");
    dropped_at(&conversion, "tool.slurm.gpu.extra");
    assert!(
        !conversion.dropped.iter().any(|d| d.path.contains("ruff")),
        "the rest of pyproject.toml is not the SDK's: {:#?}",
        conversion.dropped
    );

    let err = convert(
        Path::new("/p/pyproject.toml"),
        "[project]\nname = \"x\"\n",
        &[],
    )
    .unwrap_err();
    assert!(err.to_string().contains("no [tool.slurm] table"), "{err}");
    assert_eq!(err.exit_code(), exit::CONFIG);
}

#[test]
fn invalid_toml_and_files_that_are_not_the_sdks_are_refused_with_where() {
    let err = convert(
        Path::new("/p/Slurmfile"),
        "[default.cluster]\nbackend = \"ssh\"\nhostname = \n",
        &[],
    )
    .unwrap_err();
    assert_eq!(err.exit_code(), exit::CONFIG);
    let ImportError::Toml(ConfigError::Parse { line, .. }) = &err else {
        panic!("{err}")
    };
    assert_eq!(*line, 3, "{err}");
    assert!(err.to_string().starts_with("/p/Slurmfile:3:"), "{err}");

    let err = convert(
        Path::new("/p/Slurmfile.toml"),
        "[cluster]\nhostname = \"x\"\n\n[job]\npartition = \"p\"\n",
        &[],
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("slurmkit Slurmfile already"),
        "{err}"
    );
    assert_eq!(err.exit_code(), exit::CONFIG);

    let err = convert(Path::new("/p/x.toml"), "a = 1\n[b]\nc = 2\n", &[]).unwrap_err();
    assert!(matches!(err, ImportError::NotSdk { .. }), "{err}");
    assert!(crate::error::hints(&err)[0].contains("[tool.slurm]"));
}

#[test]
fn only_the_environments_asked_for_are_converted_over_default() {
    let conversion = convert_sdk(SDK_SLURMFILE, &["prod"]);
    assert_eq!(conversion.environments, ["default", "prod"]);
    assert!(
        conversion
            .text
            .contains("# Environments not converted (not asked for): dev"),
        "{}",
        conversion.text
    );
    load(&conversion, Some("prod"));

    let err = convert(
        Path::new("/p/Slurmfile"),
        SDK_SLURMFILE,
        &["staging".to_string()],
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "/p/Slurmfile: environment \"staging\" is not defined (defined: default, dev, prod)"
    );
}

/// Values the loader refuses are listed with its own message; hostile text is shown escaped in the
/// comments, never as a line of its own.
#[test]
fn values_slurmkit_refuses_are_listed_with_the_loaders_reason() {
    let text = "[default.submit]\npartition = \"gpu; rm -rf ~\"\ntime = \"UNLIMITED\"\n\"evil\\nkey\" = \"x\\ny\"\n\n[default.cluster]\nbackend = \"slurmrestd\"\nbackend_config = { hostname = \"-oProxyCommand=x\", gss_auth = true, key_filename = [\"a\", \"b\"] }\n";
    let conversion = convert_sdk(text, &[]);
    assert!(
        dropped_at(&conversion, "default.submit.partition")
            .why
            .contains("invalid partition")
    );
    assert!(
        dropped_at(&conversion, "default.submit.time")
            .why
            .contains("invalid time limit")
    );
    dropped_at(&conversion, "default.cluster.backend");
    dropped_at(&conversion, "default.cluster.backend_config.hostname");
    dropped_at(&conversion, "default.cluster.backend_config.gss_auth");
    dropped_at(
        &conversion,
        "default.cluster.backend_config.key_filename[1]",
    );
    let evil = dropped_at(&conversion, "default.submit.\"evil\\nkey\"");
    assert!(!evil.to_string().contains('\n'), "{evil}");
    let (header, body) = conversion.text.split_once("\n\n").unwrap();
    assert!(header.lines().all(|l| l.starts_with('#')), "{header}");
    let file = load(&conversion, None);
    assert_eq!(
        file.settings
            .cluster
            .as_ref()
            .unwrap()
            .key_filename
            .as_deref(),
        Some("a")
    );
    assert!(!body.contains("rm -rf"), "{body}");
}

#[test]
fn packaging_strings_and_a_container_set_in_default_carry_into_environments() {
    let text = r#"
[default.cluster]
backend = "ssh"
backend_config = { hostname = "h", default_packaging = "container:docker://ubuntu:24.04" }

[default.packaging]
type = "container"
image = "/images/app.sif"

[prod.packaging]
mounts = ["/data:/data:ro"]
"#;
    let conversion = convert_sdk(text, &[]);
    let prod = load(&conversion, Some("prod"));
    let container = prod
        .settings
        .job
        .as_ref()
        .unwrap()
        .0
        .container
        .clone()
        .unwrap();
    assert_eq!(container.image.as_str(), "/images/app.sif");
    assert_eq!(container.mounts.len(), 1);
    assert!(conversion.dropped.is_empty(), "{:#?}", conversion.dropped);
    assert!(
        conversion
            .text
            .contains("# Every setting was carried over.")
    );
}
