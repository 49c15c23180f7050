//! Recovering submissions whose reply never came back: from the id sbatch wrote into the job
//! directory, from sbatch's refusal there, or by asking Slurm; a submission none of these settles is
//! marked unknown with the reason, never left pending.

use super::LifecycleError;
use super::event::EventDetail;
use super::session::Session;
use super::submit::Submitted;
use crate::journal::{Submission, now_ms};
use crate::slurm::recover::{self, DirState, Wanted};
use crate::types::names::JobId;
use crate::types::spec::JobSpec;
use crate::wit::EventKind;

/// Queue `submitted`, then record the id, for a submission recovered by [`reconcile`].
async fn record_submitted(
    session: &Session,
    submitted: &Submitted,
    spec: &JobSpec,
) -> Result<(), LifecycleError> {
    let id = submitted.job_id.to_string();
    let event = session.outbox.event(
        EventKind::Submitted,
        spec,
        &submitted.job_dir,
        Some(&id),
        EventDetail::Submitted(id.clone()),
        "",
    );
    session.outbox.emit(submitted.submission_id, event).await;
    let (submission_id, job_id) = (submitted.submission_id, submitted.job_id.clone());
    session
        .journal
        .run(move |j| j.mark_submitted(submission_id, &job_id))
        .await
        .map_err(|source| LifecycleError::NotRecorded {
            job_id: submitted.job_id.clone(),
            source,
        })
}

/// A `submitting` record younger than this may belong to a submission still under way elsewhere.
const GRACE_MS: i64 = 10 * 60 * 1000;

/// Resolve submissions whose job id never came back, from their job directories (one exec for all):
/// the id sbatch wrote, or sbatch's refusal; a directory whose sbatch never started is given up (its
/// claim taken, so it never will). Those left open (sbatch cut off before it wrote anything, or the
/// directory gone) are looked for in Slurm (one more exec) and marked unknown if Slurm cannot say.
/// Problems with one record are logged and do not stop the others (or the command that asked).
pub async fn reconcile(session: &Session) -> Result<Vec<Submitted>, LifecycleError> {
    let key = session.target.key.clone();
    let pending = session.journal.run(move |j| j.unresolved(&key)).await?;
    if pending.is_empty() {
        return Ok(Vec::new());
    }
    let now = now_ms();
    let old = |s: &Submission| now - s.created_ms > GRACE_MS;
    let nonce = format!("slurmkit-{:016x}", rand::random::<u64>());
    let dirs: Vec<(String, bool)> = pending
        .iter()
        .map(|s| (s.job_dir.clone(), old(s)))
        .collect();
    let states = recover::probe_dirs(&session.conn, &nonce, &dirs).await?;
    let mut resolved = Vec::new();
    let mut ask_slurm: Vec<(&Submission, &'static str)> = Vec::new();
    for (submission, state) in pending.iter().zip(states) {
        let id = submission.id;
        let settled = match state {
            DirState::Submitted(job_id) => match recovered(session, submission, job_id).await {
                Ok(submitted) => {
                    resolved.push(submitted);
                    Ok(())
                }
                Err(e) => Err(e),
            },
            DirState::Refused { status, message }
                if crate::slurm::surely_refused(&status, &message) =>
            {
                let why = LifecycleError::Refused { status, message }.to_string();
                session
                    .journal
                    .run(move |j| j.mark_rejected(id, &why))
                    .await
                    .map_err(LifecycleError::from)
            }
            DirState::Abandoned => session
                .journal
                .run(move |j| j.mark_rejected(id, "staging was interrupted: sbatch never ran"))
                .await
                .map_err(LifecycleError::from),
            DirState::Refused { .. } | DirState::Pending if old(submission) => {
                ask_slurm.push((submission, "sbatch was cut off before it said how it went"));
                Ok(())
            }
            DirState::Missing if old(submission) => {
                ask_slurm.push((submission, "its job directory is gone"));
                Ok(())
            }
            _ => Ok(()),
        };
        if let Err(e) = settled {
            tracing::warn!(
                "could not resolve the interrupted submission in {}: {e}",
                submission.job_dir
            );
        }
    }
    if ask_slurm.is_empty() {
        return Ok(resolved);
    }
    let wanted: Vec<Wanted> = ask_slurm
        .iter()
        .map(|(s, _)| Wanted {
            name: &s.job_name,
            dir: &s.job_dir,
        })
        .collect();
    let (found, accounted) = match recover::find_in_slurm(&session.conn, &wanted).await {
        Ok(found) => found,
        Err(e) => {
            // Nothing is decided without an answer from Slurm: the next session asks again.
            tracing::warn!("could not ask Slurm about interrupted submissions: {e}");
            return Ok(resolved);
        }
    };
    for ((submission, reason), found) in ask_slurm.into_iter().zip(found) {
        let settled = match found {
            Some(job_id) => recovered(session, submission, job_id)
                .await
                .map(|submitted| resolved.push(submitted)),
            None => {
                let id = submission.id;
                let why = format!(
                    "{reason}, and Slurm ({}) knows no job {} from {}: most likely it was never queued",
                    if accounted {
                        "squeue and accounting"
                    } else {
                        "squeue; this cluster keeps no accounting it could ask"
                    },
                    submission.job_name,
                    submission.job_dir
                );
                tracing::warn!(
                    "submission of {} left unresolved: {why}",
                    submission.job_dir
                );
                session
                    .journal
                    .run(move |j| j.mark_unknown(id, &why))
                    .await
                    .map_err(LifecycleError::from)
            }
        };
        if let Err(e) = settled {
            tracing::warn!(
                "could not resolve the interrupted submission in {}: {e}",
                submission.job_dir
            );
        }
    }
    Ok(resolved)
}

async fn recovered(
    session: &Session,
    submission: &Submission,
    job_id: JobId,
) -> Result<Submitted, LifecycleError> {
    let submitted = Submitted {
        submission_id: submission.id,
        job_id,
        job_dir: submission.job_dir.clone(),
        parts: Vec::new(),
        parts_failed: Vec::new(),
    };
    record_submitted(session, &submitted, &submission.spec).await?;
    tracing::warn!(
        "recovered job {} ({}) whose submission was interrupted; it is journaled now",
        submitted.job_id,
        submitted.job_dir
    );
    Ok(submitted)
}
