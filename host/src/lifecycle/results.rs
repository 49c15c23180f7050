//! A job's result: the JSON it wrote to `$SLURMKIT_RESULT`, read from its job directory; for an array,
//! one per task in task order. When there is none, why: the job has not ended, it failed, it wrote
//! nothing, or what it wrote is not JSON.

use serde::de::DeserializeOwned;

use super::LifecycleError;
use super::observe;
use super::session::Session;
use super::stage::{RESULT_FILE, RESULTS_DIR};
use crate::error::{Diagnose, exit};
use crate::journal::Submission;
use crate::transfer::pack::{Packed, pack};
use crate::transfer::{TransferError, read_confined};
use crate::types::names::JobId;
use crate::types::status::JobStatus;
use crate::types::text::bounded;
use crate::wit::JobState;

/// The most a result may hold.
pub const MAX_RESULT_BYTES: u64 = 64 << 20;

/// Why a result could not be given.
#[derive(Debug, thiserror::Error)]
pub enum ResultError {
    #[error("job {job_id} is {state}: it has no result yet")]
    NotFinished { job_id: JobId, state: JobState },
    #[error("job {job_id} ended {state} without writing a result")]
    Failed { job_id: JobId, state: JobState },
    #[error("job {job_id} ended COMPLETED without writing a result to $SLURMKIT_RESULT ({path})")]
    NotWritten { job_id: JobId, path: String },
    #[error("job {job_id}'s result is not valid JSON ({error}): {start}")]
    NotJson {
        job_id: JobId,
        error: String,
        start: String,
    },
    #[error("job {job_id}'s result does not have the shape asked for: {error}")]
    Shape { job_id: JobId, error: String },
    #[error("{missing} of the {total} tasks of job {job_id} have no result: {}", tasks.join(", "))]
    Incomplete {
        job_id: JobId,
        missing: usize,
        total: usize,
        /// `3 (FAILED)`, `7 (RUNNING)`, `9 (no result written)`.
        tasks: Vec<String>,
        /// The results in task order, `null` where missing.
        partial: serde_json::Value,
    },
    #[error(transparent)]
    Lifecycle(#[from] LifecycleError),
}

impl Diagnose for ResultError {
    fn exit_code(&self) -> u8 {
        match self {
            ResultError::NotFinished { .. } => exit::NOT_FINISHED,
            ResultError::Failed { state, .. } => exit::for_state(*state),
            ResultError::NotWritten { .. } | ResultError::Incomplete { .. } => exit::NO_RESULT,
            ResultError::NotJson { .. } | ResultError::Shape { .. } => exit::BAD_RESULT,
            ResultError::Lifecycle(e) => e.exit_code(),
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            ResultError::NotFinished { job_id, .. } => {
                Some(format!("`slurmkit wait {job_id}`, then ask again"))
            }
            ResultError::Failed { job_id, .. } => Some(format!(
                "`slurmkit logs {job_id} --stderr` shows why it failed"
            )),
            ResultError::NotWritten { .. } => Some(
                "the job must write JSON to the file named by $SLURMKIT_RESULT before it ends"
                    .into(),
            ),
            _ => None,
        }
    }

