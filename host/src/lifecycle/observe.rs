//! Watching jobs: one poll round for any number of jobs (a constant number of Slurm queries), and
//! waiting for them to end, riding out a controller restart or a dropped connection.

use std::time::{Duration, Instant};

use super::LifecycleError;
use super::runner;
use super::session::{RIDE_OUT, Session};
use crate::journal::{Submission, SubmissionState};
use crate::slurm;
use crate::types::names::JobId;
use crate::types::status::{JobState, JobStatus, StatusSource, aggregate};

/// Query the statuses of `ids` once, queue callbacks for what changed for journaled jobs (an array
/// job's state being that of its tasks together), record the new states, and deliver what is due.
pub async fn observe(session: &Session, ids: &[JobId]) -> Result<Vec<JobStatus>, LifecycleError> {
    let (key, asked) = (session.target.key.clone(), ids.to_vec());
    let journaled: Vec<Option<Submission>> = session
        .journal
        .run(move |j| asked.iter().map(|id| j.find_by_job_id(&key, id)).collect())
        .await?;
    // Jobs the journal saw end need no accounting query when Slurm has forgotten them.
    let settled: Vec<JobId> = ids
        .iter()
        .zip(&journaled)
        .filter(|(id, s)| {
            s.as_ref()
                .and_then(|s| s.last_status.as_ref())
                .is_some_and(|l| l.state.is_terminal() && l.job_id == **id)
        })
        .map(|(id, _)| id.clone())
        .collect();
    let statuses = slurm::status(&session.conn, ids, &settled).await?;

    let mut observed = Vec::new();
    // Each journaled submission seen, with the statuses that are its own (the job, or its tasks).
    let mut own: Vec<(Submission, Vec<JobStatus>)> = Vec::new();
    for mut status in statuses {
        let submission = journaled.iter().flatten().find(|s| {
            s.job_id
                .as_ref()
                .is_some_and(|id| slurm::same_job(id, &status.job_id))
        });
        let Some(submission) = submission else {
            observed.push(status);
            continue;
        };
        // A finished job vanishes from Slurm after MinJobAge (and from sacct without accounting); the
        // journal remembers how it ended.
        if let Some(recorded) = submission.last_status.clone()
            && status.state == JobState::Unknown
            && recorded.state.is_terminal()
            && recorded.job_id == status.job_id
        {
            status = JobStatus {
                source: StatusSource::Journal,
                ..recorded
            };
        }
        if submission.state == SubmissionState::Submitted {
            match own.iter_mut().find(|(s, _)| s.id == submission.id) {
                Some((_, statuses)) => statuses.push(status.clone()),
                None => own.push((submission.clone(), vec![status.clone()])),
            }
        }
        observed.push(status);
    }
    for (submission, statuses) in own {
        let job_id = submission
            .job_id
            .clone()
            .expect("submitted records have a job id");
        let current = match statuses.iter().find(|s| s.job_id == job_id) {
            Some(status) => status.clone(),
            None => aggregate(&job_id, &statuses),
        };
        let previous = submission.last_status.as_ref();
        // A pending job learning it never runs is news too (its state stays PENDING).
        let changed = current.state != JobState::Unknown
            && previous
                .is_none_or(|p| p.state != current.state || p.never_runs() != current.never_runs());
        if changed
            && !session
                .outbox
                .status_changed(&submission, previous, &current)
                .await
        {
            continue;
        }
        // What the node-side runner logged, read when the job is seen to start or end.
        let started_or_ended = current.state == JobState::Running || current.state.is_terminal();
        if changed && started_or_ended && !runner::collect_events(session, &submission).await {
            continue;
        }
        let id = submission.id;
        session
            .journal
            .run(move |j| j.record_status(id, &current))
            .await?;
    }
    session.outbox.deliver_due().await;
    Ok(observed)
}

