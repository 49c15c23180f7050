//! `slurmkit mcp` driven as an MCP client drives it, over stdio with JSON-RPC lines: initialize,
//! tools/list, then submit, status and cancel a job on the test cluster; every call journaled;
//! `--read-only` offers no tool that changes anything.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Stdio};

use serde_json::{Value, json};
use slurmkit_e2e::{Project, cluster};

struct Client {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    next_id: u64,
}

impl Client {
    fn start(project: &Project, args: &[&str]) -> Client {
        let mut child = project
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut client = Client {
            child,
            stdin,
            stdout,
            next_id: 1,
        };
        let init = client.request(
            "initialize",
            json!({
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": { "name": "slurmkit-e2e", "version": "1" }
            }),
        );
        assert_eq!(init["serverInfo"]["name"], "slurmkit", "{init}");
        client.send(json!({ "jsonrpc": "2.0", "method": "notifications/initialized" }));
        client
    }

    fn send(&mut self, message: Value) {
        writeln!(self.stdin, "{message}").unwrap();
        self.stdin.flush().unwrap();
    }

    /// The `result` of a request (panics on a JSON-RPC error).
    fn request(&mut self, method: &str, params: Value) -> Value {
        let reply = self.exchange(method, params);
        assert!(reply.get("error").is_none(), "{method}: {reply}");
        reply["result"].clone()
    }

    fn exchange(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        self.send(json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params }));
        loop {
            let mut line = String::new();
            assert!(
                self.stdout.read_line(&mut line).unwrap() > 0,
                "the server went away"
            );
            let message: Value = serde_json::from_str(&line).unwrap();
            if message["id"] == id {
                return message;
            }
        }
    }

    /// A tool's text, and whether it is an error.
    fn call(&mut self, tool: &str, arguments: Value) -> (String, bool) {
        let result = self.request(
            "tools/call",
            json!({ "name": tool, "arguments": arguments }),
        );
        let text = result["content"][0]["text"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        (text, result["isError"] == true)
    }

    fn tools(&mut self) -> Vec<String> {
        let listed = self.request("tools/list", json!({}));
        let mut names: Vec<String> = listed["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_string())
            .collect();
        names.sort();
        names
    }

    fn finish(mut self) {
        drop(self.stdin);
        let status = self.child.wait().unwrap();
        assert!(
            status.success(),
            "the server ends with its client: {status}"
        );
    }
}

fn project() -> Project {
    let project = Project::new();
    project.slurmfile(&format!(
        "{}\n[jobs.sleeper]\nname = \"{}\"\ntime = \"2m\"\nscript = \"sleep 60\"\n",
        cluster().cluster_table(),
        project.unique_name()
    ));
    project
}

#[test]
fn an_agent_submits_follows_and_cancels_a_job_over_stdio() {
    let project = project();
    let mut client = Client::start(&project, &["mcp"]);
    assert_eq!(
        client.tools(),
        [
            "cancel",
            "fetch",
            "jobs_list",
            "jobs_show",
            "logs",
            "result",
            "status",
            "submit"
        ]
    );

    let (text, error) = client.call("submit", json!({ "jobs": ["sleeper"] }));
    assert!(!error, "{text}");
    let submitted: Value = serde_json::from_str(&text).unwrap();
    let id = submitted[0]["job_id"].as_str().unwrap().to_string();
    assert!(
        submitted[0]["job_dir"]
            .as_str()
            .unwrap()
            .contains("/slurm_jobs/")
    );

    let (text, error) = client.call("status", json!({ "job_ids": [id] }));
    assert!(!error, "{text}");
    let statuses: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(statuses[0]["job_id"], id.as_str());

    let (text, error) = client.call("cancel", json!({ "job_ids": [id] }));
    assert!(!error, "{text}");
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap()["cancelled"],
        json!([id])
    );

    // Bad input is the tool's error, said as the command line would say it; the session goes on.
    let (text, error) = client.call("status", json!({ "job_ids": ["12; rm -rf ~"] }));
    assert!(error);
    assert!(
        text.contains("not a valid job id") || text.contains("job id"),
        "{text}"
    );
    let (text, error) = client.call("submit", json!({ "jobs": ["nosuch"] }));
    assert!(error && text.contains("no job \"nosuch\""), "{text}");
    client.finish();

    // Every call journaled, with how it went.
    let journal =
        slurmkit::journal::Journal::open(&project.data_dir().join("journal.sqlite")).unwrap();
    let calls: Vec<(String, Option<String>)> = journal
        .tool_calls()
        .unwrap()
        .into_iter()
        .map(|(tool, _, outcome)| (tool, outcome))
        .collect();
    let expected = [
        ("submit", "ok"),
        ("status", "ok"),
        ("cancel", "ok"),
        ("status", "error"),
        ("submit", "error"),
    ];
    assert_eq!(
        calls,
        expected.map(|(t, o)| (t.to_string(), Some(o.to_string())))
    );
}

#[test]
fn read_only_offers_nothing_that_changes_anything() {
    let project = project();
    let mut client = Client::start(&project, &["mcp", "--read-only"]);
    assert_eq!(
        client.tools(),
        ["jobs_list", "jobs_show", "logs", "result", "status"]
    );
    let reply = client.exchange(
        "tools/call",
        json!({ "name": "submit", "arguments": { "jobs": ["sleeper"] } }),
    );
    assert!(
        reply.get("error").is_some() || reply["result"]["isError"] == true,
        "{reply}"
    );
    client.finish();
    assert!(cluster().job_dirs_named(&project.unique_name()).is_empty());
}
