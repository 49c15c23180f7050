//! The first end-to-end path: render, submit over SSH, status, wait, logs, cancel; the host-key policy
//! and validation stopping bad input before anything reaches the cluster; the local backend.

use slurmkit_e2e::{Project, cluster, repo_root};

fn ssh_project(jobs: &str) -> Project {
    let project = Project::new();
    project.slurmfile(&format!("{}\n{jobs}", cluster().cluster_table()));
    project
}

#[test]
fn render_prints_the_example_script_without_a_cluster() {
    let project = Project::new();
    let example = repo_root().join("examples/hello/Slurmfile.toml");
    let run = project.run(&["--slurmfile", example.to_str().unwrap(), "render"]);
    run.ok();
    assert!(
        run.stdout
            .starts_with("#!/bin/bash\n#SBATCH --job-name=\"hello\"\n"),
        "{}",
        run.stdout
    );
    run.stdout_contains("#SBATCH --partition=\"debug\"")
        .stdout_contains("#SBATCH --time=\"00:02:00\"");
}

/// Without a Slurmfile or a command, `render` says that no Slurmfile was found, and where it looked.
#[test]
fn render_without_a_slurmfile_says_where_it_looked() {
    let project = Project::new();
    let run = project.run(&["render"]);
    run.expect_code(3)
        .stderr_contains(&format!(
            "no Slurmfile found in {} or any parent directory (looked for Slurmfile.toml",
            project.path().display()
        ))
        .stderr_contains("slurmkit submit -- python train.py");
}

/// Shell completions and the manual page come from the command line's own definition.
#[test]
fn completions_and_the_manual_page_are_generated() {
    let project = Project::new();
    let bash = project.run(&["completions", "bash"]);
    bash.ok().stdout_contains("_slurmkit()");
    for word in ["tunnel", "connect", "--jump", "--mine"] {
        bash.stdout_contains(word);
    }
    let checked = std::process::Command::new("bash")
        .args(["-n", "-c", &bash.stdout])
        .output()
        .unwrap();
    assert!(
        checked.status.success(),
        "{}",
        String::from_utf8_lossy(&checked.stderr)
    );
    for shell in ["zsh", "fish"] {
        project
            .run(&["completions", shell])
            .ok()
            .stdout_contains("tunnel");
    }
    let man = project.run(&["man"]);
    man.ok()
        .stdout_contains(".TH slurmkit 1")
        .stdout_contains("jump")
        .stdout_contains("tunnel");
    project.run(&["completions", "tcsh"]).expect_code(2);
}

#[test]
fn submit_over_ssh_with_reject_completes_and_output_comes_back() {
    let project = ssh_project(
        "[jobs.hello]\ncommand = [\"bash\", \"-c\", \"echo hello from slurmkit; echo oops >&2\"]\npartition = \"debug\"\ntime = \"2m\"\n",
    );
    let submit = project.run(&["submit", "--wait"]);
    submit.ok().stdout_contains("COMPLETED");
    let job_id = submit.first_line();
    assert!(
        job_id.chars().all(|c| c.is_ascii_digit()),
        "submit prints the job id first: {}",
        submit.stdout
    );

    project
        .run(&["logs", &job_id])
        .ok()
        .stdout_contains("hello from slurmkit");
    let stderr = project.run(&["logs", &job_id, "--stderr"]);
    stderr.ok();
    assert_eq!(stderr.stdout, "oops\n");

    let status = project.run(&["status", &job_id, "--json"]);
    status.ok();
    let json: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(json[0]["state"], "COMPLETED");
    assert_eq!(json[0]["exit_code"], 0);

    // The job directory holds the script (0750), the spec and the id sbatch printed.
    let dir = cluster()
        .job_dirs()
        .into_iter()
        .find(|d| d.starts_with("hello-"))
        .expect("job dir");
    let dir = cluster().user_home.join("slurm_jobs").join(dir);
    use std::os::unix::fs::PermissionsExt;
    let script = std::fs::metadata(dir.join("job.sbatch")).unwrap();
    assert_eq!(script.permissions().mode() & 0o777, 0o750);
    assert!(
        std::fs::read_to_string(dir.join("job.json"))
            .unwrap()
            .contains("\"name\": \"hello\"")
    );
}

#[test]
fn a_job_exiting_3_is_failed_with_exit_code_3() {
    let project = ssh_project("[jobs.fail]\ncommand = [\"bash\", \"-c\", \"exit 3\"]\n");
    let submit = project.run(&["submit"]);
    submit.ok();
    let job_id = submit.first_line();
    let wait = project.run(&["wait", &job_id]);
    wait.expect_code(10).stdout_contains("FAILED");
    let status = project.run(&["status", &job_id, "--json"]);
    let json: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(json[0]["state"], "FAILED");
    assert_eq!(json[0]["exit_code"], 3);
}

