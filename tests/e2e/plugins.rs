//! Plugins end to end: example renderers and callbacks in Rust, Python, JavaScript and C; hostile plugins
//! contained with a clear error while the job is still submitted and journaled; at-least-once delivery.

use std::path::Path;
use std::time::Duration;

use slurmkit::journal::{DeliveryState, Journal};
use slurmkit_e2e::{Project, Run, artifacts, cluster, eventually};

fn built(artifact: Result<&'static str, &'static str>) -> &'static str {
    artifact.unwrap_or_else(|reason| panic!("{reason}"))
}

fn sha256(path: &Path) -> String {
    slurmkit::plugin::sha256_hex(&std::fs::read(path).unwrap())
}

fn journal(project: &Project) -> Journal {
    Journal::open(&project.data_dir().join("journal.sqlite")).unwrap()
}

/// The project's Slurmfile: the test cluster, a quick job, and `plugins` (TOML for renderer/callbacks).
fn project_with(plugins: impl FnOnce(&Project) -> String) -> Project {
    let project = Project::new();
    let section = plugins(&project);
    project.slurmfile(&format!(
        "{}\n[jobs.plugged]\nname = \"{}\"\ncommand = [\"bash\", \"-c\", \"echo plugged in\"]\npartition = \"debug\"\ntime = \"2m\"\nmem = \"100M\"\n\n{section}",
        cluster().cluster_table(),
        project.unique_name()
    ));
    project
}

/// A submit that must succeed whatever the callbacks did: job id printed, job journaled as submitted.
#[track_caller]
fn submitted(project: &Project, run: &Run) -> String {
    run.ok();
    let job_id = run.first_line();
    let id = slurmkit::types::names::JobId::parse(&job_id)
        .unwrap_or_else(|_| panic!("no job id printed:\n{}\n{}", run.stdout, run.stderr));
    let key = format!(
        "ssh://{}@{}:{}",
        cluster().user,
        cluster().host,
        cluster().port
    );
    let record = journal(project)
        .find_by_job_id(&key, &id)
        .unwrap()
        .expect("the job is journaled");
    assert!(record.job_id.is_some());
    job_id
}

#[test]
fn inspect_reports_world_version_imports_and_hash() {
    let project = Project::new();
    let run = project.run(&["plugin", "inspect", "--json", artifacts::RUST_LEDGER]);
    run.ok();
    let json: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(json["world"], "callbacks");
    assert_eq!(json["wit_version"], "0.2.0");
    assert_eq!(json["sha256"], sha256(Path::new(artifacts::RUST_LEDGER)));
    assert!(
        json["imports"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i == "slurmkit:plugin/host@0.2.0")
    );
    assert_eq!(
        json["exports"],
        serde_json::json!(["subscriptions", "on-event"])
    );
    let run = project.run(&["plugin", "inspect", "--json", artifacts::WRONG_VERSION]);
    let json: serde_json::Value = serde_json::from_str(&run.ok().stdout).unwrap();
    assert_eq!(json["wit_version"], "1.0.0");
}

#[test]
fn every_example_plugin_passes_plugin_check() {
    let project = Project::new();
    let python = project.install_plugin(built(artifacts::PYTHON_NOTIFY));
    let ledger = project.install_plugin(artifacts::RUST_LEDGER);
    project.slurmfile(&format!(
        "[[callbacks]]\nplugin = \"{python}\"\nconfig = {{ channel = \"#check\" }}\n[callbacks.grants]\nwrite = [\"outbox\"]\n\n[[callbacks]]\nplugin = \"{ledger}\"\n[callbacks.grants]\nwrite = [\"ledger\"]\n"
    ));
    for plugin in [
        artifacts::RUST_SITE_RENDERER,
        built(artifacts::JS_SITE_RENDERER),
        built(artifacts::C_LOGGER),
        &python,
        &ledger,
    ] {
        let run = project.run(&["plugin", "check", plugin]);
        run.ok().stdout_contains("passed");
    }
    // The Python notifier asked for three events only, and wrote one message each.
    let outbox = std::fs::read_to_string(project.path().join("outbox/check.jsonl")).unwrap();
    assert_eq!(outbox.lines().count(), 3, "{outbox}");
    assert_eq!(
        std::fs::read_to_string(project.path().join("ledger/events.tsv"))
            .unwrap()
            .lines()
            .count(),
        13
    );
}

