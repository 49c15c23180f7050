//! Jobs in containers, rendered without a cluster: the default renderer's pyxis and apptainer scripts
//! against golden files (`SLURMKIT_BLESS=1` rewrites them), bad containers refused at their line, and
//! renderers that cannot run a container refusing the job rather than running it outside one.

use slurmkit_e2e::{Project, Run, artifacts, assert_golden};

/// Two jobs sharing `[job]`'s modules and environment, one per runtime, with values that need quoting.
const SLURMFILE: &str = r#"[job]
partition = "debug"
time = "10m"
modules = ["cuda/12.4"]
environment = { OMP_NUM_THREADS = "8", LABEL = "it's $(not run)" }

[jobs.train]
command = ["python", "train.py", "--data", "/data/it's here", "--note", "$(id); `id`"]
container = { image = "nvcr.io#nvidia/pytorch:24.05-py3", runtime = "pyxis", mounts = ["/scratch/data:/data:ro", "/scratch/out dir:/out"], workdir = "/workspace" }

[jobs.analyse]
script = """
cd /out
python analyse.py "$SLURMKIT_ARGS" > "summary of $(hostname).txt"
"""
container = { image = "/images/analysis.sif", runtime = "apptainer", mounts = ["/scratch/out dir:/out:rw"], workdir = "/out" }
"#;

fn render(project: &Project, job: &str) -> Run {
    project.run(&["render", job])
}

#[test]
fn a_job_in_a_pyxis_container_renders_as_the_golden_file() {
    let project = Project::new();
    project.slurmfile(SLURMFILE);
    let run = render(&project, "train");
    run.ok();
    assert_golden("container-pyxis.sbatch", &run.stdout);
}

#[test]
fn a_job_in_an_apptainer_container_renders_as_the_golden_file() {
    let project = Project::new();
    project.slurmfile(SLURMFILE);
    let run = render(&project, "analyse");
    run.ok();
    assert_golden("container-apptainer.sbatch", &run.stdout);
}

/// Each mistake is refused before anything is rendered, at the line it is written on, naming the
/// field and what to write instead.
#[test]
fn a_bad_container_is_refused_at_its_line() {
    for (container, line, message) in [
        (
            "container = { image = \"docker://ubuntu\", runtime = \"docker\" }",
            6,
            "unknown container runtime \"docker\"; container runtimes are: pyxis, apptainer",
        ),
        (
            "container = { image = \"docker://ubuntu\", runtime = \"pyxis\", mounts = [\"data:/data\"] }",
            6,
            "invalid container mount \"data:/data\": write SRC:DST or SRC:DST:ro|rw",
        ),
        (
            "container = { image = \"docker://ubuntu\" }",
            6,
            "a container needs a `runtime`: \"pyxis\"",
        ),
    ] {
        let project = Project::new();
        let path = project.slurmfile(&format!(
            "[job]\npartition = \"debug\"\n\n[jobs.bad]\ncommand = [\"true\"]\n{container}\n"
        ));
        let run = render(&project, "bad");
        run.expect_code(3)
            .stderr_contains(&format!("{}:{line}:", path.display()))
            .stderr_contains(message);
        assert!(run.stdout.is_empty(), "{}", run.stdout);
    }
}

/// A site renderer that cannot run containers refuses the job as `unsupported`, naming the field; one
/// built against 0.1, which has no containers, is refused the job by the host.
#[test]
fn renderers_that_cannot_run_a_container_refuse_the_job() {
    for (built, message) in [
        (
            artifacts::RUST_SITE_RENDERER,
            "plugin rust_site_renderer refused the job: field container cannot be expressed by this renderer".to_string(),
        ),
        (
            artifacts::V0_1_SITE_RENDERER,
            "renderer v0_1_site_renderer was built against slurmkit:plugin@0.1.x, which has no containers; rebuild it against 0.2.0".to_string(),
        ),
    ] {
        let project = Project::new();
        let renderer = project.install_plugin(built);
        project.slurmfile(&format!(
            "{SLURMFILE}\n[renderer]\nplugin = \"{renderer}\"\nconfig = {{ site = \"testsite\" }}\n"
        ));
        let run = render(&project, "train");
        run.expect_code(7).stderr_contains(&message);
        assert!(run.stdout.is_empty(), "{}", run.stdout);
    }
}

#[test]
fn the_javascript_site_renderer_refuses_a_container() {
    let built = artifacts::JS_SITE_RENDERER.unwrap_or_else(|reason| panic!("{reason}"));
    let project = Project::new();
    let renderer = project.install_plugin(built);
    project.slurmfile(&format!(
        "{SLURMFILE}\n[renderer]\nplugin = \"{renderer}\"\nconfig = {{ site = \"jsland\" }}\n"
    ));
    render(&project, "analyse")
        .expect_code(7)
        .stderr_contains("plugin js_site_renderer refused the job: field container cannot be expressed by this renderer");
}
