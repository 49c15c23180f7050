//! Timing helpers the benchmarks share: median and slowest of several runs, rows, ratios, and OpenSSH's
//! options set as slurmkit's (the cluster's key and the project's known_hosts, russh's key exchange).

use std::process::Command;
use std::time::{Duration, Instant};

use crate::{Cluster, Project};

/// (median, slowest) of `runs` calls of `f`, each followed (untimed) by `after`.
pub fn time_each(
    runs: usize,
    mut f: impl FnMut(),
    mut after: impl FnMut(),
) -> (Duration, Duration) {
    let mut samples: Vec<Duration> = (0..runs)
        .map(|_| {
            let started = Instant::now();
            f();
            let elapsed = started.elapsed();
            after();
            elapsed
        })
        .collect();
    samples.sort();
    (samples[samples.len() / 2], samples[samples.len() - 1])
}

/// (median, slowest) of `runs` calls of `f`.
pub fn time(runs: usize, f: impl FnMut()) -> (Duration, Duration) {
    time_each(runs, f, || {})
}

/// How many times faster `b` is than `a` (their medians).
pub fn ratio(a: (Duration, Duration), b: (Duration, Duration)) -> f64 {
    a.0.as_secs_f64() / b.0.as_secs_f64().max(1e-9)
}

/// A row: label, median and slowest in milliseconds.
pub fn row(label: &str, (median, slowest): (Duration, Duration)) {
    println!(
        "{label:<48} {:>8.0} ms {:>8.0} ms",
        median.as_secs_f64() * 1e3,
        slowest.as_secs_f64() * 1e3
    );
}

/// `ssh`, `sftp` or `scp` set up as slurmkit is: the cluster's key only, the project's known_hosts, and
/// curve25519-sha256 (russh's key exchange), so a comparison measures round trips, not key exchanges.
pub fn openssh(program: &str, c: &Cluster, project: &Project) -> Command {
    let mut command = Command::new(program);
    command
        .args(["-F", "/dev/null", "-i"])
        .arg(&c.key)
        .args(["-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes"])
        .args(["-o", "KexAlgorithms=curve25519-sha256", "-o"])
        .arg(format!(
            "UserKnownHostsFile={}",
            project.path().join("known_hosts").display()
        ));
    command
}
