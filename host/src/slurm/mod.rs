//! Slurm's client commands (sbatch, squeue, sacct, scancel): building their command lines, running
//! them through an [`Exec`], and reading their output.

pub mod allocation;
mod archive;
pub mod parse;
pub mod recover;
pub mod store;
pub mod submit;
pub mod views;

use crate::error::{Diagnose, exit};
use crate::exec::{CommandError, Exec};
use crate::types::names::JobId;
use crate::types::shell::ShellCommand;
use crate::types::status::{JobState, JobStatus, StatusSource};

#[derive(Debug, thiserror::Error)]
pub enum SlurmError {
    #[error(transparent)]
    Command(#[from] CommandError),
    #[error("sbatch printed {output:?} instead of a job id")]
    UnexpectedSbatchOutput { output: String },
    #[error("the submission script's reply could not be read: {reason}")]
    UnreadableReply { reason: String },
    #[error("sbatch ended with status {status} without saying the job was refused: {message}")]
    UnclearRefusal { status: String, message: String },
    #[error("squeue failed, so Slurm could not be asked: {message}")]
    QueryFailed { message: String },
}

impl Diagnose for SlurmError {
    fn exit_code(&self) -> u8 {
        exit::CLUSTER
    }

    fn diagnosed_source(&self) -> Option<&dyn Diagnose> {
        match self {
            SlurmError::Command(e) => Some(e),
            _ => None,
        }
    }
}

/// Did sbatch, ending with `status` and printing `message`, certainly not queue the job? A status above
/// 127 means it was killed, and some failures (a timeout, a lost reply from a busy controller) can
/// come after the controller queued the job: those are not certain refusals.
pub fn surely_refused(status: &str, message: &str) -> bool {
    const MAYBE_QUEUED: [&str; 6] = [
        "timed out",
        "Message receive failure",
        "Zero Bytes were transmitted",
        "Unable to contact",
        "temporarily unavailable",
        "Communication connection failure",
    ];
    matches!(status.trim().parse::<u8>(), Ok(1..=127))
        && !MAYBE_QUEUED.iter().any(|text| message.contains(text))
}

/// `sbatch --parsable` prints `<id>` or `<id>;<cluster>`.
pub fn parse_parsable(stdout: &str) -> Result<JobId, SlurmError> {
    // The id is printed last: a site's sbatch wrapper may print before it.
    let last = stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    let first = last.trim().split(';').next().unwrap_or("");
    JobId::parse(first).map_err(|_| SlurmError::UnexpectedSbatchOutput {
        output: stdout.to_string(),
    })
}

/// Above this many ids, squeue is asked for all of the user's jobs rather than a list that long (the
/// command line has limits, and Slurm loads every job for a list of more than one id anyway).
const MAX_LISTED_IDS: usize = 1000;

/// The current status of each job in `ids`, in a constant number of queries whatever their number: one
/// `squeue` for all (one controller RPC; it also reports exit codes), and for the ids it no longer knows,
/// except those in `settled` (already known to have ended), one exec that asks `sacct`, or the job
/// completion log where there is no accounting database. An array job id (`123`) yields one status
/// per task; an id nothing knows yields `UNKNOWN`.
pub async fn status(
    exec: &impl Exec,
    ids: &[JobId],
    settled: &[JobId],
) -> Result<Vec<JobStatus>, SlurmError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let squeue = ShellCommand::new("squeue")
        .arg("--noheader")
        .arg("--states=all")
        .arg(format!("--Format={}", parse::SQUEUE_FIELDS));
    let squeue = if ids.len() > MAX_LISTED_IDS {
        squeue.arg("--me")
    } else {
        squeue.arg(format!("--jobs={}", id_list(ids.iter())))
    };
    let output = exec.exec(&squeue).await?;
    let mut found = if output.success() {
        parse::parse_squeue(&output.stdout_text())
    } else if output.stderr_text().contains("Invalid job id") {
        // Every id has left the controller: not an error, sacct finds them.
        Vec::new()
    } else {
        return Err(output.check(&squeue).unwrap_err().into());
    };

    let missing: Vec<&JobId> = ids
        .iter()
        .filter(|id| !found.iter().any(|s| same_job(id, &s.job_id)) && !settled.contains(id))
        .collect();
    if !missing.is_empty() {
        found.extend(accounted(exec, &missing).await?);
    }
    for id in ids {
        if !found.iter().any(|s| same_job(id, &s.job_id)) {
            let mut unknown = JobStatus::new(id.clone(), JobState::Unknown, StatusSource::None);
            unknown.reason = Some(
                "not known to squeue or sacct (purged, or never submitted to this cluster)".into(),
            );
            found.push(unknown);
        }
    }
    found.retain(|s| ids.iter().any(|id| same_job(id, &s.job_id)));
    found.sort_by_key(|s| order_key(&s.job_id));
    found.dedup_by(|a, b| a.job_id == b.job_id);
    Ok(found)
}

