//! The lifecycle floor end to end: several jobs in one submission, waiting for several jobs, a
//! constant number of Slurm queries whatever the number of jobs, riding out a dropped connection, a
//! journal that cannot be written after sbatch, stale submissions resolved by asking Slurm, and Ctrl-C
//! while a plugin compiles.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use slurmkit::journal::{Journal, SubmissionState};
use slurmkit::types::names::{JobId, JobName};
use slurmkit::types::spec::{JobSpec, Payload};
use slurmkit_e2e::proxy::Proxy;
use slurmkit_e2e::{Project, artifacts, cluster};

fn journal(project: &Project) -> Journal {
    Journal::open(&project.data_dir().join("journal.sqlite")).unwrap()
}

fn cluster_key() -> String {
    let c = cluster();
    format!("ssh://{}@{}:{}", c.user, c.host, c.port)
}

#[test]
fn several_jobs_go_in_one_submission_and_a_refused_one_loses_no_other_id() {
    let project = Project::new();
    let name = project.unique_name();
    project.slurmfile(&format!(
        "{}\n[job]\ncommand = [\"bash\", \"-c\", \"echo $SLURM_JOB_NAME\"]\ntime = \"1m\"\n\n[jobs.first]\nname = \"{name}-1\"\n\n[jobs.refused]\nname = \"{name}-2\"\npartition = \"nosuch\"\n\n[jobs.third]\nname = \"{name}-3\"\n",
        cluster().cluster_table()
    ));
    let run = project.run(&["submit", "third", "refused", "first"]);
    // sbatch refused one: the exit code says so, and the others' ids are printed in the order asked.
    run.expect_code(6)
        .stderr_contains("submitting job ")
        .stderr_contains("invalid partition specified: nosuch");
    let ids: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(ids.len(), 2, "{}", run.stdout);
    let journal = journal(&project);
    let names: Vec<String> = ids
        .iter()
        .map(|id| {
            journal
                .find_by_job_id(&cluster_key(), &JobId::parse(id).unwrap())
                .unwrap()
                .expect("journaled")
                .job_name
        })
        .collect();
    assert_eq!(names, [format!("{name}-3"), format!("{name}-1")]);
    // One wait for both, with one shared query per round.
    let wait = project.run(&["wait", ids[0], ids[1], "--timeout", "120"]);
    wait.ok();
    assert_eq!(
        wait.stdout.matches("COMPLETED").count(),
        2,
        "{}",
        wait.stdout
    );
    let refused = journal.recent(&cluster_key(), 3).unwrap();
    assert!(
        refused
            .iter()
            .any(|s| s.job_name == format!("{name}-2") && s.state == SubmissionState::Rejected),
        "the refused job is journaled as rejected"
    );
}

/// Remote commands a run made, counted from its debug log.
fn remote_commands(stderr: &str) -> usize {
    stderr
        .lines()
        .filter(|l| l.contains("running over SSH"))
        .count()
}

#[test]
fn status_asks_slurm_a_constant_number_of_times_whatever_the_number_of_jobs() {
    let project = Project::new();
    let jobs: Vec<String> = (0..12).map(|n| format!("j{n}")).collect();
    let mut slurmfile = format!(
        "{}\n[job]\ncommand = [\"true\"]\ntime = \"1m\"\n",
        cluster().cluster_table()
    );
    for job in &jobs {
        slurmfile.push_str(&format!("[jobs.{job}]\n"));
    }
    project.slurmfile(&slurmfile);
    let mut args = vec!["submit"];
    args.extend(jobs.iter().map(String::as_str));
    let submit = project.run(&args);
    submit.ok();
    let ids: Vec<String> = submit.stdout.lines().map(String::from).collect();
    assert_eq!(ids.len(), jobs.len());
    let mut wait = vec!["wait", "--timeout", "120"];
    wait.extend(ids.iter().map(String::as_str));
    project.run(&wait).ok();
    for n in [1, ids.len()] {
        let mut status = vec!["status"];
        status.extend(ids[..n].iter().map(String::as_str));
        let output = project
            .command(&status)
            .env("SLURMKIT_LOG", "slurmkit=debug")
            .output()
            .unwrap();
        assert!(output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            remote_commands(&stderr),
            1,
            "status of {n} finished jobs the controller still knows is one squeue:\n{stderr}"
        );
        assert_eq!(
            String::from_utf8_lossy(&output.stdout)
                .matches("COMPLETED")
                .count(),
            n
        );
    }
}

