//! The local journal: every submission and every callback delivery, in one SQLite file.
//!
//! # What it guarantees
//! A submission is recorded *before* `sbatch` runs (state `submitting`, with its job directory) and again
//! after (state `submitted`, with the job id). If the connection drops in between, the job directory
//! still holds the id sbatch wrote ([`crate::slurm::JOB_ID_FILE`]) and the next command that connects
//! reconciles the record, so a submitted job is never lost. Callback deliveries are rows keyed by
//! (event, plugin): delivered at least once, retried with backoff, picked up again by a later run.
//!
//! # Locking
//! SQLite's own locking; each CLI run opens one connection. `busy_timeout` lets two concurrent runs
//! (say `wait` in one terminal and `status` in another) take turns instead of failing.
//!
//! # Compatibility
//! Schema changes are migrations, applied in order at open and tracked in `PRAGMA user_version`.
//! Never edit or reorder a migration that has shipped; only append. Never make a change an older
//! slurmkit cannot read (adding tables and nullable columns is fine).
//!
//! # Where
//! `<data dir>/slurmkit/journal.sqlite` (e.g. `~/.local/share/slurmkit/`), or `--data-dir`.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, params};

mod clusters;
mod records;
mod schema;
mod shared;

pub use records::{CallbackRoute, Group, PolicyRecord, SubmissionState};
use records::{SELECT, readable, submission_from_row};
pub use shared::SharedJournal;

use schema::MIGRATIONS;

use crate::error::{Diagnose, exit};
use crate::types::names::JobId;
use crate::types::spec::JobSpec;
use crate::types::status::JobStatus;

pub mod inputs;

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("journal {path}: {source}")]
    Open {
        path: String,
        source: rusqlite::Error,
    },
    #[error("journal: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("journal: stored spec is not readable: {0}")]
    Spec(#[from] serde_json::Error),
    /// A failure already described (copied for each job it affects, or a task that did not finish).
    #[error("journal: {0}")]
    Failed(String),
}

impl Diagnose for JournalError {
    fn exit_code(&self) -> u8 {
        exit::INTERNAL
    }

    fn hint(&self) -> Option<String> {
        Some("the journal lives in the data directory (--data-dir / SLURMKIT_DATA_DIR); check that it is writable and the disk is not full".into())
    }
}

/// One submission as recorded.
#[derive(Debug, Clone)]
pub struct Submission {
    pub id: i64,
    pub cluster: String,
    pub job_name: String,
    pub job_dir: String,
    pub spec: JobSpec,
    pub spec_sha256: String,
    /// The renderer that produced the script: `builtin` or `<file> sha256:<hash>`.
    pub renderer: String,
    pub state: SubmissionState,
    pub job_id: Option<JobId>,
    pub created_ms: i64,
    pub last_status: Option<JobStatus>,
    /// The callbacks its events are journaled for; `None` for a submission recorded before slurmkit
    /// kept them.
    pub callbacks: Option<Vec<CallbackRoute>>,
    /// The site policies that passed it, in the order they ran (the spec is as they left it).
    pub policies: Vec<PolicyRecord>,
    /// The workflow it was submitted in, or the array it is a part of.
    pub group: Group,
}

/// A callback delivery waiting or done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub id: i64,
    pub submission_id: Option<i64>,
    pub event_id: String,
    pub event_kind: String,
    pub event_json: String,
    pub plugin: String,
    pub attempts: u32,
}

pub struct Journal {
    conn: Connection,
}

impl Journal {
    /// Open (creating if needed) and migrate the journal at `path`.
    pub fn open(path: &Path) -> Result<Journal, JournalError> {
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let conn = Connection::open(path).map_err(|source| JournalError::Open {
            path: path.display().to_string(),
            source,
        })?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        Self::migrated(conn)
    }

    pub fn open_in_memory() -> Result<Journal, JournalError> {
        Self::migrated(Connection::open_in_memory()?)
    }