#[test]
fn cancelling_a_sleeping_job_makes_it_cancelled() {
    let project = ssh_project("[jobs.sleeper]\ncommand = [\"sleep\", \"300\"]\n");
    let job_id = project.run(&["submit"]).ok().first_line();
    project.run(&["cancel", &job_id]).ok();
    project
        .run(&["wait", &job_id, "--timeout", "60"])
        .expect_code(11)
        .stdout_contains("CANCELLED");
}

#[test]
fn reject_with_an_empty_known_hosts_refuses_before_authenticating() {
    let project = Project::new();
    let empty = project.write("known_hosts", "");
    let c = cluster();
    project.slurmfile(&format!(
        "[cluster]\nhostname = \"{}\"\nport = {}\nusername = \"{}\"\nhost_key_policy = \"reject\"\nkey_filename = \"{}\"\nknown_hosts = \"{}\"\n\n[job]\nname = \"{}\"\ncommand = [\"true\"]\n",
        c.host,
        c.port,
        c.user,
        c.key.display(),
        empty.display(),
        project.unique_name()
    ));
    let run = project.run(&["submit"]);
    run.expect_code(4)
        .stderr_contains("is not a known host")
        .stderr_contains("host_key_policy is \"reject\"")
        .stderr_contains(&format!("ssh-keyscan -p {} 127.0.0.1 >> ", c.port));
    assert!(run.stdout.is_empty());
    assert!(
        c.job_dirs_named(&project.unique_name()).is_empty(),
        "nothing may reach the cluster"
    );
    assert_eq!(
        std::fs::read_to_string(&empty).unwrap(),
        "",
        "reject must not record the key"
    );
}

#[test]
fn a_changed_host_key_is_refused_even_under_auto() {
    let project = Project::new();
    let other = project.path().join("other_key");
    let status = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&other)
        .status()
        .unwrap();
    assert!(status.success());
    let other_pub = std::fs::read_to_string(other.with_extension("pub")).unwrap();
    let c = cluster();
    let recorded = format!(
        "[127.0.0.1]:{} {}\n",
        c.port,
        other_pub
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ")
    );
    let known = project.write("known_hosts", &recorded);
    project.slurmfile(&format!(
        "[cluster]\nhostname = \"{}\"\nport = {}\nusername = \"{}\"\nhost_key_policy = \"auto\"\nkey_filename = \"{}\"\nknown_hosts = \"{}\"\n\n[job]\ncommand = [\"true\"]\n",
        c.host,
        c.port,
        c.user,
        c.key.display(),
        known.display()
    ));
    let run = project.run(&["submit"]);
    run.expect_code(4)
        .stderr_contains("REMOTE HOST IDENTIFICATION HAS CHANGED")
        .stderr_contains(&format!("{}:1 records SHA256:", known.display()))
        .stderr_contains(&format!(
            "ssh-keygen -R '[127.0.0.1]:{}' -f {}",
            c.port,
            known.display()
        ));
    assert_eq!(
        std::fs::read_to_string(&known).unwrap(),
        recorded,
        "auto must not touch a changed key"
    );
}

#[test]
fn hostile_job_names_are_rejected_before_anything_is_sent() {
    let project = ssh_project("[job]\ncommand = [\"true\"]\n");
    for hostile in [
        "x; rm -rf ~",
        "line\nbreak",
        "$(touch /tmp/pwned)",
        "`id`",
        "../escape",
    ] {
        project
            .run(&["submit", "--job-name", hostile])
            .expect_code(3)
            .stderr_contains("invalid job name");
    }
    // The same through the Slurmfile: the error names the file and line.
    project.slurmfile(&format!(
        "{}\n[job]\nname = \"x; rm -rf ~\"\ncommand = [\"true\"]\n",
        cluster().cluster_table()
    ));
    let run = project.run(&["submit"]);
    run.expect_code(3)
        .stderr_contains("Slurmfile.toml:10:8")
        .stderr_contains("invalid job name \"x; rm -rf ~\"");
    // No directory named after any of them (other tests may be creating theirs meanwhile).
    assert!(
        cluster()
            .job_dirs()
            .iter()
            .all(|d| !d.contains(';') && !d.contains('$') && !d.contains('`'))
    );
    assert!(!std::path::Path::new("/tmp/pwned").exists());
}

