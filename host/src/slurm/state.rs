//! Job states and the parsers that read them out of `squeue`, `scontrol` and `sacct`.
//!
//! The parsers are pure functions over captured output so they can be tested on text from real clusters.
//! They are keyed by field name, never by column position, and tolerate fields they do not know
//! (Slurm 23.02+ changed some output; 22.05 is what the test cluster runs).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::validate::JobId;

/// One state enum for every Slurm command's vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobState {
    Pending,
    Configuring,
    Running,
    Completing,
    Suspended,
    Requeued,
    Completed,
    Failed,
    Cancelled,
    Timeout,
    OutOfMemory,
    NodeFail,
    Preempted,
    BootFail,
    Deadline,
    Unknown,
}

impl JobState {
    /// Parse a state as any Slurm command prints it: long (`OUT_OF_MEMORY`), short (`OOM`, `CA`),
    /// or with a suffix (`CANCELLED by 1000`, `COMPLETING+`).
    pub fn parse(raw: &str) -> JobState {
        let word = raw
            .split(|c: char| c.is_whitespace() || c == '+')
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        match word.as_str() {
            "PENDING" | "PD" | "REQUEUE_HOLD" | "RH" | "REQUEUE_FED" | "RF" | "RESV_DEL_HOLD"
            | "RD" => JobState::Pending,
            "CONFIGURING" | "CF" => JobState::Configuring,
            "RUNNING" | "R" | "SIGNALING" | "SI" | "STAGE_OUT" | "SO" | "RESIZING" | "RS" => {
                JobState::Running
            }
            "COMPLETING" | "CG" => JobState::Completing,
            "SUSPENDED" | "S" | "STOPPED" | "ST" => JobState::Suspended,
            "REQUEUED" | "RQ" => JobState::Requeued,
            "COMPLETED" | "CD" => JobState::Completed,
            "FAILED" | "F" | "SPECIAL_EXIT" | "SE" | "REVOKED" | "RV" => JobState::Failed,
            "CANCELLED" | "CA" => JobState::Cancelled,
            "TIMEOUT" | "TO" => JobState::Timeout,
            "OUT_OF_MEMORY" | "OOM" => JobState::OutOfMemory,
            "NODE_FAIL" | "NF" => JobState::NodeFail,
            "PREEMPTED" | "PR" => JobState::Preempted,
            "BOOT_FAIL" | "BF" => JobState::BootFail,
            "DEADLINE" | "DL" => JobState::Deadline,
            _ => JobState::Unknown,
        }
    }

