//! What a job runs after, at submission: jobs of the same batch by their directories (the exchange reads
//! their ids as sbatch writes them), jobs submitted earlier (`--only`) by the ids the journal holds, and
//! the job directories the job sees as `SLURMKIT_DEP_<NAME>`.

use std::collections::BTreeMap;

use super::LifecycleError;
use super::session::Session;
use super::stage::DependencyDir;
use crate::journal::Submission;
use crate::types::names::JobId;
use crate::types::spec::JobSpec;
use crate::types::work::dependency_variable;

/// A job submitted earlier that a job of this batch runs after: its submission, and the ids of its
/// later parts when it is an array split at the cluster's MaxArraySize.
pub(super) struct Earlier {
    pub submission: Submission,
    pub parts: Vec<JobId>,
}

/// The latest submission with a job id of each job named in an `after` that is not in this batch,
/// by entry name.
pub(super) async fn earlier_submissions(
    session: &Session,
    specs: &[JobSpec],
) -> BTreeMap<String, Earlier> {
    let project = specs.iter().find_map(|s| s.project.clone());
    let in_batch: Vec<String> = specs
        .iter()
        .filter_map(|s| s.entry.as_ref().map(|e| e.to_string()))
        .collect();
    let wanted: Vec<String> = specs
        .iter()
        .flat_map(|s| s.after.iter().map(|a| a.job.to_string()))
        .filter(|name| !in_batch.contains(name))
        .collect();
    if wanted.is_empty() {
        return BTreeMap::new();
    }
    let cluster = session.target.key.clone();
    let recent = match session.journal.run(move |j| j.recent(&cluster, 1000)).await {
        Ok(recent) => recent,
        Err(e) => {
            tracing::warn!("cannot read earlier submissions from the journal: {e}");
            return BTreeMap::new();
        }
    };
    let mut found = BTreeMap::new();
    for submission in recent {
        let Some(entry) = submission.spec.entry.as_ref().map(|e| e.to_string()) else {
            continue;
        };
        if wanted.contains(&entry)
            && submission.job_id.is_some()
            && submission.spec.project == project
        {
            // `recent` is newest first: keep the first seen.
            found.entry(entry).or_insert(submission);
        }
    }
    let mut earlier = BTreeMap::new();
    for (entry, submission) in found {
        let parts = match super::split::later_parts(session, &submission).await {
            Ok(parts) => parts.into_iter().filter_map(|p| p.job_id).collect(),
            Err(e) => {
                tracing::warn!("cannot read the parts of job {entry} from the journal: {e}");
                Vec::new()
            }
        };
        earlier.insert(entry, Earlier { submission, parts });
    }
    earlier
}

/// For job `index` of the batch: the dependency directories its prologue names, and the exchange's
/// `after` argument (`-`, or sbatch's `--dependency` syntax with `@<directory>` for a job of this
/// batch). The literal `dependency` of the spec is included, since the command line's
/// `--dependency` replaces the script's.
pub(super) fn dependencies<T>(
    index: usize,
    spec: &JobSpec,
    batch: &[JobSpec],
    (dir_names, part_dirs): (&[String], &[Vec<String>]),
    base: &str,
    earlier: &BTreeMap<String, Earlier>,
    failed: &[Option<Result<T, LifecycleError>>],
) -> Result<(Vec<DependencyDir>, String), LifecycleError> {
    if spec.after.is_empty() {
        return Ok((Vec::new(), "-".into()));
    }
    let mut dirs = Vec::new();
    let mut clauses: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
    for after in &spec.after {
        let name = after.job.to_string();
        let position = batch[..index]
            .iter()
            .position(|s| s.entry.as_ref() == Some(&after.job));
        // A job split into several arrays is after all of them.
        let (references, dir) = match position {
            Some(p) => {
                if matches!(failed.get(p), Some(Some(Err(_)))) {
                    return Err(LifecycleError::DependencyNotSubmitted { dependency: name });
                }
                let parts = part_dirs.get(p).into_iter().flatten();
                (
                    std::iter::once(&dir_names[p])
                        .chain(parts)
                        .map(|d| format!("@{d}"))
                        .collect::<Vec<_>>(),
                    format!("{base}/{}", dir_names[p]),
                )
            }
            None => match earlier.get(&name) {
                Some(Earlier { submission, parts }) => (
                    submission
                        .job_id
                        .iter()
                        .chain(parts)
                        .map(|id| id.to_string())
                        .collect(),
                    submission.job_dir.clone(),
                ),
                None => return Err(LifecycleError::NoEarlierSubmission { dependency: name }),
            },
        };
        clauses
            .entry(after.kind.as_str())
            .or_default()
            .extend(references);
        dirs.push(DependencyDir {
            variable: dependency_variable(&after.job),
            dir,
        });
    }
    for dependency in &spec.dependencies {
        let ids = dependency.job_ids.iter().map(|id| id.to_string());
        clauses
            .entry(dependency.kind.as_str())
            .or_default()
            .extend(ids);
    }
    let after = clauses
        .into_iter()
        .map(|(kind, refs)| {
            if refs.is_empty() {
                kind.to_string()
            } else {
                format!("{kind}:{}", refs.join(":"))
            }
        })
        .collect::<Vec<_>>()
        .join(",");
    Ok((dirs, after))
}

/// The job name in a job directory's name (`<name>-<timestamp>-<hex>`), for messages.
pub(super) fn dependency_name(dir_name: &str) -> String {
    let mut parts: Vec<&str> = dir_name.rsplitn(3, '-').collect();
    parts
        .pop()
        .map(str::to_string)
        .unwrap_or_else(|| dir_name.to_string())
}
