//! A job's output, over the session's connection, once or following it until the job ends: a
//! journaled job's from its job directory, any other's from the path Slurm reports for it.

use std::time::{Duration, Instant};

use super::LifecycleError;
use super::observe::observe;
use super::session::{RIDE_OUT, Session};
use crate::journal::Submission;
use crate::slurm;
use crate::transfer::{TransferError, read_confined};
use crate::types::names::JobId;
use crate::types::spec::{JobSpec, expand_pattern};

/// Output is copied in pieces of this size, so a huge log never sits in memory whole.
const CHUNK: u64 = 1 << 20;

/// Where a job's stdout (or stderr) lives inside its job directory.
pub fn output_file(spec: &JobSpec, job_id: &JobId, stderr: bool) -> Result<String, LifecycleError> {
    let pattern = if stderr {
        spec.stderr_pattern()
    } else {
        spec.stdout_pattern()
    };
    if spec.array.is_some() && !job_id.as_str().contains('_') {
        return Err(LifecycleError::ArrayTaskNeeded {
            job_id: job_id.clone(),
        });
    }
    expand_pattern(pattern, job_id, &spec.name).ok_or_else(|| LifecycleError::UnexpandablePattern {
        job_id: job_id.clone(),
        pattern: pattern.to_string(),
    })
}

async fn journaled(session: &Session, job_id: &JobId) -> Result<Submission, LifecycleError> {
    let (key, id) = (session.target.key.clone(), job_id.clone());
    session
        .journal
        .run(move |j| j.find_by_job_id(&key, &id))
        .await?
        .ok_or_else(|| LifecycleError::NotJournaled {
            job_id: job_id.clone(),
            cluster: session.target.key.clone(),
        })
}

/// Where a job's stdout or stderr is: the directory reads are confined to, and the file's name in it.
/// A journaled job's is in its job directory; for any other job, Slurm's `StdOut`/`StdErr` path, read
/// under the same rules within that file's directory.
async fn log_location(
    session: &Session,
    job_id: &JobId,
    stderr: bool,
) -> Result<(String, String), LifecycleError> {
    let submission = match journaled(session, job_id).await {
        Ok(submission) => submission,
        Err(LifecycleError::NotJournaled { .. }) => {
            return foreign_log(session, job_id, stderr).await;
        }
        Err(e) => return Err(e),
    };
    let mut name = output_file(&submission.spec, job_id, stderr)?;
    // Absolute output paths are only readable when they point into the job directory.
    if let Some(inside) = name.strip_prefix(&format!("{}/", submission.job_dir)) {
        name = inside.to_string();
    }
    Ok((submission.job_dir, name))
}

/// A job not submitted from here: the output path Slurm reports for it.
async fn foreign_log(
    session: &Session,
    job_id: &JobId,
    stderr: bool,
) -> Result<(String, String), LifecycleError> {
    let records = slurm::views::job_records(&session.conn, job_id).await?;
    let record = match records.as_slice() {
        [] => {
            return Err(LifecycleError::UnknownJob {
                job_id: job_id.clone(),
            });
        }
        [record] => record,
        _ => {
            return Err(LifecycleError::ArrayTaskNeeded {
                job_id: job_id.clone(),
            });
        }
    };
    let field = if stderr { "StdErr" } else { "StdOut" };
    let path = record.get(field).map(String::as_str).unwrap_or("");
    match path.rsplit_once('/') {
        Some((dir, name)) if path.starts_with('/') && !name.is_empty() && !path.contains('%') => {
            let dir = if dir.is_empty() { "/" } else { dir };
            Ok((dir.to_string(), name.to_string()))
        }
        _ => Err(LifecycleError::UnexpandablePattern {
            job_id: job_id.clone(),
            pattern: path.to_string(),
        }),
    }
}

/// Read a job's stdout or stderr from `offset` (at most `limit` bytes).
pub async fn read_log(
    session: &Session,
    job_id: &JobId,
    stderr: bool,
    offset: u64,
    limit: u64,
) -> Result<Vec<u8>, LifecycleError> {
    let (dir, name) = log_location(session, job_id, stderr).await?;
    match read_confined(&session.conn, &dir, &name, offset, limit).await {
        Ok(bytes) => Ok(bytes),
        Err(TransferError::NotFound { path }) => {
            let state = match slurm::status(&session.conn, std::slice::from_ref(job_id), &[]).await
            {
                Ok(statuses) => statuses
                    .first()
                    .map(|s| format!(" (it is {})", s.state))
                    .unwrap_or_default(),
                Err(_) => String::new(),
            };
            Err(LifecycleError::NoOutputYet {
                job_id: job_id.clone(),
                path,
                state,
            })
        }
        Err(e) => Err(e.into()),
    }
}

/// Copy a job's output to `out`: what there is now, or with `follow`, everything until the job ends
/// (reconnecting, and saying so, if the connection drops meanwhile).
pub async fn copy_log(
    session: &mut Session,
    job_id: &JobId,
    stderr: bool,
    follow: bool,
    out: &mut dyn FnMut(&[u8]) -> std::io::Result<()>,
) -> Result<(), LifecycleError> {
    let mut offset = 0u64;
    let mut interval = Duration::from_millis(500);
    let mut failing_since: Option<Instant> = None;
    loop {
        let round = async {
            let finished = if follow {
                observe(session, std::slice::from_ref(job_id))
                    .await?
                    .iter()
                    .all(|s| s.state.is_terminal())
            } else {
                true
            };
            loop {
                match read_log(session, job_id, stderr, offset, CHUNK).await {
                    Ok(bytes) => {
                        offset += bytes.len() as u64;
                        out(&bytes).map_err(LifecycleError::Output)?;
                        if !bytes.is_empty() {
                            interval = Duration::from_millis(500);
                        }
                        if (bytes.len() as u64) < CHUNK {
                            break;
                        }
                    }
                    Err(LifecycleError::NoOutputYet { .. }) if follow && !finished => break,
                    Err(e) => return Err(e),
                }
            }
            Ok(finished)
        };
        let result = round.await;
        match result {
            // Read once more after the job ends: output is flushed when the job exits.
            Ok(true) => return Ok(()),
            Ok(false) => failing_since = None,
            Err(error) => {
                let since = *failing_since.get_or_insert_with(Instant::now);
                if follow && session.conn.is_closed() {
                    session.reconnect(since + RIDE_OUT).await?;
                    continue;
                }
                if !follow || !error.is_transient() || since.elapsed() > RIDE_OUT {
                    return Err(error);
                }
                tracing::warn!("{error} (still following)");
            }
        }
        tokio::time::sleep(interval).await;
        interval = (interval * 2).min(Duration::from_secs(5));
    }
}
