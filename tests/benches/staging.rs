//! Staging inputs against OpenSSH's own tools, measured in one run on the test cluster, on loopback and
//! through a proxy adding 20 ms of round-trip time (both with curve25519-sha256, russh's key exchange):
//!
//! 1. 10,000 files of 4 KiB: `slurmkit submit` of a job with them as `inputs` (staged, sha256-checked
//!    manifest, sbatch) against `sftp -b` putting the same directory (`put -r`).
//! 2. One 1 GiB file: the same job with it as its input, against `scp`; first sent (the cluster's input
//!    store emptied before each run), then sent again while the store holds it (linked from there).
//!
//! `cargo bench -p slurmkit-e2e --bench staging [-- --quick]` (quick: 1,000 files and 64 MiB); needs
//! `tests/cluster/up`, run as root. Every run stages into a fresh directory, removed afterwards.

use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

use slurmkit_e2e::bench::{self, ratio, row};
use slurmkit_e2e::proxy::Proxy;
use slurmkit_e2e::{Cluster, Project, cluster};

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (files, big_mib, runs) = if quick {
        (1_000, 64, 1)
    } else {
        (10_000, 1024, 3)
    };
    let c = cluster();
    let project = Project::new();
    make_inputs(&project, files, big_mib);
    // The inputs just written are flushed first, so the disk's writeback does not run during the
    // first figures.
    let _ = std::process::Command::new("sync").status();
    println!(
        "staging inputs: slurmkit against OpenSSH on the test cluster ({runs} run(s) per figure; median, slowest)\n"
    );
    let proxy = Proxy::start(
        format!("{}:{}", c.host, c.port).parse().unwrap(),
        Duration::from_millis(20),
    );
    let mut summary = Vec::new();
    for (link, port) in [("loopback", c.port), ("20 ms RTT", proxy.port())] {
        configure(&project, c, port);
        // Warm: the compiled renderer and the remote home directory are cached by the first run, and
        // the base directory exists for scp and sftp.
        submit(&project, "warm");
        let many_slurmkit = timed(runs, || submit(&project, "many"));
        // sftp needs a round trip per file: through the proxy one run takes minutes, and is enough.
        let sftp_runs = if port == c.port { runs } else { 1 };
        let many_sftp = timed(sftp_runs, || sftp_put_dir(c, &project, port));
        let big_slurmkit = timed(runs, || submit(&project, "big"));
        let big_scp = timed(runs, || scp_file(c, &project, port));
        // Again, with the store keeping what the first submission sent: nothing large is sent.
        submit(&project, "big");
        let big_again =
            bench::time_each(runs, || submit(&project, "big"), || cleanup_jobs(cluster()));
        cleanup(c);
        row(
            &format!("{link}: {files} x 4 KiB, sftp -b put -r"),
            many_sftp,
        );
        row(
            &format!("{link}: {files} x 4 KiB, slurmkit submit"),
            many_slurmkit,
        );
        row(&format!("{link}: {big_mib} MiB, scp"), big_scp);
        row(
            &format!("{link}: {big_mib} MiB, slurmkit submit"),
            big_slurmkit,
        );
        row(
            &format!("{link}: {big_mib} MiB again, slurmkit (input store)"),
            big_again,
        );
        summary.push(format!(
            "{link}: {files} small files {:.1}x faster than sftp -b; one {big_mib} MiB file {:.2}x scp's speed, {:.0}x when the input store holds it",
            ratio(many_sftp, many_slurmkit),
            ratio(big_scp, big_slurmkit),
            ratio(big_scp, big_again)
        ));
        println!();
    }
    for line in summary {
        println!("{line}");
    }
}