fn id_list<'a>(ids: impl Iterator<Item = &'a JobId>) -> String {
    ids.map(JobId::as_str).collect::<Vec<_>>().join(",")
}

/// Numeric order: `9` before `10`, array tasks in index order after their array.
fn order_key(id: &JobId) -> (u64, Option<u64>) {
    let mut parts = id
        .as_str()
        .split('_')
        .map(|p| p.parse::<u64>().unwrap_or(u64::MAX));
    (parts.next().unwrap_or(u64::MAX), parts.next())
}

/// Does `reported` answer a question about `asked`? `123` covers its array tasks `123_N`.
pub fn same_job(asked: &JobId, reported: &JobId) -> bool {
    asked == reported || (!asked.as_str().contains('_') && reported.base() == asked.as_str())
}

/// What accounting knows of jobs the controller forgot: one exec, `sacct` and, when the cluster keeps
/// no accounting database, the job completion log (`--completion`, read by sacct itself).
async fn accounted(exec: &impl Exec, ids: &[&JobId]) -> Result<Vec<JobStatus>, SlurmError> {
    let query = |source: &'static str| {
        ShellCommand::new("sacct")
            .arg("--noheader")
            .arg("--parsable2")
            .arg(format!("--jobs={}", id_list(ids.iter().copied())))
            .arg(format!("--format={}", parse::SACCT_FORMAT))
            .arg(source)
    };
    let command = query("--allocations").or_else(query("--completion"));
    let output = exec.exec(&command).await?;
    if !output.success() {
        // Neither knows: a missing accounting database is normal, so only say so in the log.
        tracing::debug!("{}", output.clone().check(&command).unwrap_err());
    }
    // `status` keeps only what answers the ids asked about (array tasks included).
    Ok(parse::parse_sacct(&output.stdout_text()))
}

/// The cluster's MaxArraySize: an array's task indices must lie below it (`scontrol show config`).
/// `None` when scontrol does not say.
pub async fn max_array_size(exec: &impl Exec) -> Result<Option<u64>, SlurmError> {
    let command = ShellCommand::new("scontrol").args(["show", "config"]);
    let output = exec.exec(&command).await?.check(&command)?;
    Ok(parse_max_array_size(&output.stdout_text()))
}

fn parse_max_array_size(config: &str) -> Option<u64> {
    config.lines().find_map(|line| {
        let (key, value) = line.split_once('=')?;
        (key.trim() == "MaxArraySize")
            .then(|| value.trim().parse().ok())
            .flatten()
    })
}

/// Cancel jobs with `scancel`.
pub async fn scancel(exec: &impl Exec, ids: &[JobId]) -> Result<(), SlurmError> {
    let command = ShellCommand::new("scancel").args(ids.iter().map(JobId::as_str));
    exec.exec(&command).await?.check(&command)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsable_output() {
        assert_eq!(parse_parsable("42\n").unwrap().as_str(), "42");
        assert_eq!(parse_parsable("42;cluster\n").unwrap().as_str(), "42");
        assert!(parse_parsable("Submitted batch job 42").is_err());
        assert_eq!(
            parse_parsable("site wrapper: using account x\n42\n")
                .unwrap()
                .as_str(),
            "42"
        );
        assert!(parse_parsable("").is_err());
    }

    #[test]
    fn only_a_plain_failure_status_is_a_sure_refusal() {
        assert!(surely_refused(
            "1",
            "sbatch: error: invalid partition specified: nosuch"
        ));
        assert!(!surely_refused("0", ""), "a success is no refusal");
        assert!(!surely_refused("", ""), "no status: sbatch did not finish");
        assert!(!surely_refused("143", ""), "killed");
        assert!(!surely_refused(
            "1",
            "sbatch: error: Batch job submission failed: Socket timed out on send/recv operation"
        ));
    }

    #[test]
    fn max_array_size_is_read_from_the_configuration() {
        let config = "Configuration data as of 2026-12-01T10:00:00\nMaxArraySize            = 1001\nMaxJobCount             = 10000\n";
        assert_eq!(parse_max_array_size(config), Some(1001));
        assert_eq!(parse_max_array_size("MaxJobCount = 5\n"), None);
        assert_eq!(parse_max_array_size("MaxArraySize = (null)\n"), None);
    }

    #[test]
    fn array_ids_cover_their_tasks() {
        let base = JobId::parse("12").unwrap();
        assert!(same_job(&base, &JobId::parse("12_3").unwrap()));
        assert!(!same_job(
            &JobId::parse("12_1").unwrap(),
            &JobId::parse("12_3").unwrap()
        ));
        assert!(!same_job(&base, &JobId::parse("123").unwrap()));
    }
}
