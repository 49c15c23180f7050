//! Slurm's client commands (sbatch, squeue, scontrol, sacct, scancel): building their command lines,
//! running them through an [`Exec`], and reading their output.

pub mod quote;
pub mod state;
pub mod validate;

use crate::exec::{CommandError, Exec};
use quote::ShellCommand;
use state::{JobState, JobStatus};
use validate::JobId;

/// File in the job directory that holds the id sbatch printed. The id is read from there, never from
/// the command's output: a login shell may add to that output, and the reply can be lost while the job
/// is queued. Written as [`JOB_ID_PENDING_FILE`] and renamed once sbatch has finished.
pub const JOB_ID_FILE: &str = "job_id";
/// Where sbatch's output goes while it runs.
pub const JOB_ID_PENDING_FILE: &str = ".job_id.tmp";

#[derive(Debug, thiserror::Error)]
pub enum SlurmError {
    #[error(transparent)]
    Command(#[from] CommandError),
    #[error("sbatch printed {output:?} instead of a job id")]
    UnexpectedSbatchOutput { output: String },
}

/// The command that submits `script` (a file name inside `job_dir`) with `sbatch --parsable`, run inside
/// `job_dir`, leaving the id in [`JOB_ID_FILE`].
pub fn sbatch_command(job_dir: &str, script: &str) -> ShellCommand {
    ShellCommand::new("sbatch")
        .arg("--parsable")
        .arg(script)
        .stdout_to(JOB_ID_PENDING_FILE)
        .and_then(
            ShellCommand::new("mv")
                .arg(JOB_ID_PENDING_FILE)
                .arg(JOB_ID_FILE),
        )
        .in_dir(job_dir)
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

/// The current status of each job in `ids`, with as few round trips as possible: one `squeue` for all,
/// one exec of `scontrol show job` for those that finished or left the queue (for exit codes), then
/// `sacct` for anything still unknown. Works on clusters without accounting. An array job id
/// (`123`) yields one status per task.
pub async fn status(exec: &impl Exec, ids: &[JobId]) -> Result<Vec<JobStatus>, SlurmError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let id_list = ids.iter().map(JobId::as_str).collect::<Vec<_>>().join(",");
    let squeue = ShellCommand::new("squeue")
        .arg("--noheader")
        .arg("--states=all")
        .arg(format!("--jobs={id_list}"))
        .arg(format!("--format={}", state::SQUEUE_FORMAT));
    let output = exec.exec(&squeue).await?;
    let mut found = if output.success() {
        state::parse_squeue(&output.stdout_text())
    } else if output.stderr_text().contains("Invalid job id") {
        // Every id has left the controller: not an error, the fallbacks below find them.
        Vec::new()
    } else {
        return Err(output.check(&squeue).unwrap_err().into());
    };

    // Terminal jobs need their exit code, which squeue does not print; gone jobs need finding.
    let needs_detail: Vec<&JobId> = ids
        .iter()
        .filter(|id| {
            let matches: Vec<&JobStatus> =
                found.iter().filter(|s| same_job(id, &s.job_id)).collect();
            matches.is_empty() || matches.iter().any(|s| s.state.is_terminal())
        })
        .collect();
    if !needs_detail.is_empty() {
        let detailed = scontrol(exec, &needs_detail).await?;
        merge(&mut found, detailed);
    }

    let missing: Vec<&JobId> = ids
        .iter()
        .filter(|id| !found.iter().any(|s| same_job(id, &s.job_id)))
        .collect();
    if !missing.is_empty() {
        let accounted = sacct(exec, &missing).await?;
        merge(&mut found, accounted);
    }
    for id in ids {
        if !found.iter().any(|s| same_job(id, &s.job_id)) {
            found.push(JobStatus {
                job_id: id.clone(),
                state: JobState::Unknown,
                exit_code: None,
                signal: None,
                reason: Some("not known to squeue, scontrol or sacct (purged, or never submitted to this cluster)".into()),
                source: state::StatusSource::None,
            });
        }
    }
    found.retain(|s| ids.iter().any(|id| same_job(id, &s.job_id)));
    found.sort_by_key(|s| order_key(&s.job_id));
    Ok(found)
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
fn same_job(asked: &JobId, reported: &JobId) -> bool {
    asked == reported || (!asked.as_str().contains('_') && reported.base() == asked.as_str())
}

/// Replace statuses for the same job id with the more detailed ones.
fn merge(found: &mut Vec<JobStatus>, detailed: Vec<JobStatus>) {
    for status in detailed {
        found.retain(|s| s.job_id != status.job_id);
        found.push(status);
    }
}

async fn scontrol(exec: &impl Exec, ids: &[&JobId]) -> Result<Vec<JobStatus>, SlurmError> {
    let show = |id: &JobId| {
        ShellCommand::new("scontrol")
            .arg("-o")
            .arg("show")
            .arg("job")
            .arg(id.as_str())
    };
    let command = ids[1..]
        .iter()
        .fold(show(ids[0]), |cmd, id| cmd.then(show(id)));
    // Exit status is that of the last lookup and "Invalid job id" is expected for purged jobs:
    // what matters is the records that came back.
    let output = exec.exec(&command).await?;
    Ok(output
        .stdout_text()
        .lines()
        .filter_map(state::parse_scontrol_record)
        .collect())
}

async fn sacct(exec: &impl Exec, ids: &[&JobId]) -> Result<Vec<JobStatus>, SlurmError> {
    let id_list = ids
        .iter()
        .map(|id| id.as_str())
        .collect::<Vec<_>>()
        .join(",");
    let query = |completion_log: bool| {
        let command = ShellCommand::new("sacct")
            .arg("--noheader")
            .arg("--parsable2")
            .arg(format!("--jobs={id_list}"))
            .arg(format!("--format={}", state::SACCT_FORMAT));
        if completion_log {
            command.arg("--completion")
        } else {
            command.arg("--allocations")
        }
    };
    let command = query(false);
    let output = exec.exec(&command).await?;
    if output.success() {
        return Ok(state::parse_sacct(&output.stdout_text()));
    }
    if !state::accounting_disabled(&output.stderr_text()) {
        tracing::warn!("{}", output.check(&command).unwrap_err());
        return Ok(Vec::new());
    }
    // No accounting database: the job completion log (JobCompType=jobcomp/filetxt) may still know.
    tracing::debug!("accounting storage is disabled; asking the job completion log");
    let command = query(true);
    let output = exec.exec(&command).await?;
    if !output.success() {
        tracing::debug!("{}", output.check(&command).unwrap_err());
        return Ok(Vec::new());
    }
    // `status` keeps only what answers the ids asked about (array tasks included).
    Ok(state::parse_sacct(&output.stdout_text()))
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