#[test]
fn site_renderer_and_callbacks_in_three_languages_follow_a_job() {
    let project = project_with(|project| {
        let renderer = project.install_plugin(artifacts::RUST_SITE_RENDERER);
        let hash = sha256(&project.path().join(&renderer));
        let ledger = project.install_plugin(artifacts::RUST_LEDGER);
        let python = project.install_plugin(built(artifacts::PYTHON_NOTIFY));
        let c_logger = project.install_plugin(built(artifacts::C_LOGGER));
        format!(
            "[renderer]\nplugin = \"{renderer}\"\nsha256 = \"{hash}\"\nconfig = {{ site = \"testsite\" }}\n\n\
             [[callbacks]]\nplugin = \"{ledger}\"\n[callbacks.grants]\nwrite = [\"ledger\"]\n\n\
             [[callbacks]]\nplugin = \"{python}\"\nconfig = {{ channel = \"#hpc\" }}\n[callbacks.grants]\nwrite = [\"outbox\"]\n\n\
             [[callbacks]]\nplugin = \"{c_logger}\"\nconfig = {{ prefix = \"audit\" }}\nevents = [\"submitted\", \"completed\"]\n"
        )
    });
    // The site renderer's script is what gets submitted.
    let script = project.run(&["render"]);
    script
        .ok()
        .stdout_contains("#SBATCH --comment=\"site:testsite\"")
        .stdout_contains("module purge");

    let run = project.run(&["submit", "--wait"]);
    let job_id = submitted(&project, &run);
    run.stdout_contains("COMPLETED");
    let name = project.unique_name();
    run.stderr_contains(&format!("audit: submitted job={name} id={job_id}"))
        .stderr_contains(&format!("audit: completed job={name} id={job_id}"));
    assert!(
        !run.stderr.contains("audit: packaging-begin"),
        "the Slurmfile's events list narrows the C logger"
    );

    let ledger = std::fs::read_to_string(project.path().join("ledger/events.tsv")).unwrap();
    for kind in [
        "PackagingBegin",
        "PackagingEnd",
        "SubmitBegin",
        "Submitted",
        "StatusChanged",
        "Completed",
    ] {
        assert!(
            ledger.contains(&format!("\t{kind}\t")),
            "ledger lacks {kind}:\n{ledger}"
        );
    }
    let outbox = std::fs::read_to_string(project.path().join("outbox/hpc.jsonl")).unwrap();
    let kinds: Vec<String> = outbox
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["kind"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(kinds, ["submitted", "completed"]);

    // Every delivery is journaled as delivered, exactly once per (event, plugin).
    for delivery in journal(&project).deliveries_of("completed").unwrap() {
        assert_eq!(
            (delivery.state.as_str(), delivery.attempts),
            ("delivered", 1),
            "{}",
            delivery.plugin
        );
    }
    // Observing the job again queues nothing new.
    project.run(&["status", &job_id]).ok();
    assert_eq!(
        std::fs::read_to_string(project.path().join("ledger/events.tsv")).unwrap(),
        ledger
    );
}

/// The examples as they were built for 0.1 (frozen copies in tests/plugins, against wit/0.1.0) load
/// and work unchanged: the renderer renders the same script as its 0.2 build, the ledger gets the job's
/// events.
#[test]
fn plugins_built_against_0_1_keep_loading_and_working() {
    let project = project_with(|project| {
        let renderer = project.install_plugin(artifacts::V0_1_SITE_RENDERER);
        let ledger = project.install_plugin(artifacts::V0_1_LEDGER);
        format!(
            "[renderer]\nplugin = \"{renderer}\"\nconfig = {{ site = \"testsite\" }}\n\n\
             [[callbacks]]\nplugin = \"{ledger}\"\n[callbacks.grants]\nwrite = [\"ledger\"]\n"
        )
    });
    // Checked as the Slurmfile configures them (the ledger with its write grant).
    for (plugin, version) in [
        ("plugins/v0_1_site_renderer.wasm", "0.1.0"),
        ("plugins/v0_1_ledger.wasm", "0.1.0"),
        (artifacts::RUST_SITE_RENDERER, "0.2.0"),
    ] {
        let run = project.run(&["plugin", "inspect", "--json", plugin]);
        let json: serde_json::Value = serde_json::from_str(&run.ok().stdout).unwrap();
        assert_eq!(json["wit_version"], version, "{plugin}");
        project
            .run(&["plugin", "check", plugin])
            .ok()
            .stdout_contains("passed");
    }
    let old = project.run(&["render"]);
    old.ok()
        .stdout_contains("#SBATCH --comment=\"site:testsite\"");
    // The same job through the 0.2 build of the same example renders the same script.
    let slurmfile = std::fs::read_to_string(project.path().join("Slurmfile.toml")).unwrap();
    let current = project.install_plugin(artifacts::RUST_SITE_RENDERER);
    project.slurmfile(&slurmfile.replace("plugins/v0_1_site_renderer.wasm", &current));
    let new = project.run(&["render"]);
    assert_eq!(new.ok().stdout, old.stdout);
    project.slurmfile(&slurmfile);

    let run = project.run(&["submit", "--wait"]);
    submitted(&project, &run);
    run.stdout_contains("COMPLETED");
    let ledger = std::fs::read_to_string(project.path().join("ledger/events.tsv")).unwrap();
    for kind in ["Submitted", "StatusChanged", "Completed"] {
        assert!(
            ledger.contains(&format!("\t{kind}\t")),
            "ledger lacks {kind}:\n{ledger}"
        );
    }
}

#[test]
fn javascript_site_renderer_submits_a_job() {
    let project = project_with(|project| {
        let renderer = project.install_plugin(built(artifacts::JS_SITE_RENDERER));
        format!(
            "[renderer]\nplugin = \"{renderer}\"\nconfig = {{ site = \"jsland\", constraint = \"cpu\" }}\n"
        )
    });
    let render = project.run(&["render"]);
    render
        .ok()
        .stdout_contains("#SBATCH --constraint=\"cpu\"")
        .stdout_contains("exec 'bash' '-c' 'echo plugged in'");
    let run = project.run(&["submit", "--wait"]);
    let job_id = submitted(&project, &run);
    run.stdout_contains("COMPLETED");
    project
        .run(&["logs", &job_id])
        .ok()
        .stdout_contains("plugged in");

    // A value the renderer cannot put in an #SBATCH line is refused with its field: nothing is created.
    let text = std::fs::read_to_string(project.path().join("Slurmfile.toml")).unwrap();
    std::fs::write(
        project.path().join("Slurmfile.toml"),
        text.replace("constraint = \"cpu\"", "constraint = \"\""),
    )
    .unwrap();
    let dirs = cluster().job_dirs_named(&project.unique_name()).len();
    project
        .run(&["submit"])
        .expect_code(7)
        .stderr_contains("refused the job: field constraint");
    assert_eq!(cluster().job_dirs_named(&project.unique_name()).len(), dirs);
}

/// A hostile callback subscribed to `submitted` only, with the given attack, grants and limits.
fn hostile(attack: &str, extra: &str) -> Project {
    project_with(|project| {
        let plugin = project.install_plugin(artifacts::HOSTILE_CALLBACK);
        format!(
            "[[callbacks]]\nplugin = \"{plugin}\"\nname = \"hostile\"\nconfig = {{ attack = \"{attack}\", on = \"submitted\" }}\n{extra}\n"
        )
    })
}

#[track_caller]
fn contained(run: &Run, denials: &[&str]) {
    assert!(
        !run.stderr.contains("BREACH"),
        "the sandbox leaked:\n{}",
        run.stderr
    );
    for denial in denials {
        run.stderr_contains(denial);
    }
}

#[test]
fn a_plugin_cannot_read_host_files_without_a_grant() {
    let project = hostile("read-host-file", "");
    let run = project.run(&["submit"]);
    submitted(&project, &run);
    contained(
        &run,
        &[
            "denied: read /etc/passwd",
            "denied: read ../../../../etc/passwd",
            "denied: read /proc/self/environ",
        ],
    );
}

#[test]
fn a_plugin_cannot_write_outside_its_grant() {
    let outside = tempfile::tempdir().unwrap();
    let project = hostile(
        "write-outside-grant",
        "[callbacks.grants]\nwrite = [\"ledger\"]\nread = [\"inputs\"]\n",
    );
    std::fs::create_dir_all(project.path().join("ledger")).unwrap();
    std::fs::create_dir_all(project.path().join("inputs")).unwrap();
    std::os::unix::fs::symlink(outside.path(), project.path().join("ledger/link-out")).unwrap();
    let run = project.run(&["submit"]);
    submitted(&project, &run);
    contained(
        &run,
        &[
            "denied: write ledger/../escaped.txt",
            "denied: write /tmp/slurmkit-escaped.txt",
            "denied: write ledger/link-out/escaped.txt",
            "denied: write inputs/escaped.txt",
            "allowed: write ledger/inside.txt",
            "denied: symlink ledger/link-absolute -> /etc",
            "denied: symlink ledger/link-up -> ../..",
            "denied: symlink ledger/link-down-and-up -> sub/../../..",
            "allowed: symlink ledger/link-inside -> inside.txt",
        ],
    );
    for refused in ["link-absolute", "link-up", "link-down-and-up"] {
        let link = project.path().join("ledger").join(refused);
        assert!(link.symlink_metadata().is_err(), "{refused} was created");
    }
    assert_eq!(
        std::fs::read_link(project.path().join("ledger/link-inside")).unwrap(),
        Path::new("inside.txt")
    );
    assert!(!project.path().join("escaped.txt").exists());
    assert!(!Path::new("/tmp/slurmkit-escaped.txt").exists());
    assert!(!outside.path().join("escaped.txt").exists());
    assert!(!project.path().join("inputs/escaped.txt").exists());
    assert!(project.path().join("ledger/inside.txt").exists());
}

#[test]
fn a_plugin_cannot_open_a_socket() {
    let target = format!("127.0.0.1:{}", cluster().port);
    let project = project_with(|project| {
        let plugin = project.install_plugin(artifacts::HOSTILE_CALLBACK);
        format!(
            "[[callbacks]]\nplugin = \"{plugin}\"\nconfig = {{ attack = \"socket\", on = \"submitted\", target = \"{target}\" }}\n"
        )
    });
    let run = project.run(&["submit"]);
    submitted(&project, &run);
    contained(&run, &[&format!("denied: connect {target}")]);
}

#[test]
fn a_plugin_sees_only_granted_environment_variables() {
    let project = hostile("env", "");
    let output = project
        .command(&["submit"])
        .env("SLURMKIT_SECRET", "hunter2")
        .output()
        .unwrap();
    let run = Run::new(&["submit"], output);
    submitted(&project, &run);
    contained(
        &run,
        &[
            "denied: env SLURMKIT_SECRET",
            "denied: env HOME",
            "visible env: []",
        ],
    );
    assert!(!run.stderr.contains("hunter2"));
}

#[test]
fn a_plugin_that_loops_forever_is_stopped_at_its_time_limit() {
    let project = hostile("loop", "limits = { timeout = \"300ms\" }\n");
    let run = project.run(&["submit"]);
    submitted(&project, &run);
    run.stderr_contains("plugin hostile failed during on-event(submitted): it did not finish within its 300ms time limit");
}

#[test]
fn a_plugin_that_allocates_past_its_cap_runs_out_of_memory() {
    let project = hostile("alloc", "limits = { memory = \"16M\" }\n");
    let run = project.run(&["submit"]);
    submitted(&project, &run);
    run.stderr_contains("plugin hostile failed during on-event(submitted): it ran out of memory")
        .stderr_contains("past its 16 MiB limit");
}

#[test]
fn a_plugin_that_recurses_forever_overflows_its_stack() {
    let project = hostile("recurse", "");
    let run = project.run(&["submit"]);
    submitted(&project, &run);
    run.stderr_contains(
        "plugin hostile failed during on-event(submitted): it overflowed its stack",
    );
}

#[test]
fn a_plugin_that_floods_the_log_hits_its_output_limit() {
    let project = hostile("flood", "limits = { output = \"8K\" }\n");
    let run = project.run(&["submit"]);
    submitted(&project, &run);
    run.stderr_contains("it exceeded its output limit (8192 bytes of log per call)");
    assert!(
        run.stderr.len() < 64 << 10,
        "the flood reached the terminal: {} bytes",
        run.stderr.len()
    );
}

#[test]
fn a_plugin_that_traps_mid_event_is_reported_with_its_message() {
    let project = hostile("trap", "[callbacks.grants]\nwrite = [\"ledger\"]\n");
    let run = project.run(&["submit"]);
    submitted(&project, &run);
    run.stderr_contains("it trapped (panicked or aborted)")
        .stderr_contains("boom in the middle of on-event");
}

#[test]
fn plugins_for_another_wit_major_or_with_missing_imports_are_refused_by_name() {
    let project = project_with(|project| {
        format!(
            "[renderer]\nplugin = \"{}\"\n",
            project.install_plugin(artifacts::WRONG_VERSION)
        )
    });
    project
        .run(&["submit"])
        .expect_code(7)
        .stderr_contains("targets slurmkit:plugin@1.0.0, which this slurmkit cannot load: it loads slurmkit:plugin@0.1.x and 0.2.x only");
    assert!(cluster().job_dirs_named(&project.unique_name()).is_empty());
    let project = project_with(|project| {
        format!(
            "[renderer]\nplugin = \"{}\"\n",
            project.install_plugin(artifacts::EXTRA_IMPORT)
        )
    });
    project.run(&["submit"]).expect_code(7).stderr_contains(
        "imports `slurmkit:plugin/secrets@0.1.0`, which slurmkit does not provide",
    );
    assert!(cluster().job_dirs_named(&project.unique_name()).is_empty());
}

/// Compiling happens once, in a child process under the plugin's compile limits: one that would take
/// too long, or too much memory, is stopped with the limit named and how to raise it.
#[test]
fn compiling_a_plugin_is_bounded_in_time_and_memory() {
    let js = built(artifacts::JS_SITE_RENDERER);
    for (limit, expected) in [
        ("compile_time = \"1s\"", "went past its time limit (1s)"),
        (
            "compile_memory = \"300M\"",
            "went past its memory limit (300 MiB)",
        ),
    ] {
        let project = Project::new();
        project.slurmfile(&format!(
            "[renderer]\nplugin = \"{}\"\nlimits = {{ {limit} }}\n\n[job]\ncommand = [\"true\"]\n",
            project.install_plugin(js)
        ));
        let started = std::time::Instant::now();
        let output = project
            .command(&["render"])
            .env("SLURMKIT_CACHE_DIR", project.path().join("cold-cache"))
            .output()
            .unwrap();
        let run = Run::new(&["render"], output);
        run.expect_code(7)
            .stderr_contains(expected)
            .stderr_contains("raise the limit in its Slurmfile entry: limits = {");
        assert!(started.elapsed() < std::time::Duration::from_secs(30));
    }
}

#[test]
fn an_import_with_another_signature_is_named_as_such() {
    let project = project_with(|project| {
        format!(
            "[renderer]\nplugin = \"{}\"\n",
            project.install_plugin(artifacts::MISMATCHED_IMPORT)
        )
    });
    project.run(&["render"]).expect_code(7).stderr_contains(
        "imports `slurmkit:plugin/host@0.1.0` with a signature slurmkit does not provide",
    );
}

/// What a plugin says reaches the terminal bounded and with its control characters shown, one log
/// line per call: it cannot flood, clear the screen, set the title or print a line of slurmkit's own.
#[test]
fn what_a_plugin_says_is_bounded_and_cannot_drive_the_terminal() {
    let render = |attack: &str| {
        let project = project_with(|project| {
            let plugin = project.install_plugin(artifacts::HOSTILE_RENDERER);
            format!("[renderer]\nplugin = \"{plugin}\"\nconfig = {{ attack = \"{attack}\" }}\n")
        });
        project.run(&["render"])
    };
    let honest = |stderr: &str| {
        assert!(!stderr.contains('\u{1b}') && !stderr.contains('\r') && !stderr.contains('\u{7}'));
        assert!(
            stderr
                .lines()
                .all(|l| !l.starts_with("slurmkit: plugin check: passed")
                    && !l.starts_with("error: FAKE")),
            "a forged line:\n{stderr}"
        );
    };
    let huge = render("huge-error");
    huge.expect_code(7).stderr_contains("more bytes cut]");
    assert!(
        huge.stderr.len() < 100_000,
        "{} bytes of stderr",
        huge.stderr.len()
    );
    let terminal = render("terminal-error");
    terminal.expect_code(7).stderr_contains(
        "refused\\n\\e[2J\\e]0;owned\\x{7}\\rerror: FAKE\\nslurmkit: plugin check: passed",
    );
    honest(&terminal.stderr);
    let logged = render("fake-log-line");
    logged
        .ok()
        .stderr_contains("fine\\nslurmkit: plugin check: passed\\r\\e[31m");
    honest(&logged.stderr);
    render("exit")
        .expect_code(7)
        .stderr_contains("it called exit(0) instead of returning a result");
}

#[test]
fn a_wrong_sha256_refuses_the_plugin_but_not_the_job() {
    let project = project_with(|project| {
        let plugin = project.install_plugin(artifacts::RUST_LEDGER);
        format!(
            "[[callbacks]]\nplugin = \"{plugin}\"\nsha256 = \"{}\"\n[callbacks.grants]\nwrite = [\"ledger\"]\n",
            "0".repeat(64)
        )
    });
    let run = project.run(&["submit"]);
    let job_id = submitted(&project, &run);
    let good = sha256(Path::new(artifacts::RUST_LEDGER));
    run.stderr_contains("does not match its pinned sha256")
        .stderr_contains(&format!("update the Slurmfile's sha256 to {good}"));
    assert!(
        !project.path().join("ledger/events.tsv").exists(),
        "a plugin with the wrong hash never runs"
    );
    // Its events wait in the journal: once the pin is fixed, the next command delivers them.
    assert_eq!(
        journal(&project).deliveries_of("submitted").unwrap()[0].state,
        "pending"
    );
    let slurmfile = project.path().join("Slurmfile.toml");
    let text = std::fs::read_to_string(&slurmfile)
        .unwrap()
        .replace(&"0".repeat(64), &good);
    std::fs::write(&slurmfile, text).unwrap();
    project.run(&["status", &job_id]).ok();
    let ledger = std::fs::read_to_string(project.path().join("ledger/events.tsv")).unwrap();
    assert!(
        ledger.contains(&format!("\tSubmitted\t{job_id}\t")),
        "{ledger}"
    );

    // A renderer with the wrong hash stops the submission before anything is created.
    let project = project_with(|project| {
        format!(
            "[renderer]\nplugin = \"{}\"\nsha256 = \"{}\"\n",
            project.install_plugin(artifacts::RUST_SITE_RENDERER),
            "f".repeat(64)
        )
    });
    project
        .run(&["submit"])
        .expect_code(7)
        .stderr_contains("does not match its pinned sha256");
    assert!(cluster().job_dirs_named(&project.unique_name()).is_empty());
}

#[test]
fn a_lying_or_refusing_renderer_is_reported_and_nothing_is_submitted() {
    for (attack, expected) in [
        ("no-shebang", "the script does not start with #!"),
        ("huge", "over the 1 MiB limit"),
        (
            "refuse",
            "refused the job: field gpus cannot be expressed by this renderer: this site has no GPUs",
        ),
        ("loop", "did not finish within its 300ms time limit"),
    ] {
        let project = project_with(|project| {
            let plugin = project.install_plugin(artifacts::HOSTILE_RENDERER);
            format!(
                "[renderer]\nplugin = \"{plugin}\"\nconfig = {{ attack = \"{attack}\" }}\nlimits = {{ timeout = \"300ms\" }}\n"
            )
        });
        project
            .run(&["submit"])
            .expect_code(7)
            .stderr_contains(expected);
        assert!(
            cluster().job_dirs_named(&project.unique_name()).is_empty(),
            "{attack}"
        );
    }
}

#[test]
fn a_callback_that_fails_twice_is_delivered_once_after_retries() {
    let project = hostile("fail-twice", "[callbacks.grants]\nwrite = [\"ledger\"]\n");
    let run = project.run(&["submit"]);
    let job_id = submitted(&project, &run);
    run.stderr_contains("transient failure 1 (attempt 1 of 8; will retry)")
        .stderr_contains("transient failure 2 (attempt 2 of 8; will retry)");
    let delivered = std::fs::read_to_string(project.path().join("ledger/delivered.txt")).unwrap();
    assert_eq!(delivered.lines().count(), 1, "{delivered}");
    assert!(
        delivered.ends_with(" 3\n"),
        "succeeded on the third attempt: {delivered}"
    );
    let deliveries = journal(&project).deliveries_of("submitted").unwrap();
    assert_eq!(
        deliveries,
        vec![DeliveryState {
            plugin: format!(
                "{}#hostile",
                project.path().join("Slurmfile.toml").display()
            ),
            state: "delivered".into(),
            attempts: 3,
            last_error: None
        }]
    );
    // Later runs do not deliver it again.
    project.run(&["status", &job_id]).ok();
    assert_eq!(
        std::fs::read_to_string(project.path().join("ledger/delivered.txt")).unwrap(),
        delivered
    );
}

#[test]
fn killing_the_cli_during_a_callback_still_delivers_it_on_the_next_run() {
    let project = hostile(
        "hang-first",
        "limits = { timeout = \"60s\" }\n[callbacks.grants]\nwrite = [\"ledger\"]\n",
    );
    let mut child = project
        .command(&["submit"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The first delivery attempt has started (and hangs) once the plugin has counted it.
    let attempts = project.path().join("ledger/attempts");
    let started = eventually(Duration::from_secs(60), || {
        std::fs::read_to_string(&attempts)
            .ok()
            .filter(|c| c.trim() == "1")
    });
    assert!(started.is_some(), "the callback never started");
    child.kill().unwrap();
    let output = child.wait_with_output().unwrap();
    let job_id = String::from_utf8_lossy(&output.stdout)
        .lines()
        .next()
        .unwrap_or("")
        .trim()
        .to_string();
    assert!(
        !job_id.is_empty(),
        "the job id was printed before the callback ran"
    );
    // The job is journaled, its delivery is pending.
    let pending = journal(&project).deliveries_of("submitted").unwrap();
    assert_eq!(pending[0].state, "pending");

    // Any later run that connects delivers what is pending.
    project.run(&["status", &job_id]).ok();
    let delivered = std::fs::read_to_string(project.path().join("ledger/delivered.txt")).unwrap();
    assert_eq!(delivered, format!("submitted {job_id} attempt 2\n"));
    assert_eq!(
        journal(&project).deliveries_of("submitted").unwrap()[0].state,
        "delivered"
    );
}

#[test]
fn an_array_job_gets_job_level_status_events() {
    let project = project_with(|project| {
        let ledger = project.install_plugin(artifacts::RUST_LEDGER);
        format!(
            "[[callbacks]]\nplugin = \"{ledger}\"\nevents = [\"submitted\", \"completed\", \"failed\"]\n[callbacks.grants]\nwrite = [\"ledger\"]\n"
        )
    });
    let text = std::fs::read_to_string(project.path().join("Slurmfile.toml")).unwrap();
    let text = text.replace("mem = \"100M\"\n", "mem = \"100M\"\narray = \"0-2\"\n");
    std::fs::write(project.path().join("Slurmfile.toml"), text).unwrap();
    let run = project.run(&["submit", "--wait"]);
    let job_id = submitted(&project, &run);
    run.stdout_contains(&format!("{job_id}_2"))
        .stdout_contains("COMPLETED");
    let ledger = std::fs::read_to_string(project.path().join("ledger/events.tsv")).unwrap();
    assert!(
        ledger.contains(&format!("\tCompleted\t{job_id}\t")),
        "{ledger}"
    );
    assert_eq!(
        ledger
            .lines()
            .filter(|l| l.contains("\tCompleted\t"))
            .count(),
        1,
        "one event for the whole array: {ledger}"
    );
}

/// Two projects whose callbacks share a name and a journal never receive each other's events.
#[test]
fn callbacks_of_different_projects_are_kept_apart() {
    let a = project_with(|project| {
        let ledger = project.install_plugin(artifacts::RUST_LEDGER);
        // Pinned to the wrong hash: A's events wait in the journal.
        format!(
            "[[callbacks]]\nplugin = \"{ledger}\"\nsha256 = \"{}\"\n[callbacks.grants]\nwrite = [\"ledger\"]\n",
            "0".repeat(64)
        )
    });
    let job_id = submitted(&a, &a.run(&["submit"]));
    let b = project_with(|project| {
        let ledger = project.install_plugin(artifacts::RUST_LEDGER);
        format!("[[callbacks]]\nplugin = \"{ledger}\"\n[callbacks.grants]\nwrite = [\"ledger\"]\n")
    });
    // B runs with A's journal: A's pending events are not B's to deliver.
    let output = b
        .command(&["status", &job_id])
        .env("SLURMKIT_DATA_DIR", a.data_dir())
        .output()
        .unwrap();
    Run::new(&["status"], output).ok();
    let b_ledger = std::fs::read_to_string(b.path().join("ledger/events.tsv")).unwrap_or_default();
    assert!(
        !b_ledger.contains(&job_id),
        "B's plugin received A's events:\n{b_ledger}"
    );
    assert!(
        journal(&a)
            .deliveries_of("submitted")
            .unwrap()
            .iter()
            .all(|d| d.state == "pending")
    );
}
