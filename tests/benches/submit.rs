//! What slurmkit costs against plain OpenSSH on the test cluster, measured in one run so the ratios
//! mean something on whatever machine runs it:
//!
//! 1. One `slurmkit submit` against the one-liner `ssh host 'mkdir -p d && cat > d/job.sbatch && sbatch
//!    --parsable d/job.sbatch'`, with OpenSSH forced to russh's key exchange (curve25519-sha256) so the
//!    ratio compares round trips, on loopback and through a proxy adding 20 ms of round-trip time.
//! 2. 50 jobs with one `slurmkit submit` against 50 `ssh` over a ControlMaster and 50 plain `ssh`.
//! 3. `slurmkit status` of 1, 50 and 500 finished jobs: remote commands and controller RPCs (Slurm's
//!    own `sdiag` counters for the cluster user), which must not grow with the number of jobs.
//!
//! `cargo bench -p slurmkit-e2e --bench submit [-- --quick]`; needs `tests/cluster/up`, run as root.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use slurmkit_e2e::bench::{self, ratio, row, time};
use slurmkit_e2e::proxy::Proxy;
use slurmkit_e2e::{Cluster, Project, cluster};

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let runs = if quick { 5 } else { 15 };
    let c = cluster();
    println!(
        "slurmkit against OpenSSH on the test cluster ({runs} runs per figure; median, slowest)\n"
    );
    one_job(c, runs);
    many_jobs(c, if quick { 1 } else { 3 });
    status_queries(c);
}

/// A project whose Slurmfile reaches the login host through `port` (the host's own, or a proxy's).
fn project_on(c: &Cluster, port: u16, jobs: usize) -> Project {
    let project = Project::new();
    let key = std::fs::read_to_string(&c.host_key_pub).unwrap();
    let key: Vec<&str> = key.split_whitespace().take(2).collect();
    let known = project.write(
        "known_hosts",
        &format!("[{}]:{port} {}\n", c.host, key.join(" ")),
    );
    let mut slurmfile = format!(
        "[cluster]\nhostname = \"{}\"\nport = {port}\nusername = \"{}\"\nhost_key_policy = \"reject\"\nkey_filename = \"{}\"\nknown_hosts = \"{}\"\n\n[job]\ncommand = [\"true\"]\npartition = \"debug\"\ntime = \"1m\"\n",
        c.host,
        c.user,
        c.key.display(),
        known.display()
    );
    slurmfile.push_str("[jobs.bench]\n");
    for n in 0..jobs {
        slurmfile.push_str(&format!("[jobs.b{n:02}]\n"));
    }
    project.slurmfile(&slurmfile);
    project
}

