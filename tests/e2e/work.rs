//! Work in, results out, on the test cluster: a job graph prep → sweep (an array over items, each task
//! reading a staged input) → collect, submitted with `submit collect --wait --fetch`; results read back
//! byte for byte; inputs checked on the node; outputs fetched confined; and every mistake refused before
//! anything is sent.

use slurmkit_e2e::{Project, cluster};

/// A Slurmfile for the graph, with `name` making its jobs unique to this test.
fn graph_slurmfile(name: &str) -> String {
    format!(
        r#"{cluster}
[job]
time = "2m"

[jobs.prep]
name = "{name}-prep"
inputs = ["data/*.csv", {{ from = "shared/scale.txt", to = "cfg/scale.txt" }}]
args = {{ offset = 100 }}
script = """
set -eu
total=$(cat data/*.csv | wc -l)
scale=$(cat cfg/scale.txt)
python3 - <<'EOF'
import json, os
args = json.load(open(os.environ["SLURMKIT_ARGS"]))
json.dump({{"lines": int(os.popen("cat data/*.csv | wc -l").read()), "offset": args["offset"]}}, open(os.environ["SLURMKIT_RESULT"], "w"))
EOF
"""

[jobs.sweep]
name = "{name}-sweep"
after = ["prep"]
inputs = ["data/a.csv"]
items = [{{ factor = 1 }}, {{ factor = 2 }}, {{ factor = 3 }}]
max_concurrent = 2
script = """
set -eu
python3 - <<'EOF'
import json, os
item = json.load(open(os.environ["SLURMKIT_ARGS"]))
prep = json.load(open(os.path.join(os.environ["SLURMKIT_DEP_PREP"], "result.json")))
rows = len(open("data/a.csv").read().splitlines())
json.dump({{"task": int(os.environ["SLURM_ARRAY_TASK_ID"]), "value": item["factor"] * rows + prep["offset"]}}, open(os.environ["SLURMKIT_RESULT"], "w"))
EOF
"""

[jobs.collect]
name = "{name}-collect"
after = ["sweep"]
outputs = ["summary/*.json", "report.txt"]
script = """
set -eu
mkdir -p summary
python3 - <<'EOF'
import glob, json, os
sweep = os.environ["SLURMKIT_DEP_SWEEP"]
values = [json.load(open(f))["value"] for f in sorted(glob.glob(sweep + "/results/*.json"))]
json.dump({{"values": values}}, open("summary/values.json", "w"))
open("report.txt", "w").write("sum %d\\n" % sum(values))
json.dump({{"sum": sum(values)}}, open(os.environ["SLURMKIT_RESULT"], "w"))
EOF
"""
"#,
        cluster = cluster().cluster_table()
    )
}

fn graph_project() -> (Project, String) {
    let project = Project::new();
    let name = project.unique_name();
    project.write("data/a.csv", "x\n1\n2\n");
    project.write("data/b.csv", "y\n3\n");
    project.write("shared/scale.txt", "7\n");
    project.slurmfile(&graph_slurmfile(&name));
    (project, name)
}

#[test]
fn a_graph_runs_in_order_and_its_outputs_and_results_come_back_byte_for_byte() {
    let (project, _) = graph_project();
    let run = project.run(&["submit", "collect", "--wait", "--fetch"]);
    run.ok();
    let ids: Vec<&str> = run.stdout.lines().filter(|l| !l.contains(' ')).collect();
    assert_eq!(ids.len(), 3, "prep, sweep and collect:\n{}", run.stdout);
    let (prep, sweep, collect) = (ids[0], ids[1], ids[2]);
    assert_eq!(
        run.stdout.matches("COMPLETED ").count(),
        5,
        "prep, three sweep tasks and collect:\n{}",
        run.stdout
    );
    // data/a.csv has 3 lines, prep's offset is 100: 1*3+100, 2*3+100, 3*3+100.
    let dir = std::fs::read_dir(project.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .ends_with(&format!("-{collect}"))
        })
        .expect("fetched into ./<name>-<id>");
    assert_eq!(
        std::fs::read_to_string(dir.join("summary/values.json")).unwrap(),
        r#"{"values": [103, 106, 109]}"#
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("report.txt")).unwrap(),
        "sum 318\n"
    );
    project
        .run(&["result", collect])
        .ok()
        .stdout_contains("\"sum\": 318");
    let sweep_result = project.run(&["result", sweep]);
    sweep_result.ok();
    let list: serde_json::Value = serde_json::from_str(&sweep_result.stdout).unwrap();
    assert_eq!(
        list,
        serde_json::json!([
            {"task": 0, "value": 103},
            {"task": 1, "value": 106},
            {"task": 2, "value": 109}
        ])
    );
    project
        .run(&["status", sweep])
        .ok()
        .stdout_contains(&format!("{sweep}: 3 tasks, 3 COMPLETED"));
    let prep_result: serde_json::Value =
        serde_json::from_str(&project.run(&["result", prep]).stdout).unwrap();
    assert_eq!(prep_result, serde_json::json!({"lines": 5, "offset": 100}));
    // A second fetch would replace what is there: refused, then allowed with --force.
    project
        .run(&["fetch", collect])
        .expect_code(18)
        .stderr_contains("already exist");
    project.run(&["fetch", collect, "--force"]).ok();
    // Submitting collect alone runs it after the sweep just submitted, reading its results again.
    let again = project.run(&["submit", "collect", "--only", "--wait"]);
    again.ok();
    let again_id = again.first_line();
    assert!(
        !ids.contains(&again_id.as_str()),
        "only collect was submitted"
    );
    project
        .run(&["result", &again_id])
        .ok()
        .stdout_contains("\"sum\": 318");
}