    /// The job will not change state again.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobState::Completed
                | JobState::Failed
                | JobState::Cancelled
                | JobState::Timeout
                | JobState::OutOfMemory
                | JobState::NodeFail
                | JobState::Preempted
                | JobState::BootFail
                | JobState::Deadline
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Pending => "PENDING",
            JobState::Configuring => "CONFIGURING",
            JobState::Running => "RUNNING",
            JobState::Completing => "COMPLETING",
            JobState::Suspended => "SUSPENDED",
            JobState::Requeued => "REQUEUED",
            JobState::Completed => "COMPLETED",
            JobState::Failed => "FAILED",
            JobState::Cancelled => "CANCELLED",
            JobState::Timeout => "TIMEOUT",
            JobState::OutOfMemory => "OUT_OF_MEMORY",
            JobState::NodeFail => "NODE_FAIL",
            JobState::Preempted => "PREEMPTED",
            JobState::BootFail => "BOOT_FAIL",
            JobState::Deadline => "DEADLINE",
            JobState::Unknown => "UNKNOWN",
        }
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

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
    fn new(job_id: JobId, state: JobState, source: StatusSource) -> Self {
        JobStatus {
            job_id,
            state,
            exit_code: None,
            signal: None,
            reason: None,
            source,
        }
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

/// The `--format` given to squeue; [`parse_squeue`] reads exactly these fields.
pub const SQUEUE_FORMAT: &str = "%i|%T|%r";

/// Parse `squeue --noheader --format=%i|%T|%r` output.
pub fn parse_squeue(output: &str) -> Vec<JobStatus> {
    output
        .lines()
        .filter_map(|line| {
            let mut fields = line.trim().splitn(3, '|');
            let raw_id = fields.next()?.trim();
            // Array tasks that have not started yet are listed together as `123_[4-9]`.
            let raw_id = raw_id.split_once("_[").map_or(raw_id, |(base, _)| base);
            let id = JobId::parse(raw_id).ok()?;
            let mut status =
                JobStatus::new(id, JobState::parse(fields.next()?), StatusSource::Squeue);
            status.reason = fields
                .next()
                .map(str::trim)
                .filter(|r| !r.is_empty() && *r != "None")
                .map(String::from);
            Some(status)
        })
        .collect()
}

/// Parse one `scontrol -o show job` record (a single line of `Key=Value` pairs).
pub fn parse_scontrol_record(line: &str) -> Option<JobStatus> {
    let fields = scontrol_fields(line);
    // Array tasks show `JobId=<own id> ArrayJobId=<a> ArrayTaskId=<i>`; users know them as `<a>_<i>`.
    let id = match (fields.get("ArrayJobId"), fields.get("ArrayTaskId")) {
        (Some(array), Some(task)) if task.bytes().all(|b| b.is_ascii_digit()) => {
            format!("{array}_{task}")
        }
        _ => fields.get("JobId")?.to_string(),
    };
    let mut status = JobStatus::new(
        JobId::parse(&id).ok()?,
        JobState::parse(fields.get("JobState")?),
        StatusSource::Scontrol,
    );
    status.reason = fields
        .get("Reason")
        .filter(|r| **r != "None")
        .map(|r| r.to_string());
    if status.state.is_terminal() {
        (status.exit_code, status.signal) = parse_exit_code(fields.get("ExitCode").copied());
    }
    Some(status)
}

/// Split `Key=Value Key2=Value with spaces` into a map. Values may contain spaces (e.g. `Reason`,
/// `Command`), so a new field starts only at a ` Word=` boundary.
fn scontrol_fields(line: &str) -> BTreeMap<&str, &str> {
    let mut starts = Vec::new();
    let bytes = line.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if i == 0 || bytes[i - 1] == b' ' {
            let key_len = bytes[i..]
                .iter()
                .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_' || **b == b':')
                .count();
            if key_len > 0 && bytes.get(i + key_len) == Some(&b'=') {
                starts.push((i, i + key_len));
            }
        }
        i += 1;
    }
    let mut fields = BTreeMap::new();
    for (n, &(start, eq)) in starts.iter().enumerate() {
        let end = starts
            .get(n + 1)
            .map(|&(next, _)| next - 1)
            .unwrap_or(line.len());
        fields.insert(&line[start..eq], line[eq + 1..end.max(eq + 1)].trim_end());
    }
    fields
}

/// `3:0` → (Some(3), None); `0:15` → (Some(0), Some(15)).
fn parse_exit_code(raw: Option<&str>) -> (Option<i32>, Option<u32>) {
    let Some((code, signal)) = raw.and_then(|r| r.split_once(':')) else {
        return (None, None);
    };
    (code.parse().ok(), signal.parse().ok().filter(|s| *s != 0))
}

/// The `--format` given to sacct; [`parse_sacct`] reads exactly these fields.
pub const SACCT_FORMAT: &str = "JobID,State,ExitCode,Reason";