fn make_inputs(project: &Project, files: usize, big_mib: usize) {
    let many = project.path().join("many");
    std::fs::create_dir_all(&many).unwrap();
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let mut block = vec![0u8; 4096];
    for n in 0..files {
        for chunk in block.chunks_mut(8) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            chunk.copy_from_slice(&seed.to_le_bytes()[..chunk.len()]);
        }
        std::fs::write(many.join(format!("f{n:05}.bin")), &block).unwrap();
    }
    let mut big = std::fs::File::create(project.path().join("big.bin")).unwrap();
    let mut chunk = vec![0u8; 1 << 20];
    for _ in 0..big_mib {
        for word in chunk.chunks_mut(8) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            word.copy_from_slice(&seed.to_le_bytes());
        }
        big.write_all(&chunk).unwrap();
    }
}

/// The Slurmfile, reaching the login host through `port`, jobs staging into `~/slurm_jobs/bench-staging`.
fn configure(project: &Project, c: &Cluster, port: u16) {
    let key = std::fs::read_to_string(&c.host_key_pub).unwrap();
    let key: Vec<&str> = key.split_whitespace().take(2).collect();
    let known = project.write(
        "known_hosts",
        &format!("[{}]:{port} {}\n", c.host, key.join(" ")),
    );
    project.slurmfile(&format!(
        "[cluster]\nhostname = \"{}\"\nport = {port}\nusername = \"{}\"\nhost_key_policy = \"reject\"\nkey_filename = \"{}\"\nknown_hosts = \"{}\"\njob_base_dir = \"~/slurm_jobs/bench-staging\"\n\n\
         [job]\ncommand = [\"true\"]\npartition = \"debug\"\ntime = \"1m\"\nextra_directives = [\"--hold\"]\n\n\
         [jobs.warm]\n\n[jobs.many]\ninputs = [\"many\"]\n\n[jobs.big]\ninputs = [\"big.bin\"]\n",
        c.host,
        c.user,
        c.key.display(),
        known.display()
    ));
}

fn submit(project: &Project, job: &str) {
    project.run(&["submit", job]).ok();
}

fn sftp_put_dir(c: &Cluster, project: &Project, port: u16) {
    let dir = format!("slurm_jobs/bench-staging/sftp-{:08x}", rand_u32());
    let mut command = bench::openssh("sftp", c, project);
    command
        .args(["-P", &port.to_string(), "-b", "-"])
        .arg(format!("{}@{}", c.user, c.host))
        .current_dir(project.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("sftp");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("mkdir {dir}\nput -r many {dir}/many\n").as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "sftp: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn scp_file(c: &Cluster, project: &Project, port: u16) {
    let target = format!("slurm_jobs/bench-staging/scp-{:08x}.bin", rand_u32());
    let mut command = bench::openssh("scp", c, project);
    command
        .args(["-q", "-P", &port.to_string()])
        .arg(project.path().join("big.bin"))
        .arg(format!("{}@{}:{target}", c.user, c.host));
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "scp: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Remove what a run staged (after the run, untimed), the input store included: every run sends its
/// inputs.
fn cleanup(c: &Cluster) {
    let _ = c
        .plain_ssh(&format!("{CANCEL}; rm -rf ~/slurm_jobs/bench-staging/* ~/slurm_jobs/bench-staging/.slurmkit/store"))
        .output();
}

/// The bench's jobs are held (so one's input check on the node does not run while the next is
/// timed), then cancelled here.
const CANCEL: &str = "for n in warm many big; do scancel --name=$n; done";

/// Remove the job directories a run staged, keeping the input store.
fn cleanup_jobs(c: &Cluster) {
    let _ = c
        .plain_ssh(&format!("{CANCEL}; rm -rf ~/slurm_jobs/bench-staging/*"))
        .output();
}

fn rand_u32() -> u32 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(Instant::now()) as u32
}

/// Median and slowest of `runs` runs of `f`, each followed (untimed) by a cleanup of what it staged.
fn timed(runs: usize, f: impl FnMut()) -> (Duration, Duration) {
    bench::time_each(runs, f, || cleanup(cluster()))
}