#[test]
fn an_input_changed_after_staging_fails_the_job_naming_the_file() {
    let project = Project::new();
    let name = project.unique_name();
    project.write("data/in.txt", "original\n");
    project.slurmfile(&format!(
        "{}\n[job]\nname = \"{name}\"\ninputs = [\"data/in.txt\"]\ntime = \"1m\"\nextra_directives = [\"--hold\"]\ncommand = [\"cat\", \"data/in.txt\"]\n",
        cluster().cluster_table()
    ));
    let run = project.run(&["submit"]);
    run.ok();
    let id = run.first_line();
    let dir = cluster()
        .job_dirs_named(&name)
        .pop()
        .expect("its job directory");
    let base = format!("{}/slurm_jobs", cluster().user_home.display());
    let tamper = cluster()
        .plain_ssh(&format!(
            "chmod u+w {base}/{dir}/data/in.txt && echo changed > {base}/{dir}/data/in.txt && SLURM_CONF={} scontrol release {id}",
            cluster().slurm_conf.display()
        ))
        .output()
        .unwrap();
    assert!(
        tamper.status.success(),
        "{}",
        String::from_utf8_lossy(&tamper.stderr)
    );
    project
        .run(&["wait", &id, "--timeout", "120"])
        .expect_code(10);
    let stderr = project.run(&["logs", &id, "--stderr"]);
    stderr
        .ok()
        .stdout_contains("data/in.txt: FAILED")
        .stdout_contains("an input differs from what was staged");
    let stdout = project.run(&["logs", &id]);
    assert!(
        !stdout.stdout.contains("changed"),
        "the payload did not run"
    );
}

#[test]
fn results_say_why_there_is_none() {
    let project = Project::new();
    let name = project.unique_name();
    project.slurmfile(&format!(
        r#"{}
[job]
time = "1m"

[jobs.silent]
name = "{name}-silent"
command = ["true"]

[jobs.garbled]
name = "{name}-garbled"
script = "printf 'not json' > \"$SLURMKIT_RESULT\""

[jobs.failing]
name = "{name}-failing"
script = "exit 3"

[jobs.partial]
name = "{name}-partial"
items = [{{ n = 0 }}, {{ n = 1 }}, {{ n = 2 }}]
script = "[ \"$SLURM_ARRAY_TASK_ID\" = 1 ] || echo '{{\"ok\": true}}' > \"$SLURMKIT_RESULT\""
"#,
        cluster().cluster_table()
    ));
    let run = project.run(&[
        "submit", "silent", "garbled", "failing", "partial", "--wait",
    ]);
    let ids: Vec<String> = run.stdout.lines().take(4).map(str::to_string).collect();
    assert_eq!(ids.len(), 4, "{}{}", run.stdout, run.stderr);
    project
        .run(&["result", &ids[0]])
        .expect_code(15)
        .stderr_contains("without writing a result");
    project
        .run(&["result", &ids[1]])
        .expect_code(16)
        .stderr_contains("not valid JSON");
    project
        .run(&["result", &ids[2]])
        .expect_code(10)
        .stderr_contains("FAILED");
    let partial = project.run(&["result", &ids[3]]);
    partial
        .expect_code(15)
        .stderr_contains("1 of the 3 tasks")
        .stderr_contains("1 (no result written)");
    let list: serde_json::Value = serde_json::from_str(&partial.stdout).unwrap();
    assert_eq!(list, serde_json::json!([{"ok": true}, null, {"ok": true}]));
}