/// Parse `sacct --noheader --parsable2 --format=JobID,State,ExitCode,Reason` output. Step lines
/// (`123.batch`, `123.0`) are skipped: the allocation line carries the job's state.
pub fn parse_sacct(output: &str) -> Vec<JobStatus> {
    output
        .lines()
        .filter_map(|line| {
            let mut fields = line.trim().split('|');
            let id = JobId::parse(fields.next()?).ok()?;
            let mut status =
                JobStatus::new(id, JobState::parse(fields.next()?), StatusSource::Sacct);
            if status.state.is_terminal() {
                (status.exit_code, status.signal) = parse_exit_code(fields.next());
            } else {
                fields.next();
            }
            status.reason = fields
                .next()
                .filter(|r| !r.is_empty() && *r != "None")
                .map(String::from);
            Some(status)
        })
        .collect()
}

/// True when sacct failed because the cluster keeps no accounting database.
pub fn accounting_disabled(stderr: &str) -> bool {
    stderr.contains("accounting storage is disabled")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_from_every_vocabulary() {
        assert_eq!(JobState::parse("CANCELLED by 1000"), JobState::Cancelled);
        assert_eq!(JobState::parse("OOM"), JobState::OutOfMemory);
        assert_eq!(JobState::parse("COMPLETING+"), JobState::Completing);
        assert_eq!(JobState::parse("PD"), JobState::Pending);
        assert_eq!(JobState::parse("weird"), JobState::Unknown);
        assert!(JobState::Timeout.is_terminal() && !JobState::Running.is_terminal());
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

    #[test]
    fn squeue_lines() {
        let out = "12|RUNNING|None\n13_2|PENDING|Dependency\n14_[3-9]|PENDING|Priority\n\n";
        let statuses = parse_squeue(out);
        assert_eq!(statuses.len(), 3);
        assert_eq!(statuses[2].job_id.as_str(), "14");
        assert_eq!(statuses[0].state, JobState::Running);
        assert_eq!(statuses[0].reason, None);
        assert_eq!(statuses[1].job_id.as_str(), "13_2");
        assert_eq!(statuses[1].reason.as_deref(), Some("Dependency"));
    }

    /// Captured from Slurm 22.05 (`scontrol -o show job 7` after `exit 3`).
    #[test]
    fn scontrol_failed_job() {
        let line = "JobId=7 JobName=fail UserId=skuser(1001) GroupId=skuser(1001) MCS_label=N/A Priority=1 Nice=0 Account=(null) QOS=normal JobState=FAILED Reason=NonZeroExitCode Dependency=(null) Requeue=1 Restarts=0 BatchFlag=1 Reboot=0 ExitCode=3:0 RunTime=00:00:00 TimeLimit=00:10:00 Command=/home/skuser/slurm_jobs/fail dir/job.sbatch WorkDir=/home/skuser/slurm_jobs/fail dir StdOut=/tmp/x.out";
        let status = parse_scontrol_record(line).unwrap();
        assert_eq!(status.state, JobState::Failed);
        assert_eq!(status.exit_code, Some(3));
        assert_eq!(status.signal, None);
        assert_eq!(status.reason.as_deref(), Some("NonZeroExitCode"));
        let fields = scontrol_fields(line);
        assert_eq!(fields["WorkDir"], "/home/skuser/slurm_jobs/fail dir");
        assert_eq!(
            fields["Command"],
            "/home/skuser/slurm_jobs/fail dir/job.sbatch"
        );
    }

    #[test]
    fn scontrol_array_task_and_signal() {
        let line = "JobId=21 ArrayJobId=20 ArrayTaskId=1 JobName=a JobState=TIMEOUT Reason=TimeLimit ExitCode=0:15";
        let status = parse_scontrol_record(line).unwrap();
        assert_eq!(status.job_id.as_str(), "20_1");
        assert_eq!((status.exit_code, status.signal), (Some(0), Some(15)));
    }

    #[test]
    fn sacct_skips_steps() {
        let out = "7|FAILED|3:0|NonZeroExitCode\n7.batch|FAILED|3:0|\n8|RUNNING|0:0|None\n";
        let statuses = parse_sacct(out);
        assert_eq!(statuses.len(), 2);
        assert_eq!(statuses[0].exit_code, Some(3));
        assert_eq!(statuses[1].exit_code, None);
    }
}