/// The statuses of `ids`, and of the later parts of every split array among them ([`observe`]).
pub async fn status(session: &Session, ids: &[JobId]) -> Result<Vec<JobStatus>, LifecycleError> {
    let ids = super::split::with_parts(session, ids).await?;
    observe(session, &ids).await
}

/// What cancelling found, for the ids asked and the later parts of split arrays among them.
#[derive(Debug, Default)]
pub struct Cancelled {
    pub cancelled: Vec<JobId>,
    /// Those that had already ended, and how.
    pub ended: Vec<(JobId, JobState)>,
    /// Those Slurm does not know.
    pub unknown: Vec<JobId>,
}

/// Cancel what is still queued or running among `ids` (and the later parts of split arrays among
/// them): one query for all, then one scancel.
pub async fn cancel(session: &Session, ids: &[JobId]) -> Result<Cancelled, LifecycleError> {
    let ids = super::split::with_parts(session, ids).await?;
    let statuses = observe(session, &ids).await?;
    let mut found = Cancelled::default();
    for id in ids {
        let own: Vec<&JobStatus> = statuses
            .iter()
            .filter(|s| slurm::same_job(&id, &s.job_id))
            .collect();
        if own.iter().all(|s| s.state == JobState::Unknown) {
            found.unknown.push(id);
        } else if let Some(ended) = own.iter().find(|s| s.state.is_terminal())
            && own.iter().all(|s| s.state.is_terminal())
        {
            found.ended.push((id, ended.state));
        } else {
            found.cancelled.push(id);
        }
    }
    if !found.cancelled.is_empty() {
        slurm::scancel(&session.conn, &found.cancelled).await?;
    }
    Ok(found)
}

/// Poll until every job (every task of an array) is terminal or never runs, with one shared query per round. Starts
/// fast and backs off to 30 s, so a short job is seen finishing within a second and a long one costs the
/// controller little. Failing Slurm commands (a controller restarting) and a dropped connection
/// (reconnected, saying so on stderr) are ridden out for about ten minutes.
pub async fn wait(
    session: &mut Session,
    ids: &[JobId],
    timeout: Option<Duration>,
) -> Result<Vec<JobStatus>, LifecycleError> {
    let started = Instant::now();
    // An array split at the cluster's MaxArraySize ends when all its parts do.
    let ids = &super::split::with_parts(session, ids).await?;
    let mut interval = Duration::from_millis(250);
    let mut last_states: Vec<(JobId, JobState)> = Vec::new();
    let mut failing_since: Option<Instant> = None;
    loop {
        match observe(session, ids).await {
            Ok(statuses) => {
                failing_since = None;
                if let Some(unknown) = statuses.iter().find(|s| s.state == JobState::Unknown) {
                    return Err(LifecycleError::UnknownJob {
                        job_id: unknown.job_id.clone(),
                    });
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
                // A job that never runs (a job it runs after failed) would keep a wait going forever.
                if !statuses.is_empty() && statuses.iter().all(JobStatus::settled) {
                    return Ok(statuses);
                }
            }
            Err(error) => {
                let since = *failing_since.get_or_insert_with(Instant::now);
                if session.conn.is_closed() {
                    session.reconnect(since + RIDE_OUT).await?;
                    continue;
                }
                if !error.is_transient() || since.elapsed() > RIDE_OUT {
                    return Err(error);
                }
                tracing::warn!(
                    "{error} (still waiting; failing for {} s)",
                    since.elapsed().as_secs()
                );
            }
        }
        if let Some(limit) = timeout
            && started.elapsed() >= limit
        {
            let state = last_states
                .first()
                .map(|(_, state)| *state)
                .unwrap_or(JobState::Unknown);
            return Err(LifecycleError::WaitTimedOut {
                seconds: limit.as_secs(),
                state,
            });
        }
        tokio::time::sleep(interval).await;
        interval = (interval * 2).min(Duration::from_secs(30));
    }
}