#[test]
fn a_link_among_the_outputs_is_not_followed() {
    let project = Project::new();
    let name = project.unique_name();
    project.slurmfile(&format!(
        "{}\n[job]\nname = \"{name}\"\ntime = \"1m\"\noutputs = [\"out/*\", \"conf/passwd\"]\nscript = \"mkdir out && echo mine > out/ok.txt && ln -s /etc/passwd out/leak.txt && ln -s /etc conf\"\n",
        cluster().cluster_table()
    ));
    let run = project.run(&["submit", "--wait"]);
    run.ok();
    let id = run.first_line();
    let to = project.path().join("fetched");
    project
        .run(&["fetch", &id, "--to", to.to_str().unwrap()])
        .ok()
        .stderr_contains("not fetched: out/leak.txt: a link");
    assert_eq!(
        std::fs::read_to_string(to.join("out/ok.txt")).unwrap(),
        "mine\n"
    );
    assert!(to.join("out/leak.txt").symlink_metadata().is_err());
    // A linked directory in the middle of an output's path is not followed either.
    assert!(!to.join("conf").exists(), "nothing from /etc was fetched");
}

/// Each mistake is refused before anything is sent (no job directory appears), at its line.
#[test]
fn mistakes_are_refused_before_anything_is_sent_with_their_line() {
    let big = "x".repeat(1 << 20);
    let cases: Vec<(String, &str)> = vec![
        (
            "inputs = [\"missing.txt\"]\ncommand = [\"true\"]".into(),
            "matches no file",
        ),
        (
            "inputs = [\"nothing/*.csv\"]\ncommand = [\"true\"]".into(),
            "matches no file",
        ),
        (
            "inputs = [{ from = \"missing-dir\", to = \"x\" }]\ncommand = [\"true\"]".into(),
            "cannot read",
        ),
        (
            "outputs = [\"../escape/*\"]\ncommand = [\"true\"]".into(),
            "relative to its directory",
        ),
        ("items = [1, 2]\ncommand = [\"true\"]".into(), "not a table"),
        (
            format!("args = {{ blob = \"{big}\" }}\ncommand = [\"true\"]"),
            "at most 1048576",
        ),
        (
            "after = [\"nosuch\"]\ncommand = [\"true\"]".into(),
            "no job \"nosuch\"",
        ),
    ];
    for (body, message) in &cases {
        let project = Project::new();
        let name = project.unique_name();
        project.slurmfile(&format!(
            "{}\n[jobs.{name}]\n{body}\n",
            cluster().cluster_table()
        ));
        // The [cluster] table is 7 lines, then a blank line, then the job's header: line 10 is the body.
        let run = project.run(&["submit", &name]);
        run.expect_code(3)
            .stderr_contains("Slurmfile.toml:10:")
            .stderr_contains(message);
        assert!(
            cluster().job_dirs_named(&name).is_empty(),
            "nothing was sent"
        );
    }
    // A cycle is named.
    let project = Project::new();
    project.slurmfile(&format!(
        "{}\n[job]\ncommand = [\"true\"]\n[jobs.a]\nafter = [\"b\"]\n[jobs.b]\nafter = [\"a\"]\n",
        cluster().cluster_table()
    ));
    project
        .run(&["submit", "a"])
        .expect_code(3)
        .stderr_contains("a → b → a");
    // Items from a JSON Lines file: a line that is not an object is named with its own line.
    let project = Project::new();
    project.write("params.jsonl", "{\"lr\": 0.1}\n\n[0.2]\n");
    project.slurmfile(&format!(
        "{}\n[job]\ncommand = [\"true\"]\nitems_file = \"params.jsonl\"\n",
        cluster().cluster_table()
    ));
    project
        .run(&["submit"])
        .expect_code(3)
        .stderr_contains("params.jsonl:3:1")
        .stderr_contains("must be a JSON object");
    // A bad --arg names the flag.
    let project = Project::new();
    project.slurmfile(&format!(
        "{}\n[job]\ncommand = [\"true\"]\n",
        cluster().cluster_table()
    ));
    project
        .run(&["submit", "--arg", "lr=abc"])
        .expect_code(3)
        .stderr_contains("--arg");
}

