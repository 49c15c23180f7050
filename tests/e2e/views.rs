//! The queue and the cluster as anyone sees them, on the test cluster: `jobs list|show|watch`,
//! `cluster show`, and `logs` of a job sbatch submitted without slurmkit. The `--json` shapes are
//! snapshots (`tests/golden/`), with the values that change from run to run taken out.

use std::time::Duration;

use slurmkit_e2e::pty::Pty;
use slurmkit_e2e::{Project, assert_golden, cluster, eventually};

fn project() -> Project {
    let project = Project::new();
    project.slurmfile(&format!(
        "{}\n[job]\nname = \"{}\"\ntime = \"2m\"\nscript = \"sleep 60\"\n",
        cluster().cluster_table(),
        project.unique_name()
    ));
    project
}

/// The keys of a JSON value, recursively, with each leaf's type instead of its value.
fn shape(value: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), shape(v))).collect())
        }
        Value::Array(items) => Value::Array(items.first().map(shape).into_iter().collect()),
        Value::String(_) => "string".into(),
        Value::Number(_) => "number".into(),
        Value::Bool(_) => "bool".into(),
        Value::Null => "null".into(),
    }
}

/// sbatch run on the login node by hand, not through slurmkit: returns the id and the output file.
fn sbatch_by_hand(name: &str, script: &str) -> (String, String) {
    let c = cluster();
    let out = format!("{}/by-hand-{name}.out", c.user_home.display());
    let run = c
        .plain_ssh(&format!(
            "sbatch --parsable --job-name={name} --time=2 --output={out} --wrap='{script}'"
        ))
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    (String::from_utf8_lossy(&run.stdout).trim().to_string(), out)
}

#[test]
fn jobs_list_show_and_logs_work_for_a_job_not_submitted_through_slurmkit() {
    let project = project();
    let name = project.unique_name();
    let (id, out) = sbatch_by_hand(&name, "echo hello-by-hand; sleep 60");
    let run = project.run(&["jobs", "list", "--name", &name, "--json"]);
    let rows: serde_json::Value = serde_json::from_str(&run.ok().stdout).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 1, "{rows}");
    assert_eq!(rows[0]["job_id"], id.as_str());
    assert_eq!(rows[0]["user"], cluster().user.as_str());
    assert_golden(
        "jobs-list.json",
        &serde_json::to_string_pretty(&shape(&rows)).unwrap(),
    );
    // Filters: another user's jobs only, or a state it is not in, leave it out.
    let others = project.run(&["jobs", "list", "--name", &name, "--user", "root"]);
    assert!(!others.ok().stdout.contains(&id), "{}", others.stdout);
    let table = project.run(&["jobs", "list", "--mine", "--name", &name]);
    assert!(
        table.ok().stdout.starts_with("JOB ID  USER"),
        "{}",
        table.stdout
    );
    assert!(table.stdout.contains(&name));

    let show = project.run(&["jobs", "show", &id, "--json"]);
    let shown: serde_json::Value = serde_json::from_str(&show.ok().stdout).unwrap();
    assert_eq!(shown["slurm"][0]["JobId"], id.as_str());
    assert_eq!(shown["slurm"][0]["StdOut"], out.as_str());
    assert!(
        shown["slurmkit"].is_null(),
        "not submitted from here: {shown}"
    );
    project
        .run(&["jobs", "show", &id])
        .ok()
        .stdout_contains("not submitted from this machine");

    // Its output, read where Slurm says it is.
    let logs = eventually(Duration::from_secs(30), || {
        let run = project.run(&["logs", &id]);
        run.stdout.contains("hello-by-hand").then_some(run)
    })
    .expect("logs of a job submitted by hand");
    logs.ok();
    project.run(&["cancel", &id]).ok();
    project
        .run(&["logs", "99999999"])
        .expect_code(14)
        .stderr_contains("not known to Slurm");
}

