//! A callback that appends one line per event to a ledger file in a granted directory:
//!
//! ```toml
//! [[callbacks]]
//! plugin = "plugins/rust_ledger.wasm"
//! config = { file = "ledger/events.tsv" }
//! [callbacks.grants]
//! write = ["ledger"]
//! ```
//!
//! Each line: event id, event kind, job id, job name, state (for status events), tab-separated. A line
//! already in the ledger is not written twice, so a redelivered event leaves one line.

wit_bindgen::generate!({ world: "callbacks", path: "../../../wit" });

use std::io::Write;

use slurmkit::plugin::host::config;
use slurmkit::plugin::types::EventDetail;

struct Ledger;

impl Guest for Ledger {
    fn subscriptions() -> Vec<EventKind> {
        Vec::new()
    }

    fn on_event(event: Event) -> Result<(), CallbackError> {
        let file = config()
            .into_iter()
            .find(|(k, _)| k == "file")
            .map(|(_, v)| v)
            .unwrap_or_else(|| "ledger/events.tsv".into());
        let state = match &event.detail {
            // `JobState::Completed` -> `COMPLETED`.
            EventDetail::Status(change) => format!("{:?}", change.current.state)
                .rsplit(':')
                .next()
                .unwrap_or_default()
                .to_uppercase(),
            EventDetail::Submitted(id) => format!("id={id}"),
            EventDetail::WorkflowTask(task) => format!("{}={}", task.task_name, task.task_job_id),
            _ => String::new(),
        };
        let kind = format!("{:?}", event.kind);
        let kind = kind.rsplit(':').next().unwrap_or_default();
        let line = format!(
            "{}\t{kind}\t{}\t{}\t{state}\n",
            event.id,
            event.job_id.unwrap_or_default(),
            event.job.name
        );
        let existing = std::fs::read_to_string(&file).unwrap_or_default();
        if existing
            .lines()
            .any(|l| l.starts_with(&format!("{}\t", event.id)))
        {
            return Ok(());
        }
        let write = || -> std::io::Result<()> {
            let mut ledger = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&file)?;
            ledger.write_all(line.as_bytes())
        };
        write().map_err(|e| CallbackError {
            message: format!("cannot append to {file}: {e}"),
            retryable: true,
        })
    }
}

export!(Ledger);
