//! The compute-node side's files in a job directory: what the node-side runner is told
//! ([`NodePlan`], `.slurmkit/node.json`, written at submission) and what it writes ([`NodeEvent`]s, one
//! JSON line each in `.slurmkit/events.jsonl`, read by the client on its next poll).

use serde::{Deserialize, Serialize};

use super::Grants;
use crate::wit::EventKind;

/// Relative to the job directory.
pub const NODE_PLAN_FILE: &str = ".slurmkit/node.json";
pub const NODE_EVENTS_FILE: &str = ".slurmkit/events.jsonl";
/// The events a runner observes.
pub const NODE_EVENT_KINDS: [EventKind; 2] = [EventKind::RunBegin, EventKind::RunEnd];

/// What the runner does besides running the payload.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodePlan {
    /// The cluster's key as the client knows it, so event ids are the same on both sides.
    pub cluster: String,
    pub callbacks: Vec<NodeCallback>,
}

/// A callback that runs on the node (`on = "node"`), as its `[[callbacks]]` entry said.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeCallback {
    pub name: String,
    /// Absolute path of the uploaded component on the cluster.
    pub wasm: String,
    /// Checked before every use.
    pub sha256: String,
    pub config: Vec<(String, String)>,
    /// Directories relative to the job directory.
    pub grants: Grants,
    pub limits: NodeLimits,
    /// Of [`NODE_EVENT_KINDS`], the ones its entry lets through.
    pub events: Vec<EventKind>,
}

/// The limits as resolved on the client, in plain units.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeLimits {
    pub memory: usize,
    pub timeout_ms: u64,
    pub output: usize,
    pub compile_time_ms: u64,
    pub compile_memory: usize,
}

/// One line of the runner's event log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeEvent {
    /// `run-begin` or `run-end`.
    pub kind: EventKind,
    /// `123`, or `123_4` for a task of an array.
    pub job_id: String,
    pub node: String,
    pub array_task_id: Option<u32>,
    /// `batch` for the batch script.
    pub step: String,
    /// `SLURM_RESTART_COUNT`: a requeued job's runs are events of their own.
    #[serde(default)]
    pub restart: u32,
    pub timestamp_ms: u64,
    /// For `run-end`.
    #[serde(default)]
    pub run: Option<RunInfo>,
}

/// How the payload ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunInfo {
    pub exit_code: Option<i32>,
    pub signal: Option<u32>,
    pub elapsed_ms: u64,
    pub peak_memory_kib: Option<u64>,
}

impl NodeEvent {
    /// What makes its event id unique within the job directory.
    pub fn id_suffix(&self) -> String {
        if self.restart == 0 {
            format!(":{}", self.job_id)
        } else {
            format!(":{}:restart{}", self.job_id, self.restart)
        }
    }
}

/// The events in a runner's log, skipping lines that do not parse (a line cut short by a node that
/// died mid-write, or anything else that is not ours) with a warning.
pub fn parse_events(text: &str) -> Vec<NodeEvent> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .filter_map(|line| match serde_json::from_str::<NodeEvent>(line) {
            Ok(event) if NODE_EVENT_KINDS.contains(&event.kind) => Some(event),
            Ok(_) | Err(_) => {
                tracing::warn!(
                    "skipping a line of the node's event log that is not an event: {}",
                    crate::types::text::bounded(line, 200)
                );
                None
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_lines_round_trip_and_junk_is_skipped() {
        let event = NodeEvent {
            kind: EventKind::RunEnd,
            job_id: "12_3".into(),
            node: "n1".into(),
            array_task_id: Some(3),
            step: "batch".into(),
            restart: 0,
            timestamp_ms: 5,
            run: Some(RunInfo {
                exit_code: Some(0),
                signal: None,
                elapsed_ms: 10,
                peak_memory_kib: Some(2048),
            }),
        };
        let line = serde_json::to_string(&event).unwrap();
        let text = format!(
            "{line}\n{{\"kind\":\"run-end\",\"job\n{{\"kind\":\"submitted\",\"job_id\":\"1\",\"node\":\"n\",\"array_task_id\":null,\"step\":\"b\",\"timestamp_ms\":1}}\n"
        );
        assert_eq!(parse_events(&text), vec![event]);
    }
}
