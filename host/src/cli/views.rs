//! `jobs list|show|watch` and `cluster show|watch`: the queue and the cluster as anyone sees them,
//! whoever submitted the jobs. Each round is one Slurm command; `watch` redraws in place on a terminal.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use super::args::{ClusterCommand, JobsCommand, QueueArgs};
use super::diagnostics::Failure;
use super::plugins::engine;
use super::session::in_session;
use crate::lifecycle::{LifecycleError, Plan, Session};
use crate::slurm::views::{self, PartitionView, QueueFilter, QueueRow};
use crate::types::names::JobId;
use crate::types::text::bounded;

pub async fn jobs(plan: &Plan, command: JobsCommand) -> Result<ExitCode, Failure> {
    let engine = engine(plan)?;
    in_session(plan, plan.target().await?, &engine, async |session| {
        match command {
            JobsCommand::List { filter, json } => {
                let rows = views::queue(&session.conn, &filter_of(&filter))
                    .await
                    .map_err(LifecycleError::from)?;
                let text = if json {
                    json_text(&rows)
                } else {
                    queue_table(&rows)
                };
                outln!("{}", text.trim_end());
            }
            JobsCommand::Show { job_id, json } => show(session, &job_id, json).await?,
            JobsCommand::Watch { filter, interval } => {
                let filter = filter_of(&filter);
                watch(interval, async || {
                    views::queue(&session.conn, &filter)
                        .await
                        .map(|rows| queue_table(&rows))
                        .map_err(|e| e.to_string())
                })
                .await?;
            }
        }
        Ok(ExitCode::SUCCESS)
    })
    .await
}

pub async fn cluster(plan: &Plan, command: ClusterCommand) -> Result<ExitCode, Failure> {
    let engine = engine(plan)?;
    in_session(plan, plan.target().await?, &engine, async |session| {
        match command {
            ClusterCommand::Show { json } => {
                let partitions = views::cluster(&session.conn)
                    .await
                    .map_err(LifecycleError::from)?;
                let text = if json {
                    json_text(&serde_json::json!({ "partitions": partitions }))
                } else {
                    cluster_table(&partitions)
                };
                outln!("{}", text.trim_end());
            }
            ClusterCommand::Watch { interval } => {
                watch(interval, async || {
                    views::cluster(&session.conn)
                        .await
                        .map(|p| cluster_table(&p))
                        .map_err(|e| e.to_string())
                })
                .await?;
            }
        }
        Ok(ExitCode::SUCCESS)
    })
    .await
}

fn filter_of(args: &QueueArgs) -> QueueFilter {
    QueueFilter {
        mine: args.mine,
        users: args.user.clone(),
        partitions: args.partition.clone(),
        states: args.state.clone(),
        names: args.name.clone(),
    }
}

fn json_text(value: &impl serde::Serialize) -> String {
    serde_json::to_string_pretty(value).expect("views always serialize")
}

/// Redraw `round`'s text every `interval` seconds until Ctrl-C: in place on a terminal, one block
/// after another otherwise. A failing round is shown and the next one tried.
async fn watch(
    interval: u64,
    mut round: impl AsyncFnMut() -> Result<String, String>,
) -> Result<(), Failure> {
    let terminal = std::io::stdout().is_terminal();
    // Ctrl-C ends it as it ends every command (exit code 130).
    loop {
        let text = match round().await {
            Ok(text) => text,
            Err(error) => format!("error: {error} (trying again)\n"),
        };
        let stamp = utc_clock();
        let mut out = std::io::stdout().lock();
        if terminal {
            // Home, then clear: the new picture replaces the old without scrolling.
            write!(out, "\x1b[H\x1b[2J")?;
        }
        writeln!(
            out,
            "every {interval} s, Ctrl-C to stop · {stamp}\n{}",
            text.trim_end()
        )?;
        if !terminal {
            writeln!(out)?;
        }
        out.flush()?;
        drop(out);
        tokio::time::sleep(Duration::from_secs(interval)).await;
    }
}

/// The time of day in UTC, `HH:MM:SS UTC`.
pub(super) fn utc_clock() -> String {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        % 86_400;
    format!(
        "{:02}:{:02}:{:02} UTC",
        seconds / 3600,
        seconds % 3600 / 60,
        seconds % 60
    )
}

/// A table, every value bounded and with control characters shown, not obeyed.
fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let rows: Vec<Vec<String>> = rows
        .into_iter()
        .map(|row| row.into_iter().map(|cell| bounded(&cell, 60)).collect())
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut text = String::new();
        for (index, (cell, width)) in cells.iter().zip(&widths).enumerate() {
            if index + 1 == cells.len() {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<width$}  "));
            }
        }
        text.trim_end().to_string() + "\n"
    };
    let mut out = line(header.to_vec());
    for row in &rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

