//! What is known about a job: its state (the WIT's own `job-state`), exit code, reason, and where the
//! answer came from.

use serde::{Deserialize, Serialize};

use super::names::JobId;
pub use crate::wit::JobState;

/// What is known about a job at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobStatus {
    pub job_id: JobId,
    pub state: JobState,
    /// The job's exit code once it is known (Slurm's `ExitCode=<code>:<signal>`).
    pub exit_code: Option<i32>,
    /// The signal that ended the job, when non-zero.
    pub signal: Option<u32>,
    pub reason: Option<String>,
    /// Where the answer came from.
    pub source: StatusSource,
}

/// Which command (or record) a status came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StatusSource {
    Squeue,
    Scontrol,
    Sacct,
    /// The local journal: Slurm no longer knows the job, but it was seen finishing.
    Journal,
    /// Nothing knows the job.
    None,
}

impl JobStatus {
    pub fn new(job_id: JobId, state: JobState, source: StatusSource) -> Self {
        JobStatus {
            job_id,
            state,
            exit_code: None,
            signal: None,
            reason: None,
            source,
        }
    }

    /// Whether the job is pending for good: a job it runs after ended in a way its dependency does
    /// not accept (Slurm's `DependencyNeverSatisfied`), so it will never start unless cancelled.
    pub fn never_runs(&self) -> bool {
        self.state == JobState::Pending
            && self
                .reason
                .as_deref()
                .is_some_and(|r| r.starts_with("DependencyNeverSatisfied"))
    }

    /// Whether nothing more will happen to the job by itself: it ended, or it never runs.
    pub fn settled(&self) -> bool {
        self.state.is_terminal() || self.never_runs()
    }
}

/// An array job's state, from its tasks': running while any task is, otherwise how they ended — COMPLETED
/// only if every task completed, else the first unsuccessful outcome, most serious first.
pub fn aggregate(array: &JobId, tasks: &[JobStatus]) -> JobStatus {
    const SEVERITY: [JobState; 9] = [
        JobState::Failed,
        JobState::OutOfMemory,
        JobState::Timeout,
        JobState::NodeFail,
        JobState::BootFail,
        JobState::Deadline,
        JobState::Preempted,
        JobState::Cancelled,
        JobState::Unknown,
    ];
    let mut status = JobStatus::new(
        array.clone(),
        JobState::Pending,
        tasks.first().map_or(StatusSource::None, |t| t.source),
    );
    let active = |s: JobState| {
        matches!(
            s,
            JobState::Running | JobState::Completing | JobState::Configuring
        )
    };
    if tasks.iter().any(|t| active(t.state)) {
        status.state = JobState::Running;
    } else if let Some(waiting) = tasks
        .iter()
        .find(|t| !t.state.is_terminal() && t.state != JobState::Unknown)
    {
        status.state = waiting.state;
        status.reason = waiting.reason.clone();
    } else if !tasks.is_empty() && tasks.iter().all(|t| t.state == JobState::Completed) {
        status.state = JobState::Completed;
        status.exit_code = Some(0);
    } else if let Some(worst) = SEVERITY
        .iter()
        .find_map(|s| tasks.iter().find(|t| t.state == *s))
    {
        status.state = worst.state;
        status.exit_code = worst.exit_code;
        status.signal = worst.signal;
        status.reason = Some(format!("task {} ended {}", worst.job_id, worst.state));
    }
    status
}

impl JobStatus {
    /// The record plugins see.
    pub fn to_wit(&self) -> crate::wit::WitStatus {
        crate::wit::WitStatus {
            state: self.state,
            exit_code: self.exit_code,
            signal: self.signal,
            reason: self.reason.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_whose_dependency_can_never_be_met_is_settled() {
        let mut status = JobStatus::new(
            JobId::parse("7").unwrap(),
            JobState::Pending,
            StatusSource::Squeue,
        );
        status.reason = Some("Dependency".into());
        assert!(!status.never_runs() && !status.settled());
        status.reason = Some("DependencyNeverSatisfied".into());
        assert!(status.never_runs() && status.settled());
        let array = aggregate(&JobId::parse("8").unwrap(), std::slice::from_ref(&status));
        assert!(
            array.never_runs(),
            "an array waits for the reason its tasks wait"
        );
        status.state = JobState::Cancelled;
        assert!(!status.never_runs() && status.settled());
    }

    #[test]
    fn arrays_aggregate_their_tasks() {
        let array = JobId::parse("7").unwrap();
        let task = |i: u32, state, code| JobStatus {
            job_id: JobId::parse(&format!("7_{i}")).unwrap(),
            state,
            exit_code: code,
            signal: None,
            reason: None,
            source: StatusSource::Scontrol,
        };
        let all = |states: &[(JobState, Option<i32>)]| {
            let tasks: Vec<JobStatus> = states
                .iter()
                .enumerate()
                .map(|(i, (s, c))| task(i as u32, *s, *c))
                .collect();
            aggregate(&array, &tasks)
        };
        assert_eq!(
            all(&[(JobState::Completed, Some(0)), (JobState::Running, None)]).state,
            JobState::Running
        );
        assert_eq!(
            all(&[(JobState::Completed, Some(0)), (JobState::Pending, None)]).state,
            JobState::Pending
        );
        assert_eq!(
            all(&[
                (JobState::Completed, Some(0)),
                (JobState::Completed, Some(0))
            ])
            .state,
            JobState::Completed
        );
        let failed = all(&[
            (JobState::Cancelled, Some(0)),
            (JobState::Failed, Some(3)),
            (JobState::Completed, Some(0)),
        ]);
        assert_eq!(
            (failed.state, failed.exit_code),
            (JobState::Failed, Some(3))
        );
        assert_eq!(failed.reason.as_deref(), Some("task 7_1 ended FAILED"));
        assert_eq!(failed.job_id, array);
    }
}
