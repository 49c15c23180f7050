//! One function per command. Each resolves its plan first (no I/O before the plan is valid), opens
//! at most one connection, and reuses it for every step.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use super::args::{Cli, Command, GlobalArgs, JobArgs};
use super::plan::{self, Dirs};
use super::terminal::TerminalPrompter;
use crate::cluster::{self, Connection, Target};
use crate::config::Slurmfile;
use crate::diagnostics::{exit, exit_code_for_state};
use crate::job::journal::Journal;
use crate::plugin::PluginEngine;
use crate::plugin::callbacks::{Callbacks, Deliverer};
use crate::plugin::renderer::Renderer;
use crate::slurm::state::{JobState, JobStatus};
use crate::slurm::validate::JobId;

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let file = plan::load_slurmfile(&cli.global)?;
    let dirs = Dirs::resolve(&cli.global)?;
    match cli.command {
        Command::Render(job) => render(file.as_ref(), &dirs, &job).await,
        Command::Submit { job, wait } => {
            submit(&cli.global, file.as_ref(), &dirs, &job, wait).await
        }
        Command::Status { job_ids, json } => {
            status(&cli.global, file.as_ref(), &dirs, &job_ids, json).await
        }
        Command::Wait { job_id, timeout } => {
            wait(&cli.global, file.as_ref(), &dirs, &job_id, timeout).await
        }
        Command::Cancel { job_ids } => cancel(&cli.global, file.as_ref(), &dirs, &job_ids).await,
        Command::Logs {
            job_id,
            stderr,
            follow,
        } => logs(&cli.global, file.as_ref(), &dirs, &job_id, stderr, follow).await,
        Command::Doctor { json } => super::doctor::run(&cli.global, file.as_ref(), json).await,
        Command::Plugin(command) => super::plugin_cmd::run(command, file.as_ref(), &dirs).await,
    }
}

/// The configured renderer, or the built-in one.
pub fn load_renderer<'e>(
    engine: &'e PluginEngine,
    file: Option<&Slurmfile>,
) -> anyhow::Result<Renderer<'e>> {
    match file.and_then(|f| f.settings.renderer.as_ref().map(|r| (f, r))) {
        Some((file, settings)) => Ok(Renderer::load(
            engine,
            crate::plugin::renderer_spec(file, settings)?,
        )?),
        None => Ok(Renderer::builtin(engine)?),
    }
}

fn engine(dirs: &Dirs) -> anyhow::Result<PluginEngine> {
    Ok(PluginEngine::new(Some(dirs.cache.clone()))?)
}

async fn render(file: Option<&Slurmfile>, dirs: &Dirs, job: &JobArgs) -> anyhow::Result<ExitCode> {
    let spec = plan::resolve_job(file, job)?;
    let engine = engine(dirs)?;
    let renderer = load_renderer(&engine, file)?;
    let script = renderer.render(&spec).await?;
    print!("{script}");
    Ok(ExitCode::SUCCESS)
}

/// Everything a command that talks to the cluster needs.
struct Session<'e> {
    target: Target,
    conn: Connection,
    journal: Journal,
    deliverer: Deliverer<'e>,
}

impl<'e> Session<'e> {
    /// Connect to the (already resolved) target and load the callbacks.
    async fn open(
        target: Target,
        file: Option<&Slurmfile>,
        dirs: &Dirs,
        engine: &'e PluginEngine,
    ) -> anyhow::Result<Session<'e>> {
        let callbacks = Callbacks::load(engine, file).await;
        let journal = Journal::open(&dirs.journal())?;
        let conn = Connection::open(&target, Arc::new(TerminalPrompter))
            .await
            .with_context(|| format!("cannot connect to cluster {}", target.key))?;
        let deliverer = Deliverer::new(callbacks, target.key.clone());
        let session = Session {
            target,
            conn,
            journal,
            deliverer,
        };
        // Jobs whose submission was interrupted are recovered first; a problem there never stops the
        // command the user asked for.
        let mut observer = session.deliverer.observer(&session.journal);
        if let Err(e) = cluster::reconcile(
            &session.conn,
            &session.target,
            &session.journal,
            &mut observer,
        )
        .await
        {
            tracing::warn!("could not check interrupted submissions: {e}");
        }
        Ok(session)
    }

    /// Deliver what is due (including retries left over from earlier runs), then close.
    async fn finish(self) {
        self.deliverer.deliver_due(&self.journal).await;
        self.conn.close().await;
    }
}

