//! Going to a running job rather than the queue: waiting until it runs, a shell or one command in its
//! allocation (`srun --overlap`, so it shares the job's resources instead of waiting for free ones),
//! and local ports forwarded to a port on one of its nodes, over the session's connection.

use std::time::Duration;

use tokio::net::TcpListener;

use super::{LifecycleError, Session};
use crate::slurm::allocation::{self, Allocation};
use crate::types::names::JobId;
use crate::types::shell::ShellCommand;
use crate::types::status::JobState;

/// Poll until `id` runs, calling `waiting` with its state once per change while it does not. Fails
/// when the job has ended or Slurm does not know it.
pub async fn until_running(
    session: &Session,
    id: &JobId,
    mut waiting: impl FnMut(JobState),
) -> Result<Allocation, LifecycleError> {
    let mut interval = Duration::from_millis(250);
    let mut last = None;
    loop {
        let Some(job) = allocation::allocation(&session.conn, id).await? else {
            return Err(LifecycleError::UnknownJob { job_id: id.clone() });
        };
        match job.state {
            JobState::Running if !job.nodes.is_empty() => return Ok(job),
            state if state.is_terminal() => {
                return Err(LifecycleError::NotRunning {
                    job_id: id.clone(),
                    state,
                });
            }
            state => {
                if last != Some(state) {
                    waiting(state);
                    last = Some(state);
                }
            }
        }
        tokio::time::sleep(interval).await;
        interval = (interval * 2).min(Duration::from_secs(10));
    }
}

/// The node to use: the one asked for (which must be the job's), or the job's first.
pub fn pick_node(
    job: &Allocation,
    id: &JobId,
    asked: Option<&str>,
) -> Result<String, LifecycleError> {
    match asked {
        None => Ok(job.nodes[0].clone()),
        Some(node) if job.nodes.iter().any(|n| n == node) => Ok(node.to_string()),
        Some(node) => Err(LifecycleError::NotTheJobsNode {
            job_id: id.clone(),
            node: node.to_string(),
            nodes: job.nodes.join(","),
        }),
    }
}

/// `srun` into the job's allocation on `node`: `command`, or the user's login shell when it is empty
/// (on a pseudo-terminal when `pty`).
pub fn srun_command(job: &Allocation, node: &str, command: &[String], pty: bool) -> ShellCommand {
    let srun = ShellCommand::new("srun")
        .arg(format!("--jobid={}", job.own_id))
        .arg("--overlap")
        .arg("--nodes=1")
        .arg("--ntasks=1")
        .arg(format!("--nodelist={node}"));
    let srun = if pty { srun.arg("--pty") } else { srun };
    if command.is_empty() {
        // `$SHELL` is the node's to expand: the words are quoted here and expanded by sh there.
        srun.args(["sh", "-c", "exec \"${SHELL:-/bin/sh}\" -l"])
    } else {
        srun.args(command)
    }
}

/// How a tunnel ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TunnelEnd {
    /// The job ended, in this state.
    JobEnded(JobState),
    Interrupted,
}

/// Forward each connection to `listener` to `host:port` as the cluster's login node sees it, until
/// the job ends (checked every few seconds, one query each) or `interrupted` completes.
pub async fn tunnel(
    session: &Session,
    id: &JobId,
    listener: TcpListener,
    host: &str,
    port: u16,
    interrupted: impl Future<Output = ()>,
) -> Result<TunnelEnd, LifecycleError> {
    let mut check = tokio::time::interval(Duration::from_secs(5));
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(interrupted);
    loop {
        tokio::select! {
            _ = &mut interrupted => return Ok(TunnelEnd::Interrupted),
            _ = check.tick() => {
                match allocation::allocation(&session.conn, id).await? {
                    Some(job) if !job.state.is_terminal() => {}
                    Some(job) => return Ok(TunnelEnd::JobEnded(job.state)),
                    None => return Ok(TunnelEnd::JobEnded(JobState::Unknown)),
                }
            }
            accepted = listener.accept() => {
                let (mut local, peer) = accepted.map_err(LifecycleError::Output)?;
                tracing::info!("forwarding a connection from {peer} to {host}:{port}");
                match session.conn.forward(host, port).await {
                    Ok(mut remote) => {
                        tokio::spawn(async move {
                            let _ = tokio::io::copy_bidirectional(&mut local, &mut remote).await;
                        });
                    }
                    // One refused connection (nothing listening yet) does not end the tunnel.
                    Err(e) => tracing::warn!("{e}"),
                }
            }
        }
    }
}
