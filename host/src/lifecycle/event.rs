//! A lifecycle event as the outbox journals it ([`HostEvent`]), and the WIT record a callback receives
//! for it.

use serde::{Deserialize, Serialize};

use crate::config::node::RunInfo;
use crate::plugin::convert;
use crate::types::spec::JobSpec;
use crate::types::status::JobStatus;
use crate::wit::{self, EventKind};

/// An event as journaled; turned into the WIT record at delivery.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HostEvent {
    pub id: String,
    pub kind: EventKind,
    pub spec: JobSpec,
    pub cluster: String,
    pub job_id: Option<String>,
    pub job_dir: Option<String>,
    pub timestamp_ms: u64,
    pub detail: EventDetail,
    /// Where on the cluster it happened, for events from the node-side runner.
    #[serde(default)]
    pub node: Option<NodeDetails>,
}

/// The node, array task and step an event from the node-side runner came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeDetails {
    pub node: String,
    pub array_task_id: Option<u32>,
    pub step: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventDetail {
    None,
    Submitted(String),
    Status {
        previous: Option<JobStatus>,
        current: JobStatus,
    },
    /// `outputs-fetched`: the paths written, relative to the local destination.
    Outputs(Vec<String>),
    /// `run-end`: how the payload ended on the node.
    Run(RunInfo),
    /// `workflow-task-submitted`: a job of the workflow (its name in the Slurmfile) and its id.
    WorkflowTask {
        name: String,
        job_id: String,
    },
}

impl HostEvent {
    pub fn to_wit(&self) -> wit::Event {
        wit::Event {
            id: self.id.clone(),
            kind: self.kind,
            job: convert::job_to_wit(&self.spec),
            cluster: self.cluster.clone(),
            job_id: self.job_id.clone(),
            job_dir: self.job_dir.clone(),
            emitted_by: if self.node.is_some() {
                wit::Emitter::ComputeNode
            } else {
                wit::Emitter::Client
            },
            timestamp_ms: self.timestamp_ms,
            detail: match &self.detail {
                EventDetail::None => wit::EventDetail::None,
                EventDetail::Submitted(id) => wit::EventDetail::Submitted(id.clone()),
                EventDetail::Status { previous, current } => {
                    wit::EventDetail::Status(wit::latest::types::StatusChange {
                        previous: previous.as_ref().map(JobStatus::to_wit),
                        current: current.to_wit(),
                        terminal: current.state.is_terminal(),
                    })
                }
                EventDetail::WorkflowTask { name, job_id } => {
                    wit::EventDetail::WorkflowTask(wit::latest::types::WorkflowTask {
                        task_name: name.clone(),
                        task_job_id: job_id.clone(),
                    })
                }
                EventDetail::Outputs(paths) => wit::EventDetail::Outputs(paths.clone()),
                EventDetail::Run(run) => wit::EventDetail::Run(wit::latest::types::RunInfo {
                    exit_code: run.exit_code,
                    signal: run.signal,
                    elapsed_ms: run.elapsed_ms,
                    peak_memory_kib: run.peak_memory_kib,
                }),
            },
            node: self
                .node
                .as_ref()
                .map(|node| wit::latest::types::NodeDetails {
                    node: node.node.clone(),
                    array_task_id: node.array_task_id,
                    step: Some(node.step.clone()),
                }),
        }
    }
}