async fn submit(
    global: &GlobalArgs,
    file: Option<&Slurmfile>,
    dirs: &Dirs,
    job: &JobArgs,
    wait_for_end: bool,
) -> anyhow::Result<ExitCode> {
    // The whole plan first: nothing is compiled or contacted for a job or cluster that cannot work.
    let spec = plan::resolve_job(file, job)?;
    let target = plan::resolve_target(global, file)?;
    let engine = engine(dirs)?;
    let renderer = load_renderer(&engine, file)?;
    let session = Session::open(target, file, dirs, &engine).await?;
    let submitted = cluster::submit(
        &session.conn,
        &session.target,
        &session.journal,
        &renderer,
        &spec,
        &mut session.deliverer.observer(&session.journal),
    )
    .await;
    let submitted = match submitted {
        Ok(submitted) => submitted,
        Err(error) => {
            session.finish().await;
            return Err(
                anyhow::Error::new(error).context(format!("submitting job {} failed", spec.name))
            );
        }
    };
    println!("{}", submitted.job_id);
    eprintln!(
        "Submitted job {} ({}) in {}",
        submitted.job_id, spec.name, submitted.job_dir
    );
    session.deliverer.deliver_due(&session.journal).await;
    let code = if wait_for_end {
        let statuses =
            wait_until_done(&session, std::slice::from_ref(&submitted.job_id), None).await?;
        report_final(&statuses)
    } else {
        ExitCode::SUCCESS
    };
    session.finish().await;
    Ok(code)
}

async fn status(
    global: &GlobalArgs,
    file: Option<&Slurmfile>,
    dirs: &Dirs,
    ids: &[JobId],
    json: bool,
) -> anyhow::Result<ExitCode> {
    let engine = engine(dirs)?;
    let session = Session::open(plan::resolve_target(global, file)?, file, dirs, &engine).await?;
    let ids: Vec<JobId> = if ids.is_empty() {
        session
            .journal
            .recent(&session.target.key, 20)?
            .into_iter()
            .filter_map(|s| s.job_id)
            .collect()
    } else {
        ids.to_vec()
    };
    let statuses = observe(&session, &ids).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&statuses)?);
    } else if statuses.is_empty() {
        eprintln!("No jobs submitted from here to {} yet.", session.target.key);
    } else {
        print_table(&statuses);
    }
    session.finish().await;
    Ok(ExitCode::SUCCESS)
}

async fn wait(
    global: &GlobalArgs,
    file: Option<&Slurmfile>,
    dirs: &Dirs,
    id: &JobId,
    timeout: Option<u64>,
) -> anyhow::Result<ExitCode> {
    let engine = engine(dirs)?;
    let session = Session::open(plan::resolve_target(global, file)?, file, dirs, &engine).await?;
    let result = wait_until_done(
        &session,
        std::slice::from_ref(id),
        timeout.map(Duration::from_secs),
    )
    .await;
    let code = match result {
        Ok(statuses) => report_final(&statuses),
        Err(e) => {
            session.finish().await;
            return Err(e);
        }
    };
    session.finish().await;
    Ok(code)
}

async fn cancel(
    global: &GlobalArgs,
    file: Option<&Slurmfile>,
    dirs: &Dirs,
    ids: &[JobId],
) -> anyhow::Result<ExitCode> {
    let engine = engine(dirs)?;
    let session = Session::open(plan::resolve_target(global, file)?, file, dirs, &engine).await?;
    let result = crate::slurm::scancel(&session.conn, ids).await;
    if result.is_ok() {
        eprintln!(
            "Cancelled {}",
            ids.iter().map(JobId::as_str).collect::<Vec<_>>().join(", ")
        );
    }
    session.finish().await;
    result.context("scancel failed")?;
    Ok(ExitCode::SUCCESS)
}

async fn logs(
    global: &GlobalArgs,
    file: Option<&Slurmfile>,
    dirs: &Dirs,
    id: &JobId,
    stderr: bool,
    follow: bool,
) -> anyhow::Result<ExitCode> {
    let engine = engine(dirs)?;
    let session = Session::open(plan::resolve_target(global, file)?, file, dirs, &engine).await?;
    let result = print_logs(&session, id, stderr, follow).await;
    session.finish().await;
    result?;
    Ok(ExitCode::SUCCESS)
}

async fn print_logs(
    session: &Session<'_>,
    id: &JobId,
    stderr: bool,
    follow: bool,
) -> anyhow::Result<()> {
    /// Output is copied in pieces of this size, so a huge log never sits in memory whole.
    const CHUNK: u64 = 1 << 20;
    let (conn, target, journal) = (&session.conn, &session.target, &session.journal);
    let mut offset = 0u64;
    let mut interval = Duration::from_millis(500);
    loop {
        let finished = if follow {
            observe(session, std::slice::from_ref(id))
                .await?
                .iter()
                .all(|s| s.state.is_terminal())
        } else {
            true
        };
        loop {
            match cluster::read_log(conn, target, journal, id, stderr, offset, CHUNK).await {
                Ok(bytes) => {
                    offset += bytes.len() as u64;
                    let mut out = std::io::stdout().lock();
                    out.write_all(&bytes)?;
                    out.flush()?;
                    if !bytes.is_empty() {
                        interval = Duration::from_millis(500);
                    }
                    if (bytes.len() as u64) < CHUNK {
                        break;
                    }
                }
                Err(cluster::ClusterError::NoOutputYet { .. }) if follow && !finished => break,
                Err(e) => return Err(e.into()),
            }
        }
        // Read once more after the job ends: output is flushed when the job exits.
        if finished {
            return Ok(());
        }
        tokio::time::sleep(interval).await;
        interval = (interval * 2).min(Duration::from_secs(5));
    }
}