#[test]
fn the_local_backend_submits_with_local_sbatch() {
    let project = Project::new();
    project.slurmfile("[cluster]\nbackend = \"local\"\n\n[jobs.local-hello]\ncommand = [\"bash\", \"-c\", \"echo local says hi\"]\n");
    let submit = project.run(&["submit", "--wait"]);
    submit.ok().stdout_contains("COMPLETED");
    let job_id = submit.first_line();
    project
        .run(&["logs", &job_id])
        .ok()
        .stdout_contains("local says hi");
    let dirs: Vec<_> = std::fs::read_dir(project.home().join("slurm_jobs"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(dirs.len(), 1);
    assert!(
        dirs[0]
            .file_name()
            .to_string_lossy()
            .starts_with("local-hello-")
    );
}

/// The connection drops after sbatch queued the job but before its reply came back: the journal holds a
/// `submitting` record, the job directory holds the id sbatch wrote. The next command recovers it.
#[test]
fn a_job_whose_submission_reply_was_lost_is_recovered_by_the_next_command() {
    use slurmkit::journal::Journal;
    use slurmkit::types::names::{JobId, JobName};
    use slurmkit::types::spec::{JobSpec, Payload};

    let project = ssh_project("[job]\ncommand = [\"true\"]\n");
    let c = cluster();
    let name = project.unique_name();
    let job_dir = format!("{}/slurm_jobs/{name}-interrupted", c.user_home.display());
    let key = format!("ssh://{}@{}:{}", c.user, c.host, c.port);
    let spec = JobSpec::new(
        JobName::parse(&name).unwrap(),
        Payload::Command(vec!["echo".into(), "recovered".into()]),
    );
    let journal = Journal::open(&project.data_dir().join("journal.sqlite")).unwrap();
    let id = journal
        .begin_submission(&key, &job_dir, &spec, "builtin", &[])
        .unwrap();

    // What `slurmkit submit` sends, run by plain ssh; its reply is thrown away, as if the link dropped.
    let remote = format!(
        "mkdir -p {job_dir} && cd {job_dir} && printf '#!/bin/bash\\n#SBATCH --output=slurm-%%j.out\\necho recovered\\n' > job.sbatch && sbatch --parsable job.sbatch > .job_id.tmp && mv .job_id.tmp job_id"
    );
    let status = c.plain_ssh(&remote).status().unwrap();
    assert!(status.success());
    assert_eq!(journal.unresolved(&key).unwrap().len(), 1);

    let run = project.run(&["status"]);
    run.ok()
        .stderr_contains("whose submission was interrupted; it is journaled now");
    let record = journal.submission(id).unwrap().unwrap();
    let job_id: JobId = record.job_id.expect("recovered job id");
    assert!(journal.unresolved(&key).unwrap().is_empty());
    project
        .run(&["wait", job_id.as_str(), "--timeout", "60"])
        .ok();
    project
        .run(&["logs", job_id.as_str()])
        .ok()
        .stdout_contains("recovered");
}

/// sbatch's own options on `submit` and `render`, with sbatch's meanings: `-J` is the job name (jump
/// hosts are `--jump`), and each value is checked as the Slurmfile's would be.
#[test]
fn submit_takes_sbatchs_own_options() {
    let project = ssh_project("[job]\ncommand = [\"hostname\"]\n");
    let run = project.run(&[
        "render",
        "-J",
        "named",
        "-p",
        "debug",
        "-t",
        "5",
        "-A",
        "acct",
        "-q",
        "normal",
        "-N",
        "1-2",
        "-n",
        "2",
        "-c",
        "1",
        "--mem",
        "100M",
        "--gres",
        "gpu:1",
        "--gpus",
        "1",
        "-C",
        "fast",
        "--array",
        "0-3%2",
        "--dependency",
        "afterok:12",
        "-o",
        "out-%j.txt",
        "-e",
        "err-%j.txt",
        "-D",
        "/tmp/run dir",
    ]);
    run.ok();
    for line in [
        "#SBATCH --job-name=\"named\"",
        "#SBATCH --partition=\"debug\"",
        "#SBATCH --time=\"00:05:00\"",
        "#SBATCH --account=\"acct\"",
        "#SBATCH --qos=\"normal\"",
        "#SBATCH --nodes=\"1-2\"",
        "#SBATCH --ntasks=\"2\"",
        "#SBATCH --cpus-per-task=\"1\"",
        "#SBATCH --mem=\"100M\"",
        "#SBATCH --gres=\"gpu:1\"",
        "#SBATCH --gpus=\"1\"",
        "#SBATCH --constraint=\"fast\"",
        "#SBATCH --array=\"0-3%2\"",
        "#SBATCH --dependency=\"afterok:12\"",
        "#SBATCH --chdir=\"/tmp/run dir\"",
    ] {
        run.stdout_contains(line);
    }
    // Relative output paths are anchored in the job directory when the job runs elsewhere.
    run.stdout_contains("out-%j.txt\"")
        .stdout_contains("err-%j.txt\"");
    // A bad value names its flag.
    project
        .run(&["render", "--mem", "lots"])
        .expect_code(3)
        .stderr_contains("--mem:");
    project
        .run(&["render", "-n", "many"])
        .expect_code(2)
        .stderr_contains("--ntasks");
    // -J names the job; it is not a jump host.
    let name = project.unique_name();
    let run = project.run(&["submit", "-J", &name, "--wait"]);
    run.ok().stdout_contains("COMPLETED");
    assert_eq!(cluster().job_dirs_named(&name).len(), 1);
}
