//! Getting the node-side runner ([`crate::runner`]) to a job, and its events back.
//!
//! The runner is this very binary. It goes up once per version into a content-addressed cache under the
//! job base directory (`.slurmkit/runner/<sha256>/slurmkit`), as do the components of `on = "node"`
//! callbacks (`.slurmkit/plugins/<sha256>.wasm`); a job directory gets `.slurmkit/node.json`, and the
//! job's prologue checks the runner's sha256 and that it starts on the node before handing the script
//! to it. A runner that is missing, altered or cannot run there (another architecture or libc) is said
//! on the job's stderr, and the payload runs without it.

use std::sync::OnceLock;

use super::{LifecycleError, Session};
use crate::config::node::{
    NODE_EVENTS_FILE, NodeCallback, NodeEvent, NodeLimits, NodePlan, parse_events,
};
use crate::exec::Exec;
use crate::journal::Submission;
use crate::slurm::SlurmError;
use crate::types::names::JobId;
use crate::types::shell::{ShellCommand, quote};

/// Where the uploaded runner is and what it must hash to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunnerRef {
    pub path: String,
    pub sha256: String,
}

/// What the jobs of one submission get: the runner, and their `node.json`.
#[derive(Debug, Clone)]
pub struct NodeSetup {
    pub runner: RunnerRef,
    pub plan: Vec<u8>,
}

/// The largest event log read back (a runner writes two short lines per run).
const MAX_EVENT_LOG: u64 = 1 << 20;

/// Upload what the runner needs, when a callback takes run events; `None` when none does, or (said
/// in the log) when this build cannot be a runner on a cluster.
pub async fn prepare(session: &Session, base: &str) -> Result<Option<NodeSetup>, LifecycleError> {
    if !session.outbox.wants_run_events() {
        return Ok(None);
    }
    if !cfg!(target_os = "linux") {
        tracing::warn!(
            "run-begin and run-end come from the node-side runner, which is this binary; a build for {} cannot run on a Linux cluster, so jobs run without it",
            std::env::consts::OS
        );
        return Ok(None);
    }
    let (exe, sha256) = own_binary().await?;
    let cache = format!("{base}/.slurmkit");
    let runner = RunnerRef {
        path: format!("{cache}/runner/{sha256}/slurmkit"),
        sha256,
    };
    let mut uploads: Vec<(String, Upload)> = vec![(runner.path.clone(), Upload::File(exe))];
    let mut callbacks = Vec::new();
    for source in &session.outbox.node {
        let wasm = format!("{cache}/plugins/{}.wasm", source.spec.sha256);
        uploads.push((wasm.clone(), Upload::Bytes(source.spec.bytes.to_vec())));
        let limits = source.spec.limits;
        callbacks.push(NodeCallback {
            name: source.spec.name.clone(),
            wasm,
            sha256: source.spec.sha256.clone(),
            config: source.spec.config.clone(),
            grants: source.grants.clone(),
            limits: NodeLimits {
                memory: limits.memory,
                timeout_ms: limits.timeout.as_millis() as u64,
                output: limits.output,
                compile_time_ms: limits.compile_time.as_millis() as u64,
                compile_memory: limits.compile_memory,
            },
            events: source.events.clone(),
        });
    }
    upload_missing(session, uploads).await?;
    let plan = NodePlan {
        cluster: session.target.key.clone(),
        callbacks,
    };
    Ok(Some(NodeSetup {
        runner,
        plan: serde_json::to_vec_pretty(&plan).expect("a node plan always serializes"),
    }))
}

enum Upload {
    File(std::path::PathBuf),
    Bytes(Vec<u8>),
}

/// This binary and its sha256, hashed once per process.
async fn own_binary() -> Result<(std::path::PathBuf, String), LifecycleError> {
    static OWN: OnceLock<(std::path::PathBuf, String)> = OnceLock::new();
    if let Some(own) = OWN.get() {
        return Ok(own.clone());
    }
    let hashed = tokio::task::spawn_blocking(|| {
        let exe = std::env::current_exe()?;
        let bytes = std::fs::read(&exe)?;
        let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
        Ok::<_, std::io::Error>((exe, sha))
    })
    .await
    .map_err(|e| LifecycleError::Output(std::io::Error::other(e.to_string())))?
    .map_err(LifecycleError::Output)?;
    Ok(OWN.get_or_init(|| hashed).clone())
}

