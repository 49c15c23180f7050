//! What slurmkit costs over plain OpenSSH, on the test cluster, measured in one run:
//!
//! - `slurmkit submit` (connect, check the host key, authenticate, create the job directory over SFTP,
//!   write the script and spec atomically, sbatch, journal) against `ssh host sbatch --wrap` (connect,
//!   authenticate, sbatch);
//! - `slurmkit status ID` against `ssh host squeue -j ID`.
//!
//! `cargo bench -p slurmkit-e2e --bench submit [-- --quick]`; needs `tests/cluster/up`.

use std::time::{Duration, Instant};

use slurmkit_e2e::{Project, cluster};

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let runs = if quick { 3 } else { 15 };
    let c = cluster();
    let project = Project::new();
    project.slurmfile(&format!(
        "{}\n[jobs.bench]\ncommand = [\"true\"]\npartition = \"debug\"\ntime = \"1m\"\n",
        c.cluster_table()
    ));
    let ssh = |remote: &str| {
        let output = c.plain_ssh(remote).output().expect("ssh");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    };

    println!("submission over SSH to the test cluster ({runs} runs each; median, slowest)\n");
    let mut ids = Vec::new();
    let plain_submit = time(runs, || {
        ids.push(ssh(
            "sbatch --parsable --partition=debug --time=1 --wrap=true",
        ))
    });
    let slurmkit_submit = time(runs, || {
        ids.push(project.run(&["submit"]).ok().first_line())
    });
    let id = ids.last().unwrap().clone();
    let plain_status = time(runs, || {
        ssh(&format!("squeue --noheader --states=all --jobs={id}"));
    });
    let slurmkit_status = time(runs, || {
        project.run(&["status", &id]).ok();
    });

    row("ssh host sbatch --wrap", plain_submit);
    row("slurmkit submit", slurmkit_submit);
    row("ssh host squeue -j ID", plain_status);
    row("slurmkit status ID", slurmkit_status);
    println!();
    println!(
        "slurmkit submit / plain ssh sbatch: {:.2}x; slurmkit status / plain ssh squeue: {:.2}x",
        slurmkit_submit.0.as_secs_f64() / plain_submit.0.as_secs_f64(),
        slurmkit_status.0.as_secs_f64() / plain_status.0.as_secs_f64()
    );
}

/// (median, slowest) of `runs` calls.
fn time(runs: usize, mut f: impl FnMut()) -> (Duration, Duration) {
    let mut samples: Vec<Duration> = (0..runs)
        .map(|_| {
            let started = Instant::now();
            f();
            started.elapsed()
        })
        .collect();
    samples.sort();
    (samples[samples.len() / 2], samples[samples.len() - 1])
}

fn row(label: &str, (median, slowest): (Duration, Duration)) {
    println!(
        "{label:<26} {:>8.0} ms {:>8.0} ms",
        median.as_secs_f64() * 1e3,
        slowest.as_secs_f64() * 1e3
    );
}