fn queue_table(rows: &[QueueRow]) -> String {
    table(
        &[
            "JOB ID",
            "USER",
            "PARTITION",
            "STATE",
            "TIME",
            "LIMIT",
            "NODES",
            "CPUS",
            "NAME",
            "NODELIST(REASON)",
        ],
        rows.iter()
            .map(|r| {
                vec![
                    r.job_id.clone(),
                    r.user.clone(),
                    r.partition.clone(),
                    r.state.clone(),
                    r.time_used.clone(),
                    r.time_limit.clone(),
                    r.nodes.to_string(),
                    r.cpus.to_string(),
                    r.name.clone(),
                    r.nodelist_or_reason.clone(),
                ]
            })
            .collect(),
    )
}

fn cluster_table(partitions: &[PartitionView]) -> String {
    table(
        &[
            "PARTITION",
            "AVAIL",
            "LIMIT",
            "NODES",
            "CPUS FREE/TOTAL",
            "GPUS FREE/TOTAL",
            "NODES BY STATE",
        ],
        partitions
            .iter()
            .map(|p| {
                vec![
                    if p.default {
                        format!("{}*", p.name)
                    } else {
                        p.name.clone()
                    },
                    p.available.clone(),
                    p.time_limit.clone(),
                    p.nodes.to_string(),
                    format!("{}/{}", p.cpus.idle, p.cpus.total),
                    format!("{}/{}", p.gpus.free, p.gpus.total),
                    p.node_states
                        .iter()
                        .map(|(state, n)| format!("{n} {state}"))
                        .collect::<Vec<_>>()
                        .join(", "),
                ]
            })
            .collect(),
    )
}

/// What Slurm and this machine's journal know about one job.
async fn show(session: &Session, id: &JobId, json: bool) -> Result<(), Failure> {
    let records = views::job_records(&session.conn, id)
        .await
        .map_err(LifecycleError::from)?;
    let (key, asked) = (session.target.key.clone(), id.clone());
    let submission = session
        .journal
        .run(move |j| j.find_by_job_id(&key, &asked))
        .await
        .map_err(LifecycleError::from)?;
    if records.is_empty() && submission.is_none() {
        return Err(LifecycleError::UnknownJob { job_id: id.clone() }.into());
    }
    let deliveries = match &submission {
        Some(s) => {
            let sid = s.id;
            session
                .journal
                .run(move |j| j.deliveries_for(sid))
                .await
                .map_err(LifecycleError::from)?
        }
        None => Vec::new(),
    };
    let journaled = submission.as_ref().map(|s| {
        serde_json::json!({
            "job_dir": s.job_dir,
            "state": s.state.as_str(),
            "submitted_ms": s.created_ms,
            "renderer": s.renderer,
            "callbacks": s.callbacks.clone().unwrap_or_default(),
            "events": deliveries.iter().map(|(kind, d)| serde_json::json!({
                "kind": kind,
                "plugin": d.plugin,
                "state": d.state,
                "attempts": d.attempts,
                "last_error": d.last_error,
            })).collect::<Vec<_>>(),
        })
    });
    if json {
        outln!(
            "{}",
            json_text(&serde_json::json!({ "slurm": records, "slurmkit": journaled }))
        );
        return Ok(());
    }
    const SHOWN: [&str; 18] = [
        "JobName",
        "UserId",
        "Account",
        "Partition",
        "QOS",
        "JobState",
        "Reason",
        "ExitCode",
        "RunTime",
        "TimeLimit",
        "SubmitTime",
        "StartTime",
        "EndTime",
        "NodeList",
        "NumNodes",
        "NumCPUs",
        "WorkDir",
        "StdOut",
    ];
    if records.is_empty() {
        outln!("Slurm no longer knows job {id}");
    }
    for record in &records {
        let own = record.get("JobId").map(String::as_str).unwrap_or("?");
        outln!("job {own}");
        for key in SHOWN {
            if let Some(value) = record.get(key) {
                outln!("  {key:<11} {}", bounded(value, 500));
            }
        }
    }
    match &submission {
        None => outln!("not submitted from this machine (no journal entry for it)"),
        Some(s) => {
            outln!("slurmkit");
            outln!("  job dir     {}", s.job_dir);
            outln!("  renderer    {}", s.renderer);
            for route in s.callbacks.iter().flatten() {
                let sha = route
                    .sha256
                    .as_deref()
                    .map(|h| format!(" sha256:{h}"))
                    .unwrap_or_default();
                outln!("  callback    {}{sha}", route.name);
            }
            for (kind, delivery) in &deliveries {
                let error = delivery
                    .last_error
                    .as_deref()
                    .map(|e| format!(": {}", bounded(e, 200)))
                    .unwrap_or_default();
                outln!(
                    "  event       {kind} -> {}: {} ({} attempt(s)){error}",
                    delivery
                        .plugin
                        .rsplit('#')
                        .next()
                        .unwrap_or(&delivery.plugin),
                    delivery.state,
                    delivery.attempts
                );
            }
        }
    }
    Ok(())
}