/// OpenSSH to the login host through `port`, with russh's key exchange and the project's known_hosts.
fn openssh(c: &Cluster, project: &Project, port: u16) -> Command {
    let mut command = bench::openssh("ssh", c, project);
    command
        .args(["-p", &port.to_string()])
        .arg(format!("{}@{}", c.user, c.host))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// The one-liner: make a directory, write the script from stdin, submit it.
const ONE_LINER: &str = "d=$(mktemp -d -p ~/slurm_jobs bench.XXXXXX) && cat > $d/job.sbatch && sbatch --parsable $d/job.sbatch";
const SCRIPT: &str = "#!/bin/bash\n#SBATCH --partition=debug\n#SBATCH --time=1\ntrue\n";

fn run_one_liner(mut command: Command) {
    command.arg(ONE_LINER);
    let mut child = command.spawn().expect("ssh");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(SCRIPT.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn one_job(c: &Cluster, runs: usize) {
    println!("one job: slurmkit submit vs ssh one-liner (curve25519-sha256 for both)");
    let proxy = Proxy::start(
        format!("{}:{}", c.host, c.port).parse().unwrap(),
        Duration::from_millis(20),
    );
    let mut ratios = Vec::new();
    for (link, port) in [("loopback", c.port), ("20 ms RTT", proxy.port())] {
        let project = project_on(c, port, 0);
        // Warm: the compiled renderer and the remote home directory are cached by the first run.
        project.run(&["submit", "bench"]).ok();
        let slurmkit = time(runs, || {
            project.run(&["submit", "bench"]).ok();
        });
        let ssh = time(runs, || run_one_liner(openssh(c, &project, port)));
        row(&format!("{link}: ssh one-liner"), ssh);
        row(&format!("{link}: slurmkit submit"), slurmkit);
        ratios.push((link, ratio(slurmkit, ssh)));
    }
    for (link, ratio) in ratios {
        println!("slurmkit submit / ssh one-liner, {link}: {ratio:.2}x");
    }
    println!();
}

fn many_jobs(c: &Cluster, runs: usize) {
    const JOBS: usize = 50;
    println!("{JOBS} jobs: one slurmkit submit vs {JOBS} ssh");
    let project = project_on(c, c.port, JOBS);
    let names: Vec<String> = (0..JOBS).map(|n| format!("b{n:02}")).collect();
    let mut args = vec!["submit"];
    args.extend(names.iter().map(String::as_str));
    project.run(&["submit", "bench"]).ok();
    let slurmkit = time(runs, || {
        let run = project.run(&args);
        run.ok();
        assert_eq!(run.stdout.lines().count(), JOBS);
    });
    let control = project.path().join("control-%C");
    let master = |command: &mut Command| {
        command
            .arg("-o")
            .arg(format!("ControlPath={}", control.display()))
            .args(["-o", "ControlMaster=auto", "-o", "ControlPersist=60"]);
    };
    let mut warm = openssh(c, &project, c.port);
    master(&mut warm);
    warm.arg("true").status().unwrap();
    let multiplexed = time(runs, || {
        for _ in 0..JOBS {
            let mut command = openssh(c, &project, c.port);
            master(&mut command);
            run_one_liner(command);
        }
    });
    let mut stop = openssh(c, &project, c.port);
    master(&mut stop);
    let _ = stop.args(["-O", "exit"]).output();
    let plain = time(runs, || {
        for _ in 0..JOBS {
            run_one_liner(openssh(c, &project, c.port));
        }
    });
    // What no client can beat: the login node running sbatch 50 times, less the ssh that starts it.
    let sbatch_loop = format!(
        "d=$(mktemp -d -p ~/slurm_jobs bench.XXXXXX) && printf '#!/bin/bash\\n#SBATCH --partition=debug\\n#SBATCH --time=1\\ntrue\\n' > $d/job.sbatch && cd $d && for i in $(seq {JOBS}); do sbatch --parsable job.sbatch > /dev/null; done"
    );
    let with_loop = time(runs, || {
        let mut command = openssh(c, &project, c.port);
        command.arg(&sbatch_loop);
        assert!(command.output().unwrap().status.success());
    });
    let bare = time(runs, || {
        let mut command = openssh(c, &project, c.port);
        command.arg("true");
        assert!(command.output().unwrap().status.success());
    });
    let floor = with_loop.0.saturating_sub(bare.0);
    row(&format!("{JOBS} x plain ssh"), plain);
    row(&format!("{JOBS} x ssh over ControlMaster"), multiplexed);
    row("one slurmkit submit", slurmkit);
    row(
        &format!("{JOBS} x sbatch on the login node"),
        (floor, floor),
    );
    println!(
        "one slurmkit submit is {:.1}x faster than {JOBS} ssh over ControlMaster, {:.1}x faster than {JOBS} plain ssh",
        ratio(multiplexed, slurmkit),
        ratio(plain, slurmkit)
    );
    println!(
        "time above the {JOBS} sbatch runs themselves: slurmkit {:.0} ms, ssh over ControlMaster {:.0} ms ({:.1}x less)\n",
        above(slurmkit, floor),
        above(multiplexed, floor),
        above(multiplexed, floor) / above(slurmkit, floor).max(1.0)
    );
}

/// RPCs the cluster user has made to slurmctld so far (`sdiag`, by user).
fn controller_rpcs(c: &Cluster) -> u64 {
    let output = Command::new("sdiag")
        .env("SLURM_CONF", &c.slurm_conf)
        .output()
        .expect("sdiag");
    let text = String::from_utf8_lossy(&output.stdout);
    let by_user = text
        .split("Remote Procedure Call statistics by user")
        .nth(1)
        .unwrap_or("");
    by_user
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{} ", c.user)))
        .and_then(|l| l.split("count:").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn status_queries(c: &Cluster) {
    const MOST: usize = 500;
    println!("slurmkit status of finished jobs: remote commands and controller RPCs");
    let project = project_on(c, c.port, 0);
    // 500 trivial jobs, submitted on the login node in one ssh, then left to finish.
    let submit = format!(
        "for i in $(seq {MOST}); do sbatch --parsable --partition=debug --time=1 --output=/dev/null --wrap=true; done"
    );
    let output = c.plain_ssh(&submit).output().unwrap();
    assert!(output.status.success());
    let ids: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| l.trim().to_string())
        .collect();
    assert_eq!(ids.len(), MOST);
    let started = Instant::now();
    loop {
        let queued = c
            .plain_ssh(&format!(
                "squeue --noheader --states=PENDING,RUNNING,CONFIGURING,COMPLETING --jobs={}",
                ids.join(",")
            ))
            .output()
            .unwrap();
        if queued.stdout.is_empty() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "the {MOST} jobs did not finish"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    println!(
        "{:>6} {:>16} {:>16} {:>10}",
        "jobs", "remote commands", "controller RPCs", "time"
    );
    for n in [1, 50, MOST] {
        let mut args = vec!["status"];
        args.extend(ids[..n].iter().map(String::as_str));
        let before = controller_rpcs(c);
        let started = Instant::now();
        let output = project
            .command(&args)
            .env("SLURMKIT_LOG", "slurmkit=debug")
            .output()
            .unwrap();
        let elapsed = started.elapsed();
        let rpcs = controller_rpcs(c) - before;
        assert!(output.status.success());
        let commands = String::from_utf8_lossy(&output.stderr)
            .lines()
            .filter(|l| l.contains("running over SSH"))
            .count();
        println!(
            "{n:>6} {commands:>16} {rpcs:>16} {:>8.0} ms",
            elapsed.as_secs_f64() * 1e3
        );
    }
    println!();
}

/// Milliseconds of `a`'s median above `floor`.
fn above(a: (Duration, Duration), floor: Duration) -> f64 {
    a.0.saturating_sub(floor).as_secs_f64() * 1e3
}
