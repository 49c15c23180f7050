//! Between the host's types and the WIT records plugins see.

use std::fmt;

use super::bindings::v0_1_0::types as wit;
use crate::job::spec::{DependencyKind, JobSpec, Payload};
use crate::slurm::state::{JobState, JobStatus};

/// Lifecycle events, named as in the WIT (`submit-begin`); `submit_begin` is accepted too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    PackagingBegin,
    PackagingEnd,
    SubmitBegin,
    Submitted,
    StatusChanged,
    RunBegin,
    RunEnd,
    Completed,
    Failed,
    WorkflowBegin,
    WorkflowEnd,
    WorkflowTaskSubmitted,
    OutputsFetched,
}

impl EventKind {
    pub const ALL: [EventKind; 13] = [
        EventKind::PackagingBegin,
        EventKind::PackagingEnd,
        EventKind::SubmitBegin,
        EventKind::Submitted,
        EventKind::StatusChanged,
        EventKind::RunBegin,
        EventKind::RunEnd,
        EventKind::Completed,
        EventKind::Failed,
        EventKind::WorkflowBegin,
        EventKind::WorkflowEnd,
        EventKind::WorkflowTaskSubmitted,
        EventKind::OutputsFetched,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::PackagingBegin => "packaging-begin",
            EventKind::PackagingEnd => "packaging-end",
            EventKind::SubmitBegin => "submit-begin",
            EventKind::Submitted => "submitted",
            EventKind::StatusChanged => "status-changed",
            EventKind::RunBegin => "run-begin",
            EventKind::RunEnd => "run-end",
            EventKind::Completed => "completed",
            EventKind::Failed => "failed",
            EventKind::WorkflowBegin => "workflow-begin",
            EventKind::WorkflowEnd => "workflow-end",
            EventKind::WorkflowTaskSubmitted => "workflow-task-submitted",
            EventKind::OutputsFetched => "outputs-fetched",
        }
    }

    pub fn parse(name: &str) -> Option<EventKind> {
        let name = name.replace('_', "-");
        EventKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == name)
    }

    pub fn to_wit(self) -> wit::EventKind {
        match self {
            EventKind::PackagingBegin => wit::EventKind::PackagingBegin,
            EventKind::PackagingEnd => wit::EventKind::PackagingEnd,
            EventKind::SubmitBegin => wit::EventKind::SubmitBegin,
            EventKind::Submitted => wit::EventKind::Submitted,
            EventKind::StatusChanged => wit::EventKind::StatusChanged,
            EventKind::RunBegin => wit::EventKind::RunBegin,
            EventKind::RunEnd => wit::EventKind::RunEnd,
            EventKind::Completed => wit::EventKind::Completed,
            EventKind::Failed => wit::EventKind::Failed,
            EventKind::WorkflowBegin => wit::EventKind::WorkflowBegin,
            EventKind::WorkflowEnd => wit::EventKind::WorkflowEnd,
            EventKind::WorkflowTaskSubmitted => wit::EventKind::WorkflowTaskSubmitted,
            EventKind::OutputsFetched => wit::EventKind::OutputsFetched,
        }
    }

    pub fn from_wit(kind: wit::EventKind) -> EventKind {
        EventKind::ALL
            .into_iter()
            .find(|k| k.to_wit() == kind)
            .expect("every WIT event kind has a host kind")
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for EventKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        EventKind::parse(&name).ok_or_else(|| {
            let known: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
            serde::de::Error::custom(format!(
                "unknown event {name:?}; events are: {}",
                known.join(", ")
            ))
        })
    }
}

