//! Parsers that read job states out of `squeue`, `scontrol` and `sacct`.
//!
//! The parsers are pure functions over captured output so they can be tested on text from real clusters.
//! They are keyed by field name, never by column position, and tolerate fields they do not know
//! (Slurm 23.02+ changed some output; 22.05 is what the test cluster runs).

use std::collections::BTreeMap;

use crate::types::names::JobId;
use crate::types::status::{JobState, JobStatus, StatusSource};

/// The `--Format` given to squeue; [`parse_squeue`] reads exactly these fields, `|`-separated. A
/// field without a width is printed in full; `exit_code` is the raw wait status (`768` is exit 3).
pub const SQUEUE_FIELDS: &str = "JobArrayID:|,State:|,exit_code:|,Reason:";

/// Parse `squeue --noheader -O` output of [`SQUEUE_FIELDS`].
pub fn parse_squeue(output: &str) -> Vec<JobStatus> {
    output
        .lines()
        .filter_map(|line| {
            let mut fields = line.trim().splitn(4, '|');
            let raw_id = fields.next()?.trim();
            // Array tasks that have not started yet are listed together as `123_[4-9%2]`.
            let raw_id = raw_id.split_once("_[").map_or(raw_id, |(base, _)| base);
            let id = JobId::parse(raw_id).ok()?;
            let mut status =
                JobStatus::new(id, JobState::parse(fields.next()?), StatusSource::Squeue);
            let wait_status = fields.next()?.trim().parse::<u32>().ok();
            if status.state.is_terminal()
                && let Some(raw) = wait_status
            {
                status.exit_code = Some(((raw >> 8) & 0xff) as i32);
                status.signal = Some(raw & 0x7f).filter(|s| *s != 0);
            }
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
pub(super) fn scontrol_fields(line: &str) -> BTreeMap<&str, &str> {
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
    fn squeue_lines() {
        // Captured from Slurm 22.05: a cancelled job, an array task, a failed job, pending tasks.
        let out = "3|CANCELLED|15|None\n2_1|COMPLETED|0|None\n1|FAILED|768|NonZeroExitCode\n6_[1-5%1]|PENDING|0|JobArrayTaskLimit\n7|RUNNING|0|None\n\n";
        let statuses = parse_squeue(out);
        assert_eq!(statuses.len(), 5);
        assert_eq!(
            (statuses[0].state, statuses[0].exit_code, statuses[0].signal),
            (JobState::Cancelled, Some(0), Some(15))
        );
        assert_eq!(statuses[0].reason, None);
        assert_eq!(statuses[1].job_id.as_str(), "2_1");
        assert_eq!((statuses[2].exit_code, statuses[2].signal), (Some(3), None));
        assert_eq!(statuses[2].reason.as_deref(), Some("NonZeroExitCode"));
        assert_eq!(statuses[3].job_id.as_str(), "6");
        assert_eq!(statuses[3].state, JobState::Pending);
        assert_eq!(
            statuses[4].exit_code, None,
            "a running job has no exit code yet"
        );
    }

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