#[test]
fn jobs_show_adds_what_this_machines_journal_knows() {
    let project = project();
    let run = project.run(&["submit"]);
    let id = run.ok().first_line();
    let show = project.run(&["jobs", "show", &id, "--json"]);
    let shown: serde_json::Value = serde_json::from_str(&show.ok().stdout).unwrap();
    let journaled = &shown["slurmkit"];
    assert!(
        journaled["job_dir"]
            .as_str()
            .unwrap()
            .contains("/slurm_jobs/"),
        "{shown}"
    );
    assert!(
        journaled["renderer"]
            .as_str()
            .unwrap()
            .starts_with("builtin sha256:")
    );
    assert_eq!(journaled["state"], "submitted");
    let mut slurmkit_shape = shape(journaled);
    slurmkit_shape["callbacks"] = serde_json::json!([]);
    slurmkit_shape["events"] = serde_json::json!([]);
    assert_golden(
        "jobs-show-slurmkit.json",
        &serde_json::to_string_pretty(&slurmkit_shape).unwrap(),
    );
    project.run(&["cancel", &id]).ok();
}

#[test]
fn cluster_show_counts_the_test_node_in_each_partition() {
    let project = project();
    let run = project.run(&["cluster", "show", "--json"]);
    let view: serde_json::Value = serde_json::from_str(&run.ok().stdout).unwrap();
    let partitions = view["partitions"].as_array().unwrap();
    let names: Vec<&str> = partitions
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["debug", "short"]);
    assert_eq!(partitions[0]["default"], true);
    assert_eq!(partitions[0]["nodes"], 1);
    assert_eq!(partitions[0]["cpus"]["total"], 16);
    assert_eq!(partitions[0]["time_limit"], "1:00:00");
    assert_golden(
        "cluster-show.json",
        &serde_json::to_string_pretty(&shape(&view)).unwrap(),
    );
    let table = project.run(&["cluster", "show"]);
    let header = table.ok().stdout.lines().next().unwrap().to_string();
    assert_golden("cluster-show.txt", &format!("{header}\n"));
    assert!(table.stdout.contains("debug*"), "{}", table.stdout);
}

#[test]
fn jobs_watch_redraws_with_one_query_per_round_until_stopped() {
    let project = project();
    let watch = project
        .command(&["jobs", "watch", "--interval", "1", "--mine"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    // Ctrl-C, as a user at the terminal would.
    unsafe {
        libc::kill(watch.id() as i32, libc::SIGINT);
    }
    let output = watch.wait_with_output().unwrap();
    assert_eq!(
        output.status.code(),
        Some(130),
        "ended as Ctrl-C ends every command"
    );
    let text = String::from_utf8_lossy(&output.stdout);
    let rounds = text.matches("every 1 s, Ctrl-C to stop").count();
    assert!((2..=4).contains(&rounds), "{rounds} rounds:\n{text}");
    // Not a terminal: no escape codes, one block after another.
    assert!(!text.contains('\x1b'), "{text:?}");
    assert!(text.contains("JOB ID  USER"), "{text}");
}

#[test]
fn dash_refuses_without_a_terminal_and_restores_the_terminal_it_drew_on() {
    let project = project();
    project
        .run(&["dash"])
        .expect_code(3)
        .stderr_contains("the dashboard needs a terminal");
    let mut dumb = project.command(&["dash"]);
    dumb.env("TERM", "dumb");
    let (status, output) = Pty::spawn(dumb).finish(Duration::from_secs(30));
    assert_eq!(status.code(), Some(3), "{output}");
    assert!(
        output.contains("cannot draw on this terminal (TERM=dumb)"),
        "{output}"
    );

    let mut command = project.command(&["dash", "--interval", "1"]);
    command.env("TERM", "xterm");
    let mut dash = Pty::spawn(command);
    dash.resize(100, 30);
    // Words are placed one by one: look for ones drawn whole.
    dash.expect("Queue (", Duration::from_secs(30));
    dash.expect("NODELIST(REASON)", Duration::from_secs(30));
    dash.send(b"q");
    let (status, output) = dash.finish(Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "{output}");
    assert!(
        dash.echoes_lines(),
        "the terminal is back in line mode with echo"
    );
}
