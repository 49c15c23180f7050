//! The node-side runner: `slurmkit node-run JOB_DIR SCRIPT [ARGS...]`, which a job's script hands itself
//! to on the compute node (see `lifecycle::runner` for how it gets there). It logs `run-begin` (node,
//! task, time) and `run-end` (exit code, signal, elapsed, peak memory) as JSON lines in the job
//! directory, runs the job's `on = "node"` callbacks for them under the same pins, grants (relative to
//! the job directory) and limits as anywhere else, and runs the payload in between, passing signals on.
//!
//! Nothing the runner or a callback does changes the payload's exit code or output: every problem is
//! one line on stderr, and the exit status is the payload's (a signal re-raised as that signal).

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::config::node::{
    NODE_EVENTS_FILE, NODE_PLAN_FILE, NodeCallback, NodeEvent, NodePlan, RunInfo,
};
use crate::lifecycle::event::{EventDetail, HostEvent, NodeDetails};
use crate::plugin::callbacks::CallbackPlugin;
use crate::plugin::{Capabilities, Limits, PluginEngine, PluginSpec};
use crate::types::job_dir::SPEC_FILE;
use crate::types::spec::JobSpec;
use crate::types::text::bounded;
use crate::wit::EventKind;

/// The argument that makes the slurmkit binary the node-side runner.
pub const RUNNER_ARG: &str = "node-run";
/// `node-run --probe`: exits 0 when this binary can run here at all.
pub const PROBE_ARG: &str = "--probe";

/// Signals passed on to the payload (Slurm's `--signal=B:...` goes to the batch shell only).
const FORWARDED: [libc::c_int; 6] = [
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGHUP,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGCONT,
];

fn say(message: &str) {
    let _ = writeln!(
        std::io::stderr(),
        "slurmkit runner: {}",
        bounded(message, 2000)
    );
}

/// The runner's entry point, from `cli::main`.
pub fn main(args: &[OsString]) -> ExitCode {
    if args.first().is_some_and(|a| a == PROBE_ARG) {
        return ExitCode::SUCCESS;
    }
    let [job_dir, script, script_args @ ..] = args else {
        say("usage: slurmkit node-run JOB_DIR SCRIPT [ARGS...]");
        return ExitCode::from(2);
    };
    let job_dir = PathBuf::from(job_dir);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            say(&format!(
                "cannot start ({e}); running the job without the runner"
            ));
            let error = std::process::Command::new(script).args(script_args).exec();
            say(&format!("cannot run the job script: {error}"));
            return ExitCode::from(127);
        }
    };
    let ended = runtime.block_on(run(&job_dir, script, script_args));
    drop(runtime);
    match ended {
        Ended::Code(code) => ExitCode::from(code),
        Ended::Signal(signal) => {
            // The same end as the payload's, so Slurm records the signal.
            // SAFETY: resetting a handler and raising a signal at ourselves.
            unsafe {
                libc::signal(signal, libc::SIG_DFL);
                libc::raise(signal);
            }
            ExitCode::from(128 + signal as u8)
        }
    }
}

enum Ended {
    Code(u8),
    Signal(libc::c_int),
}

