//! Jobs: the validated spec, the job directory's layout, and the local journal.

pub mod journal;
pub mod spec;

use std::time::{SystemTime, UNIX_EPOCH};

use crate::slurm::validate::JobName;

/// The rendered batch script, inside the job directory.
pub const SCRIPT_FILE: &str = "job.sbatch";
/// The job spec as JSON, for provenance.
pub const SPEC_FILE: &str = "job.json";

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
    let (days, rest) = ((secs / 86_400) as i64, secs % 86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
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