/// A transfer big enough to watch shows a progress bar on a terminal, and nothing when stderr is not one.
#[test]
fn staging_shows_progress_on_a_terminal_only() {
    let project = Project::new();
    let name = project.unique_name();
    let block: Vec<u8> = (0..(24u32 << 20)).map(|i| (i % 251) as u8).collect();
    std::fs::write(project.path().join("big.bin"), &block).unwrap();
    project.slurmfile(&format!(
        "{}\n[job]\nname = \"{name}\"\ninputs = [\"big.bin\"]\ntime = \"1m\"\ncommand = [\"true\"]\n",
        cluster().cluster_table()
    ));
    let mut pty = slurmkit_e2e::pty::Pty::spawn(project.command(&["submit"]));
    let (status, output) = pty.finish(std::time::Duration::from_secs(60));
    assert!(status.success(), "{output}");
    assert!(
        output.contains("staging "),
        "no progress on a terminal:\n{output}"
    );
    let quiet = project.run(&["submit"]);
    quiet.ok();
    assert!(!quiet.stderr.contains("staging"), "{}", quiet.stderr);
}

/// A graph's `workflow-*` events reach a callback once each, on the workflow's last job: begin, a
/// task submitted per job with its id, and end with how the last job ended. A step that fails gets
/// what runs after it cancelled by Slurm, so waiting ends and the workflow ends `CANCELLED`.
#[test]
fn a_graph_delivers_workflow_events_and_a_failed_step_cancels_what_follows() {
    let project = Project::new();
    let name = project.unique_name();
    let ledger = project.install_plugin(slurmkit_e2e::artifacts::RUST_LEDGER);
    project.slurmfile(&format!(
        r#"{}
[job]
time = "1m"

[jobs.a]
name = "{name}-a"
command = ["true"]

[jobs.b]
name = "{name}-b"
after = ["a"]
command = ["true"]

[jobs.c]
name = "{name}-c"
after_any = ["b"]
command = ["true"]

[jobs.x]
name = "{name}-x"
command = ["false"]

[jobs.y]
name = "{name}-y"
after = ["x"]
command = ["true"]

[jobs.z]
name = "{name}-z"
after = ["y"]
command = ["true"]

[[callbacks]]
name = "ledger"
plugin = "{ledger}"
events = ["workflow-begin", "workflow-task-submitted", "workflow-end"]
[callbacks.grants]
write = ["ledger"]
"#,
        cluster().cluster_table()
    ));
    let run = project.run(&["submit", "c", "--wait"]);
    run.ok();
    let ids: Vec<&str> = run.stdout.lines().filter(|l| !l.contains(' ')).collect();
    assert_eq!(ids.len(), 3, "{}", run.stdout);
    let ledger = || std::fs::read_to_string(project.path().join("ledger/events.tsv")).unwrap();
    let lines = ledger();
    let of_kind = |lines: &str, kind: &str| -> Vec<String> {
        lines
            .lines()
            .filter(|l| l.split('\t').nth(1) == Some(kind))
            .map(|l| l.split('\t').skip(3).collect::<Vec<_>>().join(" "))
            .collect()
    };
    assert_eq!(
        of_kind(&lines, "WorkflowBegin"),
        [format!("{name}-c ")],
        "{lines}"
    );
    assert_eq!(
        of_kind(&lines, "WorkflowTaskSubmitted"),
        [
            format!("{name}-c a={}", ids[0]),
            format!("{name}-c b={}", ids[1]),
            format!("{name}-c c={}", ids[2])
        ],
        "{lines}"
    );
    assert_eq!(
        of_kind(&lines, "WorkflowEnd"),
        [format!("{name}-c COMPLETED")],
        "{lines}"
    );
    // Seeing the end again delivers nothing new.
    project.run(&["status", ids[2]]).ok();
    assert_eq!(ledger(), lines);

    let failing = project.run(&["submit", "z", "--wait"]);
    assert_ne!(
        failing.code,
        Some(0),
        "{}{}",
        failing.stdout,
        failing.stderr
    );
    assert_eq!(
        failing.stdout.matches("CANCELLED").count(),
        2,
        "y and z are cancelled once x failed:\n{}",
        failing.stdout
    );
    let lines = ledger();
    assert_eq!(
        of_kind(&lines, "WorkflowEnd"),
        [format!("{name}-c COMPLETED"), format!("{name}-z CANCELLED")],
        "{lines}"
    );
}