    fn diagnosed_source(&self) -> Option<&dyn Diagnose> {
        match self {
            ResultError::Lifecycle(e) => Some(e),
            _ => None,
        }
    }
}

/// The result of `job_id`, deserialized into the caller's type.
pub async fn result<T: DeserializeOwned>(
    session: &Session,
    job_id: &JobId,
) -> Result<T, ResultError> {
    let value = result_json(session, job_id).await?;
    serde_json::from_value(value).map_err(|e| ResultError::Shape {
        job_id: job_id.clone(),
        error: e.to_string(),
    })
}

/// The result of `job_id` as JSON: the object the job wrote, or for an array the list of its tasks'
/// results in task order (`Incomplete`, holding the partial list, when some are missing).
pub async fn result_json(
    session: &Session,
    job_id: &JobId,
) -> Result<serde_json::Value, ResultError> {
    let submission = submission_of(session, job_id).await?;
    let is_array = submission.spec.array.is_some() && job_id.as_str() == job_id.base();
    if is_array {
        array_results(session, job_id, &submission).await
    } else {
        let name = match job_id.as_str().split_once('_') {
            Some((_, task)) => format!("{RESULTS_DIR}/{task}.json"),
            None => RESULT_FILE.to_string(),
        };
        one_result(session, job_id, &submission.job_dir, &name).await
    }
}

async fn submission_of(session: &Session, job_id: &JobId) -> Result<Submission, LifecycleError> {
    let (cluster, id) = (session.target.key.clone(), job_id.clone());
    session
        .journal
        .run(move |j| j.find_by_job_id(&cluster, &id))
        .await?
        .ok_or_else(|| LifecycleError::NotJournaled {
            job_id: job_id.clone(),
            cluster: session.target.key.clone(),
        })
}

async fn status_of(session: &Session, job_id: &JobId) -> Result<Option<JobStatus>, ResultError> {
    Ok(observe::observe(session, std::slice::from_ref(job_id))
        .await?
        .into_iter()
        .next())
}

async fn one_result(
    session: &Session,
    job_id: &JobId,
    job_dir: &str,
    name: &str,
) -> Result<serde_json::Value, ResultError> {
    match read_confined(&session.conn, job_dir, name, 0, MAX_RESULT_BYTES).await {
        Ok(bytes) => parse(job_id, &bytes),
        Err(TransferError::NotFound { path }) => {
            let state = status_of(session, job_id).await?.map(|s| s.state);
            Err(match state {
                Some(state) if !state.is_terminal() => ResultError::NotFinished {
                    job_id: job_id.clone(),
                    state,
                },
                Some(state) if state != JobState::Completed => ResultError::Failed {
                    job_id: job_id.clone(),
                    state,
                },
                _ => ResultError::NotWritten {
                    job_id: job_id.clone(),
                    path,
                },
            })
        }
        Err(e) => Err(ResultError::Lifecycle(e.into())),
    }
}

fn parse(job_id: &JobId, bytes: &[u8]) -> Result<serde_json::Value, ResultError> {
    serde_json::from_slice(bytes).map_err(|e| ResultError::NotJson {
        job_id: job_id.clone(),
        error: e.to_string(),
        start: bounded(&String::from_utf8_lossy(bytes), 200),
    })
}

async fn array_results(
    session: &Session,
    job_id: &JobId,
    submission: &Submission,
) -> Result<serde_json::Value, ResultError> {
    let spec = &submission.spec;
    // Which array runs which item: the job alone, or the parts of an array split at MaxArraySize (a
    // later part's results are in its first part's directory, under their item's index).
    let (dir, first, mut arrays) = match (&submission.group.part_of, submission.group.offset) {
        (Some(first_dir), Some(offset)) => {
            (first_dir.clone(), offset, vec![(job_id.clone(), offset)])
        }
        _ => {
            let parts = super::split::later_parts(session, submission).await?;
            let mut arrays = vec![(job_id.clone(), 0)];
            arrays.extend(
                parts
                    .into_iter()
                    .filter_map(|p| Some((p.job_id?, p.group.offset?))),
            );
            (submission.job_dir.clone(), 0, arrays)
        }
    };
    arrays.sort_by_key(|(_, offset)| *offset);
    let task_id = |item: u64| {
        let (array, offset) = arrays
            .iter()
            .rev()
            .find(|(_, offset)| *offset <= item)
            .unwrap_or(&arrays[0]);
        JobId::parse(&format!("{}_{}", array.base(), item - offset))
            .unwrap_or_else(|_| array.clone())
    };
    let tasks: Vec<u64> = if spec.items.is_empty() {
        spec.array
            .as_ref()
            .map(|a| a.indices(1_000_000))
            .unwrap_or_default()
    } else {
        (first..first + spec.items.len() as u64).collect()
    };
    let packed = pack(
        &session.conn,
        &dir,
        &[RESULTS_DIR.to_string()],
        MAX_RESULT_BYTES,
    )
    .await
    .map_err(LifecycleError::from)?;
    let mut found = std::collections::BTreeMap::new();
    for entry in packed {
        match entry {
            Packed::File { path, bytes } => {
                if let Some(task) = path
                    .strip_prefix(&format!("{RESULTS_DIR}/"))
                    .and_then(|n| n.strip_suffix(".json"))
                    .and_then(|n| n.parse::<u64>().ok())
                {
                    found.insert(task, bytes);
                }
            }
            Packed::Refused { path, kind } => {
                tracing::warn!("not reading {path}: {kind}");
            }
            Packed::Dir { .. } => {}
        }
    }
    let mut list = Vec::with_capacity(tasks.len());
    let mut missing = Vec::new();
    for task in &tasks {
        match found.get(task) {
            Some(bytes) => list.push(parse(&task_id(*task), bytes)?),
            None => {
                list.push(serde_json::Value::Null);
                missing.push(*task);
            }
        }
    }
    if missing.is_empty() {
        return Ok(serde_json::Value::Array(list));
    }
    // Why each is missing: one query for the arrays' tasks.
    let ids: Vec<JobId> = arrays.iter().map(|(id, _)| id.clone()).collect();
    let statuses = observe::observe(session, &ids).await.unwrap_or_default();
    let state_of = |task: u64| {
        let id = task_id(task);
        statuses.iter().find(|s| s.job_id == id).map(|s| s.state)
    };
    let described = missing
        .iter()
        .map(|task| match state_of(*task) {
            Some(JobState::Completed) | None => format!("{task} (no result written)"),
            Some(state) => format!("{task} ({state})"),
        })
        .collect();
    Err(ResultError::Incomplete {
        job_id: job_id.clone(),
        missing: missing.len(),
        total: tasks.len(),
        tasks: described,
        partial: serde_json::Value::Array(list),
    })
}
