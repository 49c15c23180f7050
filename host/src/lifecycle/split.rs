//! Arrays of items larger than one array may be, split into several arrays.
//!
//! Slurm refuses an array whose task indices reach the cluster's MaxArraySize, so a job with more items
//! than that (or than `[cluster] max_array_size`) is submitted as several arrays: the first is the job
//! itself, in its own directory, holding every item, result and output; each later part is an array
//! of the next items, submitted from `<job directory>/parts/<k>` with a prologue that points it at the
//! first part's directory and offsets its task ids (`SLURMKIT_ITEM`). The parts are journaled as
//! submissions of their own, grouped under the first, so `wait`, `status`, `cancel`, `result` and the
//! jobs that run after it take them all in.

use super::LifecycleError;
use super::session::Session;
use crate::journal::Submission;
use crate::slurm;
use crate::types::names::JobId;
use crate::types::spec::{ArraySpec, JobSpec};

/// Where a later part's directory is, under the first part's.
pub const PARTS_DIR: &str = "parts";

/// A later part of a split array: its place among the items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// Which part (1 for the second array).
    pub number: usize,
    /// The index of its first item.
    pub offset: u64,
    /// How many items it runs.
    pub count: u64,
}

/// How long the cluster's MaxArraySize is taken as read: it changes with the cluster's configuration,
/// rarely.
const MAX_ARRAY_SIZE_AGE_MS: i64 = 24 * 3600 * 1000;

/// The most tasks one array of items may have: `[cluster] max_array_size`, and the cluster's
/// MaxArraySize (asked only when a job has items, and then at most once a day: the journal remembers
/// it). `None`: no limit is known.
pub(super) async fn array_limit(
    session: &Session,
    specs: &[JobSpec],
) -> Result<Option<u64>, LifecycleError> {
    if specs.iter().all(|spec| spec.items.is_empty()) {
        return Ok(None);
    }
    let key = session.target.key.clone();
    let remembered = session
        .journal
        .run(move |j| j.max_array_size(&key, MAX_ARRAY_SIZE_AGE_MS))
        .await?;
    let cluster = match remembered {
        Some(size) => size,
        None => {
            let size = slurm::max_array_size(&session.conn)
                .await
                .map_err(LifecycleError::from)?;
            let key = session.target.key.clone();
            session
                .journal
                .run(move |j| j.set_max_array_size(&key, size))
                .await?;
            size
        }
    };
    Ok(match (session.target.max_array_size, cluster) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
    .map(|limit| limit.max(1)))
}

/// The later parts of a job of `items` items when one array runs at most `limit`: none when it fits.
pub fn parts(items: usize, limit: Option<u64>) -> Vec<Part> {
    let (items, Some(limit)) = (items as u64, limit) else {
        return Vec::new();
    };
    (1..items.div_ceil(limit))
        .map(|number| {
            let offset = number * limit;
            Part {
                number: number as usize,
                offset,
                count: limit.min(items - offset),
            }
        })
        .collect()
}

/// `spec`'s array narrowed to `count` tasks from 0, keeping its `%` throttle.
fn array_of(spec: &JobSpec, count: u64) -> ArraySpec {
    let throttle = spec
        .array
        .as_ref()
        .and_then(|a| a.as_str().split_once('%').map(|(_, t)| format!("%{t}")))
        .unwrap_or_default();
    ArraySpec::parse(&format!("0-{}{throttle}", count.saturating_sub(1)))
        .expect("a range from 0 is a valid array")
}

/// The first part: every item, the array narrowed to the first `limit` tasks.
pub fn first_part(spec: &JobSpec, limit: u64) -> JobSpec {
    let mut first = spec.clone();
    first.array = Some(array_of(spec, limit));
    first
}

/// A later part's spec: its items, its array from 0.
pub fn part_spec(spec: &JobSpec, part: &Part) -> JobSpec {
    let mut later = spec.clone();
    let (start, end) = (part.offset as usize, (part.offset + part.count) as usize);
    later.items = spec.items[start..end].to_vec();
    later.array = Some(array_of(spec, part.count));
    later
}

/// The directory name of a later part, under the first part's.
pub fn part_dir_name(first: &str, part: &Part) -> String {
    format!("{first}/{PARTS_DIR}/{}", part.number)
}

/// Whether a journaled job may have later parts: a job of items that is not itself a later part.
fn may_have_parts(submission: &Submission) -> bool {
    !submission.spec.items.is_empty() && submission.group.part_of.is_none()
}

/// The later parts of the journaled job `submission`, in order.
pub async fn later_parts(
    session: &Session,
    submission: &Submission,
) -> Result<Vec<Submission>, LifecycleError> {
    if !may_have_parts(submission) {
        return Ok(Vec::new());
    }
    let (cluster, dir) = (session.target.key.clone(), submission.job_dir.clone());
    Ok(session
        .journal
        .run(move |j| j.parts(&cluster, &dir))
        .await?)
}

/// `ids` with the ids of the later parts of every split array among them, each after its first; one
/// visit to the journal for all.
pub async fn with_parts(session: &Session, ids: &[JobId]) -> Result<Vec<JobId>, LifecycleError> {
    let (cluster, asked) = (session.target.key.clone(), ids.to_vec());
    let all = session
        .journal
        .run(move |j| {
            let mut all = Vec::with_capacity(asked.len());
            for id in asked {
                if all.contains(&id) {
                    continue;
                }
                all.push(id.clone());
                // A task's id names that task alone.
                if id.as_str() != id.base() {
                    continue;
                }
                let Some(submission) = j.find_by_job_id(&cluster, &id)? else {
                    continue;
                };
                if may_have_parts(&submission) {
                    for part in j.parts(&cluster, &submission.job_dir)? {
                        all.extend(part.job_id.filter(|p| !all.contains(p)));
                    }
                }
            }
            Ok(all)
        })
        .await?;
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::names::JobName;
    use crate::types::spec::Payload;

    #[test]
    fn items_past_the_limit_go_to_later_parts() {
        assert!(parts(1001, Some(1001)).is_empty());
        assert!(parts(5, None).is_empty());
        let split = parts(7, Some(3));
        assert_eq!(
            split,
            [
                Part {
                    number: 1,
                    offset: 3,
                    count: 3
                },
                Part {
                    number: 2,
                    offset: 6,
                    count: 1
                }
            ]
        );
        let mut spec = JobSpec::new(
            JobName::parse("sweep").unwrap(),
            Payload::Command(vec!["true".into()]),
        );
        spec.items = (0..7).map(|i| serde_json::json!({ "i": i })).collect();
        spec.array = Some(ArraySpec::parse("0-6%2").unwrap());
        assert_eq!(first_part(&spec, 3).array.unwrap().as_str(), "0-2%2");
        assert_eq!(
            first_part(&spec, 3).items.len(),
            7,
            "the first holds every item"
        );
        let last = part_spec(&spec, &split[1]);
        assert_eq!(last.array.unwrap().as_str(), "0-0%2");
        assert_eq!(last.items, [serde_json::json!({ "i": 6 })]);
        assert_eq!(part_dir_name("sweep-x", &split[1]), "sweep-x/parts/2");
    }
}