async fn run(job_dir: &Path, script: &OsString, args: &[OsString]) -> Ended {
    let context = Context::read(job_dir);
    let callbacks = match &context {
        Some(context) => load_callbacks(context, job_dir).await,
        None => Vec::new(),
    };
    let started = Instant::now();
    let begin = node_event(EventKind::RunBegin, None);
    if let Some(context) = &context {
        context.record(job_dir, &begin, &callbacks).await;
    }

    let child = match std::process::Command::new(script).args(args).spawn() {
        Ok(child) => child,
        Err(e) => {
            say(&format!("cannot run the job script: {e}"));
            return Ended::Code(127);
        }
    };
    let pid = child.id() as libc::pid_t;
    let waited = tokio::task::spawn_blocking(move || wait4(pid));
    let forwarding = tokio::spawn(forward_signals(pid));
    let (status, usage) = match waited.await {
        Ok(Ok(result)) => result,
        Ok(Err(e)) => {
            say(&format!("cannot wait for the job script: {e}"));
            return Ended::Code(1);
        }
        Err(e) => {
            say(&format!("cannot wait for the job script: {e}"));
            return Ended::Code(1);
        }
    };
    forwarding.abort();
    let (exit_code, signal) = if libc::WIFSIGNALED(status) {
        (None, Some(libc::WTERMSIG(status)))
    } else {
        (Some(libc::WEXITSTATUS(status)), None)
    };
    let run = RunInfo {
        exit_code,
        signal: signal.map(|s| s as u32),
        elapsed_ms: started.elapsed().as_millis() as u64,
        // ru_maxrss is in KiB on Linux.
        peak_memory_kib: u64::try_from(usage.ru_maxrss).ok().filter(|m| *m > 0),
    };
    let end = node_event(EventKind::RunEnd, Some(run));
    if let Some(context) = &context {
        context.record(job_dir, &end, &callbacks).await;
    }
    match (exit_code, signal) {
        (_, Some(signal)) => Ended::Signal(signal),
        (Some(code), None) => Ended::Code(code as u8),
        (None, None) => Ended::Code(1),
    }
}

/// What the runner needs from the job directory.
struct Context {
    plan: NodePlan,
    spec: JobSpec,
}

impl Context {
    /// The plan and spec, or `None` (said on stderr) when they cannot be read: the payload still runs.
    fn read(job_dir: &Path) -> Option<Context> {
        let read = |name: &str| {
            std::fs::read(job_dir.join(name)).map_err(|e| format!("cannot read {name}: {e}"))
        };
        let parsed = (|| {
            let plan: NodePlan = serde_json::from_slice(&read(NODE_PLAN_FILE)?)
                .map_err(|e| format!("{NODE_PLAN_FILE} is not valid: {e}"))?;
            let spec: JobSpec = serde_json::from_slice(&read(SPEC_FILE)?)
                .map_err(|e| format!("{SPEC_FILE} is not valid: {e}"))?;
            Ok::<_, String>(Context { plan, spec })
        })();
        match parsed {
            Ok(context) => Some(context),
            Err(e) => {
                say(&format!("{e}; the job runs without run events"));
                None
            }
        }
    }

    /// Log `event` for the client, then hand it to the callbacks that take it.
    async fn record(
        &self,
        job_dir: &Path,
        event: &NodeEvent,
        callbacks: &[(NodeCallback, CallbackPlugin)],
    ) {
        if let Err(e) = append_line(&job_dir.join(NODE_EVENTS_FILE), event) {
            say(&format!("cannot log {} for the client: {e}", event.kind));
        }
        let host_event = HostEvent {
            id: format!(
                "{}{}#{}{}",
                self.plan.cluster,
                job_dir.display(),
                event.kind,
                event.id_suffix()
            ),
            kind: event.kind,
            spec: self.spec.clone(),
            cluster: self.plan.cluster.clone(),
            job_id: Some(event.job_id.clone()),
            job_dir: Some(job_dir.display().to_string()),
            timestamp_ms: event.timestamp_ms,
            detail: event.run.map_or(EventDetail::None, EventDetail::Run),
            node: Some(NodeDetails {
                node: event.node.clone(),
                array_task_id: event.array_task_id,
                step: event.step.clone(),
            }),
        };
        let record = host_event.to_wit();
        for (settings, plugin) in callbacks {
            if !settings.events.contains(&event.kind) || !plugin.events.contains(&event.kind) {
                continue;
            }
            if let Err(failure) = plugin.deliver(&record).await {
                say(&format!(
                    "callback {} failed on {} (the job is not affected): {}",
                    settings.name, event.kind, failure.message
                ));
            }
        }
    }
}