/// One command to learn which files are missing, then one upload each for those (written to a
/// temporary name and renamed: a reader never sees half a file, and two sessions racing write the
/// same bytes).
async fn upload_missing(
    session: &Session,
    uploads: Vec<(String, Upload)>,
) -> Result<(), LifecycleError> {
    let check = ShellCommand::sh(
        "find missing files",
        r#"for f in "$@"; do [ -f "$f" ] || printf '%s\n' "$f"; done"#,
    )
    .args(uploads.iter().map(|(path, _)| path.as_str()));
    let missing = session
        .conn
        .exec(&check)
        .await
        .map_err(SlurmError::from)?
        .check(&check)
        .map_err(SlurmError::from)?
        .stdout_text();
    for (path, upload) in uploads {
        if !missing.lines().any(|l| l == path) {
            continue;
        }
        tracing::info!("uploading {path}");
        let write = ShellCommand::sh(
            "upload a file",
            r#"set -e; mkdir -p "${1%/*}"; tmp="$1.tmp.$$"; cat > "$tmp"; chmod 0555 "$tmp"; mv -f "$tmp" "$1""#,
        )
        .arg(&path);
        let output = match upload {
            Upload::File(local) => {
                let file = tokio::fs::File::open(&local)
                    .await
                    .map_err(LifecycleError::Output)?;
                session.conn.run_stream(&write, file).await
            }
            Upload::Bytes(bytes) => session.conn.run(&write, &bytes).await,
        };
        output
            .map_err(SlurmError::from)?
            .check(&write)
            .map_err(SlurmError::from)?;
    }
    Ok(())
}

/// The prologue lines that hand the script to the runner once per job (the runner runs the script
/// again, which then skips them), or say on stderr why the job runs without it.
pub fn prologue_block(runner: &RunnerRef) -> String {
    let path = quote(&runner.path);
    let without = "so the job runs without it (no run-begin/run-end events)";
    format!(
        "if [ \"${{SLURMKIT_RUNNER_JOB:-}}\" != \"${{SLURM_JOB_ID:-none}}\" ]; then\n\
         SLURMKIT_RUNNER_JOB=${{SLURM_JOB_ID:-none}}; export SLURMKIT_RUNNER_JOB\n\
         if ! printf '%s  %s\\n' {sha} {path} | sha256sum --check --quiet --strict >/dev/null 2>&1; then\n\
         echo \"slurmkit: the node-side runner \"{path}\" is missing or is not the one uploaded, {without}\" >&2\n\
         elif ! {path} node-run --probe >/dev/null 2>&1; then\n\
         echo \"slurmkit: the node-side runner cannot start on $(uname -n) ($(uname -sm); it is a build for {arch} {os}: another architecture or C library, or a file system mounted noexec), {without}\" >&2\n\
         else exec {path} node-run \"$SLURMKIT_JOB_DIR\" \"$0\" \"$@\"; fi\n\
         fi\n",
        sha = runner.sha256,
        arch = std::env::consts::ARCH,
        os = std::env::consts::OS,
    )
}

/// Queue the events the runner logged for a journaled job whose callbacks take run events; read when
/// the job was seen to start or end. Returns whether everything was queued.
pub async fn collect_events(session: &Session, submission: &Submission) -> bool {
    let routes = submission
        .callbacks
        .clone()
        .unwrap_or_else(|| session.outbox.routes().to_vec());
    if !routes
        .iter()
        .any(|r| r.admits("run-begin") || r.admits("run-end"))
    {
        return true;
    }
    // The parts of an array split at MaxArraySize run in the first part's directory and log there:
    // each takes its own tasks' events.
    let dir = submission
        .group
        .part_of
        .as_deref()
        .unwrap_or(&submission.job_dir);
    let read =
        crate::transfer::read_confined(&session.conn, dir, NODE_EVENTS_FILE, 0, MAX_EVENT_LOG)
            .await;
    match read {
        Ok(bytes) => {
            let own = |event: &NodeEvent| {
                let logged = JobId::parse(&event.job_id);
                match (&submission.job_id, logged) {
                    (Some(id), Ok(logged)) => crate::slurm::same_job(id, &logged),
                    _ => true,
                }
            };
            let events: Vec<NodeEvent> = parse_events(&String::from_utf8_lossy(&bytes))
                .into_iter()
                .filter(own)
                .collect();
            session.outbox.node_events(submission, &events).await
        }
        Err(crate::transfer::TransferError::NotFound { .. }) => true,
        Err(e) => {
            tracing::warn!(
                "cannot read the node's events of {}: {e}",
                submission.job_dir
            );
            true
        }
    }
}
