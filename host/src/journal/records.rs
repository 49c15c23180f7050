//! The records the journal keeps about a submission besides its spec: its state, the callbacks its
//! events go to, and the site policies that passed it.

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
