//! The records the journal keeps about a submission besides its spec: its state, the callbacks its
//! events go to, the site policies that passed it and what it belongs to; and reading a submission's row.

use super::{JournalError, Submission};
use crate::types::names::JobId;

/// Where a submission stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubmissionState {
    /// Recorded, `sbatch` about to run or running; the job id is not known yet.
    Submitting,
    /// `sbatch` returned a job id.
    Submitted,
    /// `sbatch` refused the job (nothing was queued).
    Rejected,
    /// Its outcome could not be found out: no id in its directory and no such job in Slurm.
    Unknown,
}

impl SubmissionState {
    /// The name the journal stores.
    pub fn as_str(self) -> &'static str {
        match self {
            SubmissionState::Submitting => "submitting",
            SubmissionState::Submitted => "submitted",
            SubmissionState::Rejected => "rejected",
            SubmissionState::Unknown => "unknown",
        }
    }

    pub(super) fn parse(s: &str) -> Self {
        match s {
            "submitted" => SubmissionState::Submitted,
            "rejected" => SubmissionState::Rejected,
            "unknown" => SubmissionState::Unknown,
            _ => SubmissionState::Submitting,
        }
    }
}

/// A callback configured for a submission: which one (its Slurmfile and name, so two projects' callbacks
/// that share a file name never receive each other's events), and the Slurmfile's `events` filter
/// (`None`: all the plugin subscribes to).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CallbackRoute {
    /// `<Slurmfile path>#<name>`: the `plugin` of its deliveries.
    pub key: String,
    pub name: String,
    pub events: Option<Vec<String>>,
    /// The component's sha256 when the submission was made (when it loaded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

impl CallbackRoute {
    pub fn admits(&self, event_kind: &str) -> bool {
        self.events
            .as_ref()
            .is_none_or(|events| events.iter().any(|e| e == event_kind))
    }
}

/// A site policy that passed a submission (and maybe amended it), as journaled with it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PolicyRecord {
    pub name: String,
    /// The plugin file, or where the site layer named it.
    pub origin: String,
    pub sha256: String,
}

/// What a submission belongs to besides itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Group {
    /// For every job submitted in a workflow (a job graph): the job directory of its last job, whose
    /// submission carries the `workflow-*` events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<String>,
    /// For a later part of an array split at the cluster's MaxArraySize: the job directory of the
    /// first part, which holds the items, the results and the outputs of every part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part_of: Option<String>,
    /// For a later part: the index of its first item.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
}

pub(super) const SELECT: &str = "SELECT id, cluster, job_name, job_dir, spec_json, spec_sha256, renderer, state, job_id, created_ms, last_status_json, callbacks_json, policies_json, group_json FROM submissions";

pub(super) fn submission_from_row(row: &rusqlite::Row<'_>) -> Result<Submission, JournalError> {
    let spec_json: String = row.get(4)?;
    let state: String = row.get(7)?;
    let job_id: Option<String> = row.get(8)?;
    let last_status: Option<String> = row.get(10)?;
    let callbacks: Option<String> = row.get(11)?;
    let policies: Option<String> = row.get(12)?;
    let group: Option<String> = row.get(13)?;
    Ok(Submission {
        id: row.get(0)?,
        cluster: row.get(1)?,
        job_name: row.get(2)?,
        job_dir: row.get(3)?,
        spec: serde_json::from_str(&spec_json)?,
        spec_sha256: row.get(5)?,
        renderer: row.get(6)?,
        state: SubmissionState::parse(&state),
        job_id: job_id.and_then(|id| JobId::parse(&id).ok()),
        created_ms: row.get(9)?,
        last_status: last_status.and_then(|s| serde_json::from_str(&s).ok()),
        callbacks: callbacks.and_then(|json| {
            serde_json::from_str(&json)
                .inspect_err(|e| tracing::warn!("unreadable callbacks of a journaled submission ({e}); using the Slurmfile's"))
                .ok()
        }),
        policies: policies
            .and_then(|json| serde_json::from_str(&json).ok())
            .unwrap_or_default(),
        group: group
            .and_then(|json| serde_json::from_str(&json).ok())
            .unwrap_or_default(),
    })
}

/// The rows that read back; one this version cannot read (written by a newer slurmkit, say) is logged
/// and skipped rather than making every listing fail.
pub(super) fn readable(
    rows: impl Iterator<Item = rusqlite::Result<Result<Submission, JournalError>>>,
) -> Result<Vec<Submission>, JournalError> {
    let mut submissions = Vec::new();
    for row in rows {
        match row? {
            Ok(submission) => submissions.push(submission),
            Err(e) => tracing::warn!("skipping a journal entry this slurmkit cannot read: {e}"),
        }
    }
    Ok(submissions)
}