impl serde::Serialize for EventKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// The job record a renderer or callback sees.
pub fn job_to_wit(spec: &JobSpec) -> wit::Job {
    let string = |v: Option<&str>| v.map(str::to_string);
    wit::Job {
        name: spec.name.to_string(),
        payload: match &spec.payload {
            Payload::Command(argv) => wit::Payload::Command(argv.clone()),
            Payload::Script(body) => wit::Payload::Script(body.clone()),
        },
        working_dir: string(spec.working_dir.as_ref().map(|d| d.as_str())),
        environment: spec
            .environment
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        modules: spec.modules.clone(),
        partition: string(spec.partition.as_ref().map(|v| v.as_str())),
        account: string(spec.account.as_ref().map(|v| v.as_str())),
        qos: string(spec.qos.as_ref().map(|v| v.as_str())),
        reservation: string(spec.reservation.as_ref().map(|v| v.as_str())),
        time_limit_seconds: spec.time_limit.map(|t| t.seconds()),
        nodes: spec.nodes.map(|n| wit::NodeCount {
            min: n.min,
            max: n.max,
        }),
        ntasks: spec.ntasks,
        ntasks_per_node: spec.ntasks_per_node,
        cpus_per_task: spec.cpus_per_task,
        memory_mb: spec.memory.map(|m| m.mebibytes()),
        mem_per_cpu_mb: spec.mem_per_cpu.map(|m| m.mebibytes()),
        gpus: string(spec.gpus.as_ref().map(|v| v.as_str())),
        gres: string(spec.gres.as_ref().map(|v| v.as_str())),
        constraint: string(spec.constraint.as_ref().map(|v| v.as_str())),
        exclusive: spec.exclusive,
        array: string(spec.array.as_ref().map(|v| v.as_str())),
        dependencies: spec
            .dependencies
            .iter()
            .map(|d| wit::Dependency {
                kind: match d.kind {
                    DependencyKind::After => wit::DependencyKind::After,
                    DependencyKind::AfterAny => wit::DependencyKind::AfterAny,
                    DependencyKind::AfterOk => wit::DependencyKind::AfterOk,
                    DependencyKind::AfterNotOk => wit::DependencyKind::AfterNotOk,
                    DependencyKind::AfterCorr => wit::DependencyKind::AfterCorr,
                    DependencyKind::Singleton => wit::DependencyKind::Singleton,
                },
                job_ids: d.job_ids.iter().map(|id| id.to_string()).collect(),
            })
            .collect(),
        output: Some(spec.stdout_pattern().to_string()),
        error: Some(spec.stderr_pattern().to_string()),
        extra_directives: spec.extra_directives.clone(),
    }
}

pub fn status_to_wit(status: &JobStatus) -> wit::JobStatus {
    wit::JobStatus {
        state: match status.state {
            JobState::Pending => wit::JobState::Pending,
            JobState::Configuring => wit::JobState::Configuring,
            JobState::Running => wit::JobState::Running,
            JobState::Completing => wit::JobState::Completing,
            JobState::Suspended => wit::JobState::Suspended,
            JobState::Requeued => wit::JobState::Requeued,
            JobState::Completed => wit::JobState::Completed,
            JobState::Failed => wit::JobState::Failed,
            JobState::Cancelled => wit::JobState::Cancelled,
            JobState::Timeout => wit::JobState::Timeout,
            JobState::OutOfMemory => wit::JobState::OutOfMemory,
            JobState::NodeFail => wit::JobState::NodeFail,
            JobState::Preempted => wit::JobState::Preempted,
            JobState::BootFail => wit::JobState::BootFail,
            JobState::Deadline => wit::JobState::Deadline,
            JobState::Unknown => wit::JobState::Unknown,
        },
        exit_code: status.exit_code,
        signal: status.signal,
        reason: status.reason.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_names_round_trip() {
        for kind in EventKind::ALL {
            assert_eq!(EventKind::parse(kind.as_str()), Some(kind));
            assert_eq!(EventKind::from_wit(kind.to_wit()), kind);
        }
        assert_eq!(
            EventKind::parse("status_changed"),
            Some(EventKind::StatusChanged)
        );
        assert_eq!(EventKind::parse("nope"), None);
    }
}
