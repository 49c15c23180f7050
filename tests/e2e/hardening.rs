//! Hostile input and hostile job directories: reads that a swap cannot steer out of the job directory,
//! a FIFO that cannot hang `logs`, a closed stdout, values that are refused or quoted, cancelling what
//! Slurm does not know, and a module that fails to load.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use slurmkit::journal::Journal;
use slurmkit::types::names::JobId;
use slurmkit_e2e::{Project, cluster};

fn ssh_project(jobs: &str) -> Project {
    let project = Project::new();
    project.slurmfile(&format!("{}\n{jobs}", cluster().cluster_table()));
    project
}

/// A finished job's id and its job directory on the cluster.
fn finished_job(project: &Project) -> (String, std::path::PathBuf) {
    let submit = project.run(&["submit", "--wait"]);
    submit.ok();
    let job_id = submit.first_line();
    let c = cluster();
    let key = format!("ssh://{}@{}:{}", c.user, c.host, c.port);
    let record = Journal::open(&project.data_dir().join("journal.sqlite"))
        .unwrap()
        .find_by_job_id(&key, &JobId::parse(&job_id).unwrap())
        .unwrap()
        .expect("journaled");
    (job_id, record.job_dir.into())
}

#[test]
fn a_file_swapped_for_a_link_while_logs_reads_it_is_never_read_outside() {
    let project = ssh_project("[job]\ncommand = [\"echo\", \"inside\"]\ntime = \"1m\"\n");
    let (job_id, dir) = finished_job(&project);
    let c = cluster();
    let secret = c
        .user_home
        .join(format!("{}-secret", project.unique_name()));
    std::fs::write(&secret, "TOP SECRET\n").unwrap();
    let out = dir.join(format!("slurm-{job_id}.out"));
    // Swap the output between a regular file and a link to the secret, as fast as rename allows.
    let stop = Arc::new(AtomicBool::new(false));
    let swapper = {
        let (stop, out, secret, dir) = (stop.clone(), out.clone(), secret.clone(), dir.clone());
        std::thread::spawn(move || {
            let (link, file) = (dir.join(".swap-link"), dir.join(".swap-file"));
            while !stop.load(Ordering::Relaxed) {
                let _ = std::fs::remove_file(&link);
                let _ = std::os::unix::fs::symlink(&secret, &link);
                let _ = std::fs::rename(&link, &out);
                let _ = std::fs::write(&file, "inside\n");
                let _ = std::fs::rename(&file, &out);
            }
        })
    };
    let (mut read, mut refused) = (0, 0);
    for _ in 0..120 {
        let run = project.run(&["logs", &job_id]);
        assert!(
            !run.stdout.contains("SECRET"),
            "logs read outside the job directory:\n{}",
            run.stdout
        );
        match run.code {
            Some(0) => read += 1,
            _ => refused += 1,
        }
    }
    stop.store(true, Ordering::Relaxed);
    swapper.join().unwrap();
    assert!(
        read + refused == 120 && refused > 0,
        "the swap was seen ({read} read, {refused} refused)"
    );
    let _ = std::fs::remove_file(secret);
}

#[test]
fn a_fifo_in_place_of_the_output_is_refused_at_once() {
    let project = ssh_project("[job]\ncommand = [\"echo\", \"inside\"]\ntime = \"1m\"\n");
    let (job_id, dir) = finished_job(&project);
    let out = dir.join(format!("slurm-{job_id}.out"));
    std::fs::remove_file(&out).unwrap();
    assert!(Command::new("mkfifo").arg(&out).status().unwrap().success());
    let started = Instant::now();
    project
        .run(&["logs", &job_id])
        .expect_code(6)
        .stderr_contains("is not a regular file");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn a_closed_stdout_ends_the_command_quietly() {
    let project = Project::new();
    project.slurmfile("[job]\ncommand = [\"true\"]\n");
    // `true` exits at once, so slurmkit writes into a pipe nobody reads.
    let output = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "{} render | true; echo \"status ${{PIPESTATUS[0]}}\" >&2",
            slurmkit_e2e::slurmkit_bin().display()
        ))
        .current_dir(project.path())
        .env("HOME", project.home())
        .env("SLURMKIT_DATA_DIR", project.data_dir())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("status 141"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn hostile_values_are_refused_by_name_or_quoted_in_hints() {
    let project = Project::new();
    project
        .run(&["--hostname", "x; touch C", "status"])
        .expect_code(3)
        .stderr_contains("--hostname: invalid host name \"x; touch C\"");
    // A one-word value that a shell would expand: the hint quotes it.
    project
        .run(&["--hostname", "$(id)", "--port", "1", "status"])
        .expect_code(6)
        .stderr_contains("`ssh -p 1 '$(id)'` should reach it");
    project.slurmfile("[job]\ncommand = [\"true\"]\nenvironment = { A = \"x\\u0000y\" }\n");
    project
        .run(&["render"])
        .expect_code(3)
        .stderr_contains("Slurmfile.toml:3:")
        .stderr_contains("invalid environment value");
}

#[test]
fn cancel_says_which_jobs_slurm_does_not_know_or_had_ended() {
    let project = ssh_project("[job]\ncommand = [\"true\"]\ntime = \"1m\"\n");
    let (job_id, _) = finished_job(&project);
    project
        .run(&["cancel", "999999"])
        .expect_code(14)
        .stderr_contains("job 999999 is not known to Slurm");
    let run = project.run(&["cancel", &job_id]);
    run.ok()
        .stderr_contains(&format!("job {job_id} had already ended (COMPLETED)"));
    assert!(!run.stderr.contains("Cancelled"), "{}", run.stderr);
}

#[test]
fn a_module_that_fails_to_load_fails_the_job_before_it_runs() {
    let project = ssh_project(
        "[job]\ncommand = [\"echo\", \"payload ran\"]\nmodules = [\"no-such-module/1\"]\ntime = \"1m\"\n",
    );
    let submit = project.run(&["submit", "--wait"]);
    submit.expect_code(10).stdout_contains("FAILED");
    let job_id = submit.first_line();
    let out = project.run(&["logs", &job_id]);
    assert!(!out.stdout.contains("payload ran"), "{}", out.stdout);
    project
        .run(&["logs", &job_id, "--stderr"])
        .ok()
        .stdout_contains("slurmkit: module load failed, so the job does not run: no-such-module/1");
}
