//! Going to a running job on the test cluster: `connect` runs a command or a shell (on a terminal) in
//! the job's allocation, and `tunnel` forwards a local port to a server the job started, through the
//! jump host.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::Stdio;
use std::time::Duration;

use slurmkit_e2e::pty::Pty;
use slurmkit_e2e::{Project, cluster, eventually};

/// A project whose one job runs `script` for up to two minutes, reached through the jump host.
fn project_with(script: &str) -> Project {
    let c = cluster();
    let project = Project::new();
    project.slurmfile(&format!(
        "{}proxy_jump = \"{}@{}:{}\"\n\n[job]\nname = \"{}\"\ntime = \"2m\"\nscript = '''\n{script}\n'''\n",
        c.cluster_table(),
        c.user,
        c.host,
        c.jump_port,
        project.unique_name()
    ));
    project
}

fn submit(project: &Project) -> String {
    project.run(&["submit"]).ok().first_line()
}

fn local_hostname() -> String {
    let out = std::process::Command::new("hostname").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn connect_runs_a_command_in_the_jobs_allocation_with_its_exit_code() {
    let project = project_with("sleep 110");
    let id = submit(&project);
    // The single node of the test cluster is this machine.
    let run = project.run(&["connect", &id, "--", "hostname"]);
    run.ok();
    assert_eq!(run.stdout.trim(), local_hostname(), "{}", run.stderr);
    // In the job: its id is in the environment, and the command's exit code is ours.
    let run = project.run(&["connect", &id, "--", "printenv", "SLURM_JOB_ID"]);
    assert_eq!(run.ok().stdout.trim(), id);
    // Each word arrives as it was given, however hostile.
    let word = "it's $HOME; `id` \"a  b\"";
    let script = "printf '<%s>\\n' \"$1\"; exit 3";
    project
        .run(&["connect", &id, "--", "sh", "-c", script, "sh", word])
        .expect_code(3)
        .stdout_contains(&format!("<{word}>"));
    // A node that is not the job's is refused, naming the job's.
    project
        .run(&["connect", &id, "--node", "elsewhere", "--", "true"])
        .expect_code(3)
        .stderr_contains("\"elsewhere\" is not one of job");
    project.run(&["cancel", &id]).ok();
    let ended = eventually(Duration::from_secs(30), || {
        let run = project.run(&["connect", &id, "--", "true"]);
        (run.code == Some(6)).then_some(run)
    })
    .expect("connect to an ended job fails");
    ended.stderr_contains("has ended (CANCELLED)");
}

#[test]
fn connect_opens_a_shell_on_a_terminal_that_follows_the_window() {
    let project = project_with("sleep 110");
    let id = submit(&project);
    let mut command = project.command(&["connect", &id]);
    command.env("TERM", "xterm").env("SHELL", "/bin/sh");
    let mut shell = Pty::spawn(command);
    shell.send(b"stty size; echo \"in-job-$SLURM_JOB_ID\"; tty; exit 7\r");
    shell.expect(&format!("in-job-{id}"), Duration::from_secs(60));
    let (status, output) = shell.finish(Duration::from_secs(30));
    assert_eq!(status.code(), Some(7), "{output}");
    assert!(
        output.contains("/dev/pts/"),
        "the shell has a terminal: {output}"
    );
    project.run(&["cancel", &id]).ok();
}

#[test]
fn tunnel_reaches_a_server_the_job_started_through_the_jump_host() {
    let port = 20_000 + (std::process::id() % 20_000) as u16;
    let project = project_with(&format!(
        "mkdir -p site && echo tunnel-ok-$SLURM_JOB_ID > site/marker.txt\nexec python3 -m http.server {port} --bind 127.0.0.1 --directory site"
    ));
    let id = submit(&project);
    let mut tunnel = project
        .command(&["tunnel", &id, &format!("0:{port}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut url = String::new();
    BufReader::new(tunnel.stdout.take().unwrap())
        .read_line(&mut url)
        .unwrap();
    let address = url
        .trim()
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    assert!(address.starts_with("127.0.0.1:"), "printed {url:?}");
    // The server starts a moment after the job does.
    let body = eventually(Duration::from_secs(30), || {
        let mut stream = std::net::TcpStream::connect(&address).ok()?;
        stream
            .write_all(b"GET /marker.txt HTTP/1.0\r\nHost: x\r\n\r\n")
            .ok()?;
        let mut reply = String::new();
        stream.read_to_string(&mut reply).ok()?;
        reply.contains("200 OK").then_some(reply)
    })
    .expect("the job's server answers through the tunnel");
    assert!(body.contains(&format!("tunnel-ok-{id}")), "{body}");
    // The tunnel ends with the job.
    project.run(&["cancel", &id]).ok();
    let status = eventually(Duration::from_secs(30), || tunnel.try_wait().unwrap())
        .expect("the tunnel ends when the job does");
    let mut stderr = String::new();
    tunnel
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("the tunnel is closed"), "{stderr}");
    assert!(
        stderr.contains("via 127.0.0.1 <- "),
        "names the hops: {stderr}"
    );
}

/// A project whose job runs `script`, with the Rust ledger as a node callback (writing
/// `ledger/node.tsv` in the job directory) and as a client callback for run events (writing
/// `ledger/events.tsv` here), its jobs under `base` on the cluster.
fn run_events_project(script: &str, base: &str) -> Project {
    let project = Project::new();
    let ledger = project.install_plugin(slurmkit_e2e::artifacts::RUST_LEDGER);
    project.slurmfile(&format!(
        "{}job_base_dir = \"{base}\"\n\n[job]\nname = \"{}\"\ntime = \"2m\"\nscript = '''\n{script}\n'''\n\n\
         [[callbacks]]\nname = \"node-ledger\"\nplugin = \"{ledger}\"\non = \"node\"\nconfig = {{ file = \"ledger/node.tsv\" }}\n[callbacks.grants]\nwrite = [\"ledger\"]\n\n\
         [[callbacks]]\nname = \"here-ledger\"\nplugin = \"{ledger}\"\nevents = [\"run-begin\", \"run-end\"]\n[callbacks.grants]\nwrite = [\"ledger\"]\n",
        cluster().cluster_table(),
        project.unique_name()
    ));
    project
}

/// `Submitted job N (name) in DIR` on stderr.
fn job_dir_of(run: &slurmkit_e2e::Run) -> String {
    run.stderr
        .lines()
        .find_map(|l| l.split(") in ").nth(1))
        .expect("submit names the job directory")
        .trim()
        .to_string()
}

#[test]
fn run_events_reach_a_callback_on_the_node_and_one_here_once() {
    let project = run_events_project("echo payload-ran; exit 3", "slurm_jobs");
    let run = project.run(&["submit", "--wait"]);
    run.expect_code(10);
    let id = run.first_line();
    let dir = job_dir_of(&run);
    // On the node: the callback wrote both events into the job directory.
    let node_ledger = std::fs::read_to_string(format!("{dir}/ledger/node.tsv")).unwrap();
    for kind in ["RunBegin", "RunEnd"] {
        assert_eq!(
            node_ledger.matches(&format!("\t{kind}\t{id}\t")).count(),
            1,
            "node ledger:\n{node_ledger}"
        );
    }
    // The payload's output and exit code are its own.
    let out = std::fs::read_to_string(format!("{dir}/slurm-{id}.out")).unwrap();
    assert_eq!(out, "payload-ran\n");
    let err = std::fs::read_to_string(format!("{dir}/slurm-{id}.err")).unwrap();
    assert_eq!(err, "", "the runner or a callback said something");
    let status = project.run(&["status", &id]);
    let row: Vec<&str> = status
        .ok()
        .stdout
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(row[1..3], ["FAILED", "3"], "{}", status.stdout);
    // Here: both events, delivered once, with the same ids as on the node.
    let here = std::fs::read_to_string(project.path().join("ledger/events.tsv")).unwrap();
    let ids = |text: &str| -> Vec<String> {
        let mut ids: Vec<String> = text
            .lines()
            .map(|l| l.split('\t').next().unwrap().to_string())
            .collect();
        ids.sort();
        ids
    };
    assert_eq!(
        ids(&here),
        ids(&node_ledger),
        "here:\n{here}\nnode:\n{node_ledger}"
    );
    let journal =
        slurmkit::journal::Journal::open(&project.data_dir().join("journal.sqlite")).unwrap();
    for kind in ["run-begin", "run-end"] {
        let deliveries = journal.deliveries_of(kind).unwrap();
        assert_eq!(deliveries.len(), 1, "{kind}: {deliveries:?}");
        assert_eq!(
            (deliveries[0].state.as_str(), deliveries[0].attempts),
            ("delivered", 1)
        );
    }
    // Observing again queues nothing new.
    project.run(&["status", &id]).ok();
    assert_eq!(journal.deliveries_of("run-end").unwrap().len(), 1);
    // The event log the client read: run-end carries the exit code, elapsed time and peak memory.
    let log = std::fs::read_to_string(format!("{dir}/.slurmkit/events.jsonl")).unwrap();
    let end: serde_json::Value = serde_json::from_str(log.lines().last().unwrap()).unwrap();
    assert_eq!(end["kind"], "run-end");
    assert_eq!(end["run"]["exit_code"], 3);
    assert!(end["run"]["peak_memory_kib"].as_u64().unwrap() > 0, "{end}");
}

#[test]
fn a_job_whose_runner_cannot_start_still_runs_its_payload() {
    let base = format!("runner-broken-{}", std::process::id());
    let project = run_events_project("echo payload-ran", &base);
    project.run(&["submit", "--wait"]).ok();
    let runners = format!("{}/{base}/.slurmkit/runner", cluster().user_home.display());
    let runner = std::fs::read_dir(&runners)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path()
        .join("slurmkit");
    // Its stdout and stderr, together.
    let output = |run: &slurmkit_e2e::Run| {
        ["out", "err"]
            .map(|stream| {
                let path = format!("{}/slurm-{}.{stream}", job_dir_of(run), run.first_line());
                std::fs::read_to_string(path).unwrap_or_default()
            })
            .concat()
    };
    // It cannot execute on the node (as a build for another architecture could not).
    let mode = |mode: u32| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&runner, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    mode(0o444);
    let run = project.run(&["submit", "--wait"]);
    run.ok();
    let out = output(&run);
    assert!(out.contains("payload-ran"), "{out}");
    assert!(
        out.contains("the node-side runner cannot start on"),
        "{out}"
    );
    // It is not the binary that was uploaded.
    mode(0o755);
    std::fs::write(&runner, b"#!/bin/sh\necho tampered\n").unwrap();
    let run = project.run(&["submit", "--wait"]);
    run.ok();
    let out = output(&run);
    assert!(
        out.contains("payload-ran") && !out.contains("tampered"),
        "{out}"
    );
    assert!(
        out.contains("is missing or is not the one uploaded"),
        "{out}"
    );
    let _ = std::fs::remove_dir_all(format!("{}/{base}", cluster().user_home.display()));
}

/// An array split at the array size limit: every task's run events reach the callback here once,
/// each with its own array's job id, though the later part's tasks log into the first part's
/// directory (and end after the first part was seen to end, so only the later part's own
/// submission can collect them).
#[test]
fn run_events_of_a_split_arrays_every_part_arrive_once() {
    let project = Project::new();
    let ledger = project.install_plugin(slurmkit_e2e::artifacts::RUST_LEDGER);
    project.slurmfile(&format!(
        "{}max_array_size = 2\n\n[job]\nname = \"{}\"\ntime = \"2m\"\nitems = [{{ n = 0 }}, {{ n = 1 }}, {{ n = 2 }}]\nscript = \"[ \\\"$SLURMKIT_ITEM\\\" -lt 2 ] || sleep 4\"\n\n\
         [[callbacks]]\nname = \"here-ledger\"\nplugin = \"{ledger}\"\nevents = [\"run-begin\", \"run-end\"]\n[callbacks.grants]\nwrite = [\"ledger\"]\n",
        cluster().cluster_table(),
        project.unique_name()
    ));
    let run = project.run(&["submit", "--wait"]);
    run.ok().stderr_contains("so it was split");
    let first = run.first_line();
    // "... runs the first, then <later> (`wait`, ...": the later part's id.
    let later = run
        .stderr
        .split("runs the first, then ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .expect("submit names the later part")
        .to_string();
    let here = std::fs::read_to_string(project.path().join("ledger/events.tsv")).unwrap();
    let mut seen: Vec<String> = here
        .lines()
        .map(|l| {
            let fields: Vec<&str> = l.split('\t').collect();
            format!("{} {}", fields[1], fields[2])
        })
        .collect();
    seen.sort();
    let mut expected: Vec<String> = [
        format!("{first}_0"),
        format!("{first}_1"),
        format!("{later}_0"),
    ]
    .iter()
    .flat_map(|id| [format!("RunBegin {id}"), format!("RunEnd {id}")])
    .collect();
    expected.sort();
    assert_eq!(seen, expected, "{here}");
}