/// The node callbacks that load; each that does not is said on stderr and left out.
async fn load_callbacks(context: &Context, job_dir: &Path) -> Vec<(NodeCallback, CallbackPlugin)> {
    if context.plan.callbacks.is_empty() {
        return Vec::new();
    }
    let cache = job_dir
        .parent()
        .map(|base| base.join(".slurmkit").join("cache"));
    let engine = match PluginEngine::new(cache, std::env::current_exe().ok()) {
        Ok(engine) => engine,
        Err(e) => {
            say(&format!(
                "cannot start the plugin engine: {e}; node callbacks do not run"
            ));
            return Vec::new();
        }
    };
    let mut loaded = Vec::new();
    for callback in &context.plan.callbacks {
        let plugin = async {
            let mut spec = PluginSpec::from_file(
                &callback.name,
                Path::new(&callback.wasm),
                Some(&callback.sha256),
            )?;
            spec.config = callback.config.clone();
            spec.capabilities =
                Capabilities::from_grants(&callback.name, &callback.grants, job_dir)?;
            spec.limits = Limits {
                memory: callback.limits.memory,
                timeout: Duration::from_millis(callback.limits.timeout_ms),
                output: callback.limits.output,
                compile_time: Duration::from_millis(callback.limits.compile_time_ms),
                compile_memory: callback.limits.compile_memory,
            };
            CallbackPlugin::load(&engine, spec, Some(&callback.events)).await
        }
        .await;
        match plugin {
            Ok(plugin) => loaded.push((callback.clone(), plugin)),
            Err(e) => say(&format!(
                "callback {} is not loaded (the job is not affected): {e}",
                callback.name
            )),
        }
    }
    loaded
}

/// An event about this job as Slurm's environment describes it.
fn node_event(kind: EventKind, run: Option<RunInfo>) -> NodeEvent {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let array_task_id = var("SLURM_ARRAY_TASK_ID").and_then(|t| t.parse().ok());
    let job_id = match (var("SLURM_ARRAY_JOB_ID"), array_task_id) {
        (Some(array), Some(task)) => format!("{array}_{task}"),
        _ => var("SLURM_JOB_ID").unwrap_or_default(),
    };
    NodeEvent {
        kind,
        job_id,
        node: var("SLURMD_NODENAME").unwrap_or_else(hostname),
        array_task_id,
        step: "batch".into(),
        restart: var("SLURM_RESTART_COUNT")
            .and_then(|c| c.parse().ok())
            .unwrap_or(0),
        timestamp_ms: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
        run,
    }
}

fn hostname() -> String {
    let mut buffer = [0u8; 256];
    // SAFETY: gethostname writes at most buffer.len() bytes into the buffer we own.
    let ok = unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len()) } == 0;
    let end = buffer.iter().position(|b| *b == 0).unwrap_or(buffer.len());
    if ok {
        String::from_utf8_lossy(&buffer[..end]).into_owned()
    } else {
        "unknown".into()
    }
}

/// One line, in one `write` to a file opened for appending: tasks of an array share the log.
fn append_line(path: &Path, event: &NodeEvent) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut line = serde_json::to_vec(event).map_err(std::io::Error::other)?;
    line.push(b'\n');
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    file.write_all(&line)
}

/// Wait for the payload with its own resource usage (a compiling child of the runner is not counted).
fn wait4(pid: libc::pid_t) -> std::io::Result<(libc::c_int, libc::rusage)> {
    let mut status = 0;
    // SAFETY: zeroed rusage is a valid value for wait4 to fill.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: wait4 on our own child, writing into values we own.
        let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if rc == pid {
            return Ok((status, usage));
        }
        let error = std::io::Error::last_os_error();
        if error.kind() != std::io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
}

/// Pass each of [`FORWARDED`] on to the payload as it arrives, until aborted.
async fn forward_signals(pid: libc::pid_t) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut tasks = tokio::task::JoinSet::new();
    for number in FORWARDED {
        let Ok(mut stream) = signal(SignalKind::from_raw(number)) else {
            continue;
        };
        tasks.spawn(async move {
            while stream.recv().await.is_some() {
                // SAFETY: signalling our own child.
                unsafe {
                    libc::kill(pid, number);
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}