/// An array of items larger than one array may be is split into several arrays, each task reading its
/// own item (`SLURMKIT_ITEM`) and writing its result and outputs into the first array's directory;
/// `result`, `status`, `fetch` and the job that runs after it take every part in.
#[test]
fn an_array_past_the_array_size_limit_is_split_and_taken_in_whole() {
    let project = Project::new();
    let name = project.unique_name();
    project.write("data/a.csv", "x\n1\n2\n");
    let items: Vec<String> = (1..=7).map(|f| format!("{{ factor = {f} }}")).collect();
    project.slurmfile(&format!(
        r#"{cluster}max_array_size = 3

[job]
time = "2m"

[jobs.sweep]
name = "{name}-sweep"
inputs = ["data/a.csv"]
items = [{items}]
max_concurrent = 2
outputs = ["out/"]
script = """
set -eu
mkdir -p out
# The later parts take longer: the job after this one must wait for them too.
[ "$SLURMKIT_ITEM" -lt 3 ] || sleep 2
python3 - <<'EOF'
import json, os
item = json.load(open(os.environ["SLURMKIT_ARGS"]))
rows = len(open("data/a.csv").read().splitlines())
n = int(os.environ["SLURMKIT_ITEM"])
json.dump({{"item": n, "task": int(os.environ["SLURM_ARRAY_TASK_ID"]), "value": item["factor"] * rows}}, open(os.environ["SLURMKIT_RESULT"], "w"))
open("out/%d.txt" % n, "w").write("%d\\n" % (item["factor"] * rows))
EOF
"""

[jobs.collect]
name = "{name}-collect"
after = ["sweep"]
script = """
python3 -c 'import glob, json, os; d = os.environ["SLURMKIT_DEP_SWEEP"]; v = [json.load(open(f))["value"] for f in glob.glob(d + "/results/*.json")]; json.dump({{"count": len(v), "sum": sum(v)}}, open(os.environ["SLURMKIT_RESULT"], "w"))'
"""
"#,
        cluster = cluster().cluster_table(),
        items = items.join(", ")
    ));
    let run = project.run(&["submit", "collect", "--wait"]);
    run.ok().stderr_contains("so it was split");
    let ids: Vec<&str> = run.stdout.lines().filter(|l| !l.contains(' ')).collect();
    assert_eq!(
        ids.len(),
        2,
        "one id for the sweep, one for collect:\n{}",
        run.stdout
    );
    assert_eq!(
        run.stdout.matches("COMPLETED ").count(),
        8,
        "seven tasks in three arrays, and collect:\n{}",
        run.stdout
    );
    let (sweep, collect) = (ids[0], ids[1]);
    let results: serde_json::Value =
        serde_json::from_str(&project.run(&["result", sweep]).ok().stdout).unwrap();
    let expected: Vec<serde_json::Value> = (0..7)
        .map(|i| serde_json::json!({"item": i, "task": i % 3, "value": (i + 1) * 3}))
        .collect();
    assert_eq!(
        results,
        serde_json::Value::Array(expected),
        "item order across the parts"
    );
    let collected: serde_json::Value =
        serde_json::from_str(&project.run(&["result", collect]).ok().stdout).unwrap();
    assert_eq!(
        collected,
        serde_json::json!({"count": 7, "sum": 84}),
        "after every part"
    );
    let status = project.run(&["status", sweep]);
    status.ok();
    assert_eq!(
        status.stdout.matches("COMPLETED ").count(),
        7,
        "every task of every part:\n{}",
        status.stdout
    );
    let fetched = project.path().join("fetched");
    project
        .run(&["fetch", sweep, "--to", fetched.to_str().unwrap()])
        .ok();
    for i in 0..7 {
        assert_eq!(
            std::fs::read_to_string(fetched.join(format!("out/{i}.txt"))).unwrap(),
            format!("{}\n", (i + 1) * 3)
        );
    }
}

/// The limit comes from the cluster too: the test cluster's MaxArraySize is 1001, so 1002 items make
/// two arrays, and cancelling the job cancels both.
#[test]
fn the_clusters_max_array_size_splits_an_array_and_cancel_takes_every_part() {
    let project = Project::new();
    let name = project.unique_name();
    let lines: Vec<String> = (0..1002).map(|i| format!("{{\"i\": {i}}}")).collect();
    project.write("params.jsonl", &(lines.join("\n") + "\n"));
    project.slurmfile(&format!(
        "{}\n[job]\nname = \"{name}\"\ntime = \"1m\"\nitems_file = \"params.jsonl\"\nextra_directives = [\"--begin=now+1hour\"]\ncommand = [\"true\"]\n",
        cluster().cluster_table()
    ));
    let run = project.run(&["submit"]);
    run.ok()
        .stderr_contains("1002 items")
        .stderr_contains("so it was split");
    let id = run.first_line();
    project.run(&["cancel", &id]).ok().stderr_contains(", ");
    let waited = project.run(&["wait", &id]);
    assert_eq!(
        waited.stdout.matches("CANCELLED").count(),
        2,
        "{}",
        waited.stdout
    );
}