/// Query statuses once, queue callbacks for what changed, journal the new states, deliver.
async fn observe(session: &Session<'_>, ids: &[JobId]) -> anyhow::Result<Vec<JobStatus>> {
    let mut observer = session.deliverer.status_observer(&session.journal);
    let statuses = cluster::observe(
        &session.conn,
        &session.target,
        &session.journal,
        ids,
        &mut observer,
    )
    .await?;
    session.deliverer.deliver_due(&session.journal).await;
    Ok(statuses)
}

/// Poll until every job (every task of an array) is terminal. Starts fast and backs off to 30 s, so a
/// short job is seen finishing within a second and a long one costs the controller little.
async fn wait_until_done(
    session: &Session<'_>,
    ids: &[JobId],
    timeout: Option<Duration>,
) -> anyhow::Result<Vec<JobStatus>> {
    /// Consecutive failed queries tolerated (the controller restarting, a busy login node) before
    /// giving up; with the backoff below that is about ten minutes.
    const TRANSIENT_FAILURES: u32 = 25;
    let started = std::time::Instant::now();
    let mut interval = Duration::from_millis(250);
    let mut last_states: Vec<(JobId, JobState)> = Vec::new();
    let mut failures = 0;
    loop {
        match observe(session, ids).await {
            Ok(statuses) => {
                failures = 0;
                if let Some(unknown) = statuses.iter().find(|s| s.state == JobState::Unknown) {
                    return Err(cluster::ClusterError::UnknownJob {
                        job_id: unknown.job_id.clone(),
                    }
                    .into());
                }
                let states: Vec<(JobId, JobState)> = statuses
                    .iter()
                    .map(|s| (s.job_id.clone(), s.state))
                    .collect();
                if states != last_states {
                    for status in &statuses {
                        tracing::info!("job {} is {}", status.job_id, status.state);
                    }
                    interval = Duration::from_millis(250);
                    last_states = states;
                }
                if !statuses.is_empty() && statuses.iter().all(|s| s.state.is_terminal()) {
                    return Ok(statuses);
                }
            }
            Err(error) if is_transient(&error) && failures < TRANSIENT_FAILURES => {
                failures += 1;
                tracing::warn!(
                    "{error:#} (still waiting; attempt {failures} of {TRANSIENT_FAILURES})"
                );
            }
            Err(error) => return Err(error),
        }
        if let Some(limit) = timeout
            && started.elapsed() >= limit
        {
            let state = last_states
                .first()
                .map(|(_, state)| *state)
                .unwrap_or(JobState::Unknown);
            return Err(cluster::ClusterError::WaitTimedOut {
                seconds: limit.as_secs(),
                state,
            }
            .into());
        }
        tokio::time::sleep(interval).await;
        interval = (interval * 2).min(Duration::from_secs(30));
    }
}

/// A Slurm command that ran and failed may succeed next time; a dead connection or a refused host
/// key will not.
fn is_transient(error: &anyhow::Error) -> bool {
    matches!(
        error.downcast_ref::<cluster::ClusterError>(),
        Some(cluster::ClusterError::Slurm(
            crate::slurm::SlurmError::Command(crate::exec::CommandError::Failed { .. })
        ))
    )
}

/// Print the outcome and pick the exit code of the worst task.
fn report_final(statuses: &[JobStatus]) -> ExitCode {
    print_table(statuses);
    let worst = statuses
        .iter()
        .map(|s| exit_code_for_state(s.state))
        .max()
        .unwrap_or(exit::JOB_FAILED);
    ExitCode::from(worst)
}

fn print_table(statuses: &[JobStatus]) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "{:<14} {:<14} {:>5}  REASON",
        "JOB ID", "STATE", "EXIT"
    );
    for status in statuses {
        let exit = match (status.exit_code, status.signal) {
            (Some(code), None) => code.to_string(),
            (Some(code), Some(signal)) => format!("{code}:{signal}"),
            _ => "-".into(),
        };
        let _ = writeln!(
            out,
            "{:<14} {:<14} {:>5}  {}",
            status.job_id,
            status.state,
            exit,
            status.reason.as_deref().unwrap_or("")
        );
    }
}
