//! `slurmkit dash`: a terminal dashboard over one connection. Each round is one `squeue` for the queue
//! and one status query for the jobs submitted from here (as `jobs watch` and `status` do); keys come
//! from a thread reading the terminal, so drawing never waits on the network. The terminal is restored
//! on every way out: quitting, an error, Ctrl-C, a panic.

mod view;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use ratatui::crossterm::event::{self, Event, KeyEventKind, KeyModifiers};
use tokio::sync::mpsc;

use super::diagnostics::{Failure, Refused};
use super::plugins::engine;
use super::session::in_session;
use crate::lifecycle::{LifecycleError, Plan, Session, logs, observe};
use crate::slurm::views::{self, QueueFilter};
use crate::types::names::JobId;
use view::{Action, App};

/// The most of a log read for its tail.
const LOG_READ: u64 = 1 << 20;

pub async fn dash(plan: &Plan, interval: u64) -> Result<ExitCode, Failure> {
    let term = std::env::var("TERM").unwrap_or_default();
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        return Err(Refused(
            "the dashboard needs a terminal; `slurmkit jobs watch` and `slurmkit status --json` work without one".into(),
        )
        .into());
    }
    if term.is_empty() || term == "dumb" {
        return Err(Refused(format!(
            "the dashboard cannot draw on this terminal (TERM={}); use `slurmkit jobs watch`",
            if term.is_empty() { "unset" } else { &term }
        ))
        .into());
    }
    let engine = engine(plan)?;
    in_session(plan, plan.target().await?, &engine, async |session| {
        let mut app = App::new(&session.target.key);
        refresh(session, &mut app).await;
        let _restore = Restore;
        let mut terminal = ratatui::try_init()?;
        let (keys_tx, mut keys) = mpsc::channel(16);
        std::thread::spawn(move || read_keys(keys_tx));
        let mut tick = tokio::time::interval(Duration::from_secs(interval));
        tick.tick().await;
        loop {
            terminal.draw(|frame| view::draw(frame, &app))?;
            tokio::select! {
                key = keys.recv() => {
                    let Some((code, ctrl)) = key else { break };
                    match app.on_key(code, ctrl) {
                        Action::None => {}
                        Action::Quit => break,
                        Action::Refresh => refresh(session, &mut app).await,
                        Action::ShowLog(job) => show_log(session, &mut app, &job).await,
                        Action::Cancel(job) => cancel(session, &mut app, &job).await,
                    }
                }
                _ = tick.tick() => refresh(session, &mut app).await,
            }
        }
        Ok(ExitCode::SUCCESS)
    })
    .await
}

/// Puts the terminal back when dropped, whichever way the dashboard ends.
struct Restore;

impl Drop for Restore {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

/// Forward key presses until the dashboard stops listening.
fn read_keys(keys: mpsc::Sender<(event::KeyCode, bool)>) {
    while !keys.is_closed() {
        match event::poll(Duration::from_millis(200)) {
            Ok(false) => continue,
            Ok(true) => {}
            Err(_) => return,
        }
        if let Ok(Event::Key(key)) = event::read()
            && key.kind == KeyEventKind::Press
        {
            let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
            if keys.blocking_send((key.code, ctrl)).is_err() {
                return;
            }
        }
    }
}

/// One `squeue` for the queue and one status query for the jobs submitted from here.
async fn refresh(session: &Session, app: &mut App) {
    match views::queue(&session.conn, &QueueFilter::default()).await {
        Ok(rows) => app.queue = rows,
        Err(e) => app.message = format!("the queue could not be read: {e}"),
    }
    let key = session.target.key.clone();
    let recent = session.journal.run(move |j| j.recent(&key, 20)).await;
    let ids: Vec<JobId> = recent
        .map(|submissions| submissions.into_iter().filter_map(|s| s.job_id).collect())
        .unwrap_or_default();
    match observe::observe(session, &ids).await {
        Ok(statuses) => app.mine = statuses,
        Err(e) => app.message = format!("my jobs could not be read: {e}"),
    }
    app.updated = super::views::utc_clock();
    app.clamp();
}

async fn show_log(session: &Session, app: &mut App, job: &str) {
    let tail = match JobId::parse(job) {
        Ok(id) => match logs::read_log(session, &id, false, 0, LOG_READ).await {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) => format!("(no log: {e})"),
        },
        Err(e) => format!("(no log: {e})"),
    };
    app.log = Some((job.to_string(), tail));
}

async fn cancel(session: &Session, app: &mut App, job: &str) {
    let cancelled = match JobId::parse(job) {
        Ok(id) => crate::slurm::scancel(&session.conn, &[id])
            .await
            .map_err(|e| LifecycleError::from(e).to_string()),
        Err(e) => Err(e.to_string()),
    };
    app.message = match cancelled {
        Ok(()) => format!("cancelled job {job}"),
        Err(e) => format!("job {job} not cancelled: {e}"),
    };
    refresh(session, app).await;
}