/// A job that prints a line a second for `seconds` seconds.
fn ticking_project(project: &Project, port: u16, seconds: u32) {
    project.slurmfile(&format!(
        "{}\n[job]\ncommand = [\"bash\", \"-c\", \"for i in $(seq {seconds}); do echo tick $i; sleep 1; done\"]\ntime = \"2m\"\n",
        cluster().cluster_table_via(project, port)
    ));
}

#[test]
fn wait_and_logs_follow_reconnect_when_the_connection_drops() {
    let proxy = Proxy::start(cluster().address(), Duration::ZERO);
    let project = Project::new();
    ticking_project(&project, proxy.port(), 8);
    let job_id = project.run(&["submit"]).ok().first_line();
    let wait = project
        .command(&["wait", &job_id, "--timeout", "120"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let follow = project
        .command(&["logs", "-f", &job_id])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let before = proxy.connections();
    proxy.cut_all();
    let wait = wait.wait_with_output().unwrap();
    let follow = follow.wait_with_output().unwrap();
    let (wait_err, follow_err) = (
        String::from_utf8_lossy(&wait.stderr),
        String::from_utf8_lossy(&follow.stderr),
    );
    assert_eq!(wait.status.code(), Some(0), "{wait_err}");
    assert!(String::from_utf8_lossy(&wait.stdout).contains("COMPLETED"));
    assert!(wait_err.contains("dropped; reconnecting"), "{wait_err}");
    assert!(wait_err.contains("reconnected to"), "{wait_err}");
    assert_eq!(follow.status.code(), Some(0), "{follow_err}");
    assert!(follow_err.contains("reconnected to"), "{follow_err}");
    let expected: String = (1..=8).map(|i| format!("tick {i}\n")).collect();
    assert_eq!(
        String::from_utf8_lossy(&follow.stdout),
        expected,
        "every line once, none lost or repeated across the reconnection"
    );
    assert!(proxy.connections() > before, "new connections were opened");
}

#[test]
fn a_job_queued_but_not_journaled_prints_its_id_and_is_recovered_later() {
    assert_eq!(
        slurmkit::local_user::uid(),
        Some(0),
        "this test mounts a small tmpfs for the journal (tests/run runs as root)"
    );
    let project = Project::new();
    let data = project.data_dir();
    std::fs::create_dir_all(&data).unwrap();
    let status = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
        .arg(&data)
        .status()
        .unwrap();
    assert!(status.success());
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(data.clone());
    // An sbatch that queues the job, then fills the disk the journal is on.
    let fill = data.join("fill");
    let bin = project.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let sbatch = project.write(
        "bin/sbatch",
        &format!(
            "#!/bin/sh\n/usr/bin/sbatch \"$@\"\nrc=$?\ndd if=/dev/zero of={} bs=4k 2>/dev/null\nexit $rc\n",
            fill.display()
        ),
    );
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&sbatch, std::fs::Permissions::from_mode(0o755)).unwrap();
    project.slurmfile(
        "[cluster]\nbackend = \"local\"\n\n[job]\ncommand = [\"true\"]\ntime = \"1m\"\n",
    );
    // Open the journal once first, so its tables exist before the disk fills.
    project.run(&["status"]).ok();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let output = project
        .command(&["submit"])
        .env("PATH", &path)
        .output()
        .unwrap();
    let run = slurmkit_e2e::Run::new(&["submit"], output);
    run.expect_code(9).stderr_contains(
        "is queued but not recorded here: do not resubmit; `slurmkit status` will pick it up",
    );
    let job_id = run.first_line();
    JobId::parse(&job_id).expect("the id is printed although the journal failed");
    std::fs::remove_file(&fill).unwrap();
    project
        .run(&["status"])
        .ok()
        .stderr_contains(&format!("recovered job {job_id}"));
    let record = journal(&project)
        .find_by_job_id("local", &JobId::parse(&job_id).unwrap())
        .unwrap()
        .expect("journaled now");
    assert_eq!(record.state, SubmissionState::Submitted);
}

#[test]
fn stale_submissions_are_resolved_by_asking_slurm_or_marked_unknown() {
    let project = Project::new();
    project.slurmfile(&format!(
        "{}\n[job]\ncommand = [\"true\"]\n",
        cluster().cluster_table()
    ));
    let c = cluster();
    let name = project.unique_name();
    let base = format!("{}/slurm_jobs", c.user_home.display());
    let (queued, lost, never) = (
        format!("{base}/{name}-queued"),
        format!("{base}/{name}-lost"),
        format!("{base}/{name}-never"),
    );
    // sbatch queued one but its id never reached the file (cut off mid-write); sbatch started in the
    // second and Slurm never heard of it; the third was staged and sbatch never started.
    let remote = format!(
        "mkdir -p {queued} {lost} {never} && cd {queued} && printf '#!/bin/bash\\n#SBATCH --job-name={name}\\n#SBATCH --time=1\\ntrue\\n' > job.sbatch && sbatch --parsable job.sbatch > /dev/null && : > job_id && : > {lost}/job_id && cp job.sbatch {never}/"
    );
    assert!(c.plain_ssh(&remote).status().unwrap().success());
    let journal = journal(&project);
    let spec = JobSpec::new(
        JobName::parse(&name).unwrap(),
        Payload::Command(vec!["true".into()]),
    );
    let hour_ago = slurmkit::journal::now_ms() - 3_600_000;
    let mut ids = Vec::new();
    for dir in [&queued, &lost, &never] {
        let id = journal
            .begin_submission(&cluster_key(), dir, &spec, "builtin", &[])
            .unwrap();
        journal.set_created_ms(id, hour_ago).unwrap();
        ids.push(id);
    }
    let run = project.run(&["status"]);
    run.ok()
        .stderr_contains("whose submission was interrupted; it is journaled now");
    let found = journal.submission(ids[0]).unwrap().unwrap();
    assert_eq!(found.state, SubmissionState::Submitted);
    assert!(found.job_id.is_some());
    let unknown = journal.submission(ids[1]).unwrap().unwrap();
    assert_eq!(unknown.state, SubmissionState::Unknown);
    let abandoned = journal.submission(ids[2]).unwrap().unwrap();
    assert_eq!(abandoned.state, SubmissionState::Rejected);
    assert!(
        c.user_home
            .join(format!("slurm_jobs/{name}-never/.sbatch.claim"))
            .exists(),
        "giving up takes the claim, so no late sbatch can start there"
    );
    assert!(journal.unresolved(&cluster_key()).unwrap().is_empty());
}

#[test]
fn ctrl_c_ends_the_command_at_once_while_a_plugin_compiles() {
    let renderer = artifacts::JS_SITE_RENDERER.unwrap_or_else(|reason| panic!("{reason}"));
    let project = Project::new();
    project.slurmfile(&format!(
        "[renderer]\nplugin = \"{renderer}\"\n\n[job]\ncommand = [\"true\"]\n"
    ));
    // A cache of its own, so the component is compiled now (about 13 s on two cores).
    let mut child = project
        .command(&["render"])
        .env("SLURMKIT_CACHE_DIR", project.path().join("cold-cache"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(child.try_wait().unwrap().is_none(), "still compiling");
    let interrupted = Instant::now();
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    let took = interrupted.elapsed();
    assert_eq!(status.code(), Some(130));
    assert!(
        took < Duration::from_secs(5),
        "Ctrl-C took {took:?} to end the command"
    );
}