    fn migrated(mut conn: Connection) -> Result<Journal, JournalError> {
        migrate(&mut conn, MIGRATIONS)?;
        Ok(Journal { conn })
    }

    /// Run `work` in one transaction: a batch of writes costs one commit (one sync to disk). If `work`
    /// fails, or the commit does, none of it is recorded.
    pub fn batch<T>(
        &self,
        work: impl FnOnce(&Journal) -> Result<T, JournalError>,
    ) -> Result<T, JournalError> {
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        let outcome = work(self).and_then(|value| {
            self.conn.execute_batch("COMMIT")?;
            Ok(value)
        });
        if outcome.is_err() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        outcome
    }

    /// Record a submission about to be sent to `sbatch`.
    pub fn begin_submission(
        &self,
        cluster: &str,
        job_dir: &str,
        spec: &JobSpec,
        renderer: &str,
        callbacks: &[CallbackRoute],
    ) -> Result<i64, JournalError> {
        let now = now_ms();
        self.conn.execute(
            "INSERT INTO submissions (cluster, job_name, job_dir, spec_json, spec_sha256, renderer, state, created_ms, updated_ms, callbacks_json)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'submitting', ?7, ?7, ?8)",
            params![
                cluster,
                spec.name.as_str(),
                job_dir,
                serde_json::to_string(spec)?,
                spec.sha256(),
                renderer,
                now,
                serde_json::to_string(callbacks)?
            ],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Record the site policies that passed a submission (in the transaction that began it).
    pub fn record_policies(&self, id: i64, policies: &[PolicyRecord]) -> Result<(), JournalError> {
        self.conn.execute(
            "UPDATE submissions SET policies_json = ?2 WHERE id = ?1",
            params![id, serde_json::to_string(policies)?],
        )?;
        Ok(())
    }

    /// Record what a submission belongs to (in the transaction that began it).
    pub fn record_group(&self, id: i64, group: &Group) -> Result<(), JournalError> {
        self.conn.execute(
            "UPDATE submissions SET group_json = ?2 WHERE id = ?1",
            params![id, serde_json::to_string(group)?],
        )?;
        Ok(())
    }

    /// The other parts of the array whose first part is in `job_dir`, in the order they were recorded.
    pub fn parts(&self, cluster: &str, job_dir: &str) -> Result<Vec<Submission>, JournalError> {
        let mut statement = self.conn.prepare(&format!(
            "{SELECT} WHERE cluster = ?1 AND json_extract(group_json, '$.part_of') = ?2 ORDER BY id"
        ))?;
        let rows = statement.query_map(params![cluster, job_dir], |row| {
            Ok(submission_from_row(row))
        })?;
        readable(rows)
    }

    /// Set when a submission was recorded, for records imported from elsewhere (and tests of what
    /// happens to old ones).
    pub fn set_created_ms(&self, id: i64, created_ms: i64) -> Result<(), JournalError> {
        self.conn.execute(
            "UPDATE submissions SET created_ms = ?2 WHERE id = ?1",
            params![id, created_ms],
        )?;
        Ok(())
    }

    pub fn mark_submitted(&self, id: i64, job_id: &JobId) -> Result<(), JournalError> {
        let now = now_ms();
        self.conn.execute(
            "UPDATE submissions SET state = 'submitted', job_id = ?2, submitted_ms = ?3, updated_ms = ?3 WHERE id = ?1",
            params![id, job_id.as_str(), now],
        )?;
        Ok(())
    }

    pub fn mark_rejected(&self, id: i64, error: &str) -> Result<(), JournalError> {
        self.conn.execute(
            "UPDATE submissions SET state = 'rejected', error = ?2, updated_ms = ?3 WHERE id = ?1 AND state = 'submitting'",
            params![id, error, now_ms()],
        )?;
        Ok(())
    }

    /// Give up on a submission whose outcome cannot be found out, saying why.
    pub fn mark_unknown(&self, id: i64, why: &str) -> Result<(), JournalError> {
        self.conn.execute(
            "UPDATE submissions SET state = 'unknown', error = ?2, updated_ms = ?3 WHERE id = ?1 AND state = 'submitting'",
            params![id, why, now_ms()],
        )?;
        Ok(())
    }

    pub fn record_status(&self, id: i64, status: &JobStatus) -> Result<(), JournalError> {
        self.conn.execute(
            "UPDATE submissions SET last_status_json = ?2, updated_ms = ?3 WHERE id = ?1",
            params![id, serde_json::to_string(status)?, now_ms()],
        )?;
        Ok(())
    }

    /// The latest submission of `job_id` (or, for an array task, of its array) on `cluster`.
    pub fn find_by_job_id(
        &self,
        cluster: &str,
        job_id: &JobId,
    ) -> Result<Option<Submission>, JournalError> {
        let row = self
            .conn
            .query_row(
                &format!("{SELECT} WHERE cluster = ?1 AND (job_id = ?2 OR job_id = ?3) ORDER BY id DESC LIMIT 1"),
                params![cluster, job_id.as_str(), job_id.base()],
                |row| Ok(submission_from_row(row)),
            )
            .optional()?;
        row.transpose()
    }

    /// Submissions on `cluster` whose job id never came back (the connection dropped during sbatch).
    pub fn unresolved(&self, cluster: &str) -> Result<Vec<Submission>, JournalError> {
        let mut statement = self.conn.prepare(&format!(
            "{SELECT} WHERE cluster = ?1 AND state = 'submitting' ORDER BY id"
        ))?;
        let rows = statement.query_map(params![cluster], |row| Ok(submission_from_row(row)))?;
        readable(rows)
    }

    /// The most recent submissions on `cluster`, newest first.
    pub fn recent(&self, cluster: &str, limit: u32) -> Result<Vec<Submission>, JournalError> {
        let mut statement = self.conn.prepare(&format!(
            "{SELECT} WHERE cluster = ?1 ORDER BY id DESC LIMIT ?2"
        ))?;
        let rows =
            statement.query_map(params![cluster, limit], |row| Ok(submission_from_row(row)))?;
        readable(rows)
    }

    pub fn submission(&self, id: i64) -> Result<Option<Submission>, JournalError> {
        let row = self
            .conn
            .query_row(&format!("{SELECT} WHERE id = ?1"), params![id], |row| {
                Ok(submission_from_row(row))
            })
            .optional()?;
        row.transpose()
    }

    /// Queue a delivery of `event_id` to `plugin`, once: a second call for the same pair does nothing.
    /// Returns whether it was newly queued.
    pub fn enqueue_delivery(
        &self,
        submission_id: Option<i64>,
        event_id: &str,
        event_kind: &str,
        event_json: &str,
        plugin: &str,
    ) -> Result<bool, JournalError> {
        let now = now_ms();
        let changed = self.conn.execute(
            "INSERT OR IGNORE INTO deliveries (submission_id, event_id, event_kind, event_json, plugin, state, next_attempt_ms, created_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, 'pending', ?6, ?6)",
            params![submission_id, event_id, event_kind, event_json, plugin, now],
        )?;
        Ok(changed == 1)
    }

    /// Deliveries due now (pending, next attempt in the past), oldest first.
    pub fn due_deliveries(&self, now_ms: i64) -> Result<Vec<Delivery>, JournalError> {
        let mut statement = self.conn.prepare(
            "SELECT id, submission_id, event_id, event_kind, event_json, plugin, attempts FROM deliveries
             WHERE state = 'pending' AND next_attempt_ms <= ?1 ORDER BY id",
        )?;
        let rows = statement.query_map(params![now_ms], |row| {
            Ok(Delivery {
                id: row.get(0)?,
                submission_id: row.get(1)?,
                event_id: row.get(2)?,
                event_kind: row.get(3)?,
                event_json: row.get(4)?,
                plugin: row.get(5)?,
                attempts: row.get(6)?,
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    pub fn mark_delivered(&self, id: i64) -> Result<(), JournalError> {
        let now = now_ms();
        self.conn.execute(
            "UPDATE deliveries SET state = 'delivered', attempts = attempts + 1, delivered_ms = ?2, last_error = NULL WHERE id = ?1",
            params![id, now],
        )?;
        Ok(())
    }

    /// Record that a delivery is not needed (the plugin does not subscribe to the event).
    pub fn mark_skipped(&self, id: i64, reason: &str) -> Result<(), JournalError> {
        self.conn.execute(
            "UPDATE deliveries SET state = 'skipped', last_error = ?2 WHERE id = ?1",
            params![id, reason],
        )?;
        Ok(())
    }

    /// Record a failed attempt: retry at `retry_at_ms`, or give up (`None`).
    pub fn mark_attempt_failed(
        &self,
        id: i64,
        error: &str,
        retry_at_ms: Option<i64>,
    ) -> Result<(), JournalError> {
        match retry_at_ms {
            Some(at) => self.conn.execute(
                "UPDATE deliveries SET attempts = attempts + 1, last_error = ?2, next_attempt_ms = ?3 WHERE id = ?1",
                params![id, error, at],
            )?,
            None => self.conn.execute(
                "UPDATE deliveries SET state = 'failed', attempts = attempts + 1, last_error = ?2 WHERE id = ?1",
                params![id, error],
            )?,
        };
        Ok(())
    }

    /// Record an MCP tool call as it starts; [`Journal::end_tool_call`] records how it went.
    pub fn begin_tool_call(&self, tool: &str, arguments: &str) -> Result<i64, JournalError> {
        self.conn.execute(
            "INSERT INTO tool_calls (tool, arguments_json, started_ms) VALUES (?1, ?2, ?3)",
            params![tool, arguments, now_ms()],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    /// `outcome`: `ok` or `error`, with the error's text.
    pub fn end_tool_call(
        &self,
        id: i64,
        outcome: &str,
        error: Option<&str>,
    ) -> Result<(), JournalError> {
        self.conn.execute(
            "UPDATE tool_calls SET outcome = ?2, error = ?3, ended_ms = ?4 WHERE id = ?1",
            params![id, outcome, error, now_ms()],
        )?;
        Ok(())
    }

    /// Every tool call, oldest first: `(tool, arguments, outcome)`.
    pub fn tool_calls(&self) -> Result<Vec<(String, String, Option<String>)>, JournalError> {
        let mut statement = self
            .conn
            .prepare("SELECT tool, arguments_json, outcome FROM tool_calls ORDER BY id")?;
        let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// Every delivery of a submission's events, oldest first: `(event kind, where it stands)`.
    pub fn deliveries_for(
        &self,
        submission_id: i64,
    ) -> Result<Vec<(String, DeliveryState)>, JournalError> {
        let mut statement = self.conn.prepare(
            "SELECT event_kind, plugin, state, attempts, last_error FROM deliveries WHERE submission_id = ?1 ORDER BY id",
        )?;
        let rows = statement.query_map(params![submission_id], |row| {
            Ok((
                row.get(0)?,
                DeliveryState {
                    plugin: row.get(1)?,
                    state: row.get(2)?,
                    attempts: row.get(3)?,
                    last_error: row.get(4)?,
                },
            ))
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// Every delivery of `event_kind`, oldest first, for reports and tests.
    pub fn deliveries_of(&self, event_kind: &str) -> Result<Vec<DeliveryState>, JournalError> {
        let mut statement = self.conn.prepare(
            "SELECT plugin, state, attempts, last_error FROM deliveries WHERE event_kind = ?1 ORDER BY id",
        )?;
        let rows = statement.query_map(params![event_kind], |row| {
            Ok(DeliveryState {
                plugin: row.get(0)?,
                state: row.get(1)?,
                attempts: row.get(2)?,
                last_error: row.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }
}

/// Where one delivery stands: `pending`, `delivered` or `failed` (given up).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryState {
    pub plugin: String,
    pub state: String,
    pub attempts: u32,
    pub last_error: Option<String>,
}

/// Apply the migrations not yet applied, in one exclusive transaction.
fn migrate(conn: &mut Connection, migrations: &[&str]) -> Result<(), JournalError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Exclusive)?;
    let applied: usize = tx.pragma_query_value(None, "user_version", |row| row.get(0))?;
    for migration in migrations.iter().skip(applied) {
        tx.execute_batch(migration)?;
    }
    if migrations.len() > applied {
        tx.pragma_update(None, "user_version", migrations.len())?;
    }
    tx.commit()?;
    Ok(())
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::names::JobName;
    use crate::types::spec::Payload;

    pub(crate) fn spec() -> JobSpec {
        JobSpec::new(
            JobName::parse("hello").unwrap(),
            Payload::Command(vec!["echo".into(), "hi".into()]),
        )
    }

    #[test]
    fn migrations_apply_once_and_append() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn, &MIGRATIONS[..1]).unwrap();
        let version: usize = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, 1);
        // Re-running with a longer list applies only the new step (a re-applied CREATE TABLE would fail).
        migrate(&mut conn, MIGRATIONS).unwrap();
        migrate(&mut conn, MIGRATIONS).unwrap();
        let version: usize = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, MIGRATIONS.len());
    }

    #[test]
    fn submission_lifecycle() {
        let journal = Journal::open_in_memory().unwrap();
        let id = journal
            .begin_submission(
                "u@h:22",
                "/home/u/slurm_jobs/hello-x",
                &spec(),
                "builtin",
                &[],
            )
            .unwrap();
        assert_eq!(journal.unresolved("u@h:22").unwrap().len(), 1);
        let job_id = JobId::parse("42").unwrap();
        journal.mark_submitted(id, &job_id).unwrap();
        assert!(journal.unresolved("u@h:22").unwrap().is_empty());
        let found = journal
            .find_by_job_id("u@h:22", &JobId::parse("42_3").unwrap())
            .unwrap()
            .unwrap();
        assert_eq!(found.job_dir, "/home/u/slurm_jobs/hello-x");
        assert_eq!(found.spec, spec());
        assert!(found.policies.is_empty());
        let policy = PolicyRecord {
            name: "site".into(),
            origin: "/etc/slurmkit/site.wasm".into(),
            sha256: "ab".repeat(32),
        };
        journal
            .record_policies(id, std::slice::from_ref(&policy))
            .unwrap();
        let found = journal.submission(id).unwrap().unwrap();
        assert_eq!(found.policies, vec![policy]);
        assert!(journal.find_by_job_id("other", &job_id).unwrap().is_none());
    }

    #[test]
    fn deliveries_are_queued_once_and_retried() {
        let journal = Journal::open_in_memory().unwrap();
        assert!(
            journal
                .enqueue_delivery(None, "ev1", "submitted", "{}", "ledger")
                .unwrap()
        );
        assert!(
            !journal
                .enqueue_delivery(None, "ev1", "submitted", "{}", "ledger")
                .unwrap()
        );
        let due = journal.due_deliveries(now_ms()).unwrap();
        assert_eq!(due.len(), 1);
        journal
            .mark_attempt_failed(due[0].id, "boom", Some(now_ms() + 60_000))
            .unwrap();
        assert!(journal.due_deliveries(now_ms()).unwrap().is_empty());
        assert_eq!(journal.due_deliveries(now_ms() + 61_000).unwrap().len(), 1);
        journal.mark_delivered(due[0].id).unwrap();
        assert_eq!(
            journal.deliveries_of("submitted").unwrap(),
            vec![DeliveryState {
                plugin: "ledger".into(),
                state: "delivered".into(),
                attempts: 2,
                last_error: None
            }]
        );
    }
}
