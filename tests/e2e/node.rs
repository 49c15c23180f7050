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
