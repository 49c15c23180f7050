//! The job directory's layout: its name, and the files slurmkit keeps in it.

use std::time::{SystemTime, UNIX_EPOCH};

use super::names::JobName;

/// The rendered batch script, inside the job directory.
pub const SCRIPT_FILE: &str = "job.sbatch";
/// The job spec as JSON, for provenance.
pub const SPEC_FILE: &str = "job.json";
/// What `sbatch --parsable` printed: the job id. The id is read from there, never from the command's
/// output: a login shell may add to that output, and the reply can be lost while the job is queued.
pub const JOB_ID_FILE: &str = "job_id";
/// sbatch's exit status, written once it has finished: with an empty [`JOB_ID_FILE`] it tells a refused
/// submission from an interrupted one.
pub const SBATCH_STATUS_FILE: &str = ".sbatch.status";
/// Created (exclusively) just before sbatch runs; a recovery that gives up on a directory whose sbatch
/// never started creates it instead, so sbatch can no longer start there.
pub const SBATCH_CLAIM_FILE: &str = ".sbatch.claim";
/// What sbatch printed on stderr.
pub const SBATCH_ERROR_FILE: &str = ".sbatch.err";
/// Where sbatch's output went while it ran, in job directories written by slurmkit before 0.2.
pub const JOB_ID_PENDING_FILE: &str = ".job_id.tmp";

/// `<name>-<UTC timestamp>-<6 hex>`: unique, sortable, readable in `ls`.
pub fn job_dir_name(name: &JobName, now: SystemTime) -> String {
    let secs = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!(
        "{name}-{}-{:06x}",
        utc_timestamp(secs),
        rand::random::<u32>() & 0xff_ffff
    )
}

/// `20261123T091500Z` for a Unix time.
pub fn utc_timestamp(secs: u64) -> String {
    chrono::DateTime::from_timestamp(i64::try_from(secs).unwrap_or(i64::MAX), 0)
        .unwrap_or_default()
        .format("%Y%m%dT%H%M%SZ")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_utc_civil_dates() {
        assert_eq!(utc_timestamp(0), "19700101T000000Z");
        assert_eq!(utc_timestamp(1_795_425_300), "20261123T091500Z");
        assert_eq!(utc_timestamp(951_782_400), "20000229T000000Z");
    }

    #[test]
    fn job_dir_names_start_with_the_job_name() {
        let name = JobName::parse("hello").unwrap();
        let dir = job_dir_name(&name, UNIX_EPOCH);
        assert!(dir.starts_with("hello-19700101T000000Z-"), "{dir}");
        assert_eq!(dir.len(), "hello-19700101T000000Z-".len() + 6);
    }
}
