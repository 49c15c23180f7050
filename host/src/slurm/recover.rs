//! Finding out what became of submissions whose reply never came back: first from their job
//! directories (the id sbatch wrote), then from Slurm itself (a job whose script is the one in that
//! directory). Each is one exec for every pending submission together.

use super::{SlurmError, parse_parsable};
use crate::exec::Exec;
use crate::types::job_dir::{
    JOB_ID_FILE, JOB_ID_PENDING_FILE, SBATCH_CLAIM_FILE, SBATCH_ERROR_FILE, SBATCH_STATUS_FILE,
    SCRIPT_FILE,
};
use crate::types::names::JobId;
use crate::types::shell::ShellCommand;

/// Arguments: the nonce, then per directory its path and whether it may be given up (`1`: old enough
/// that no submission can still be on its way to it). Prints per directory `missing`; every line of the
/// id file as `id`; `refused` with sbatch's status and its stderr as `err` lines; `pending` (sbatch
/// started, or was about to, and has not said how it went); `abandoned` (sbatch never started, and this
/// probe took the claim, so it never will); or `none` (nothing yet, too young to give up). Reads job
/// directories of older versions too (their sbatch output went to `.job_id.tmp` first).
const PROBE: &str = concat!(
    r#"n=$1; shift; i=0; set -C; while [ $# -gt 0 ]; do d=$1; c=$2; shift 2; "#,
    r#"if [ -L "$d" ] || [ ! -d "$d" ]; then printf '%s missing %s\n' "$n" "$i"; "#,
    r#"elif [ -s "$d/job_id" ]; then while IFS= read -r l || [ -n "$l" ]; do printf '%s id %s %s\n' "$n" "$i" "$l"; done < "$d/job_id"; "#,
    r#"elif [ -f "$d/.sbatch.status" ] && read -r r < "$d/.sbatch.status" && [ -n "$r" ] && [ "$r" != 0 ]; then printf '%s refused %s %s\n' "$n" "$i" "$r"; "#,
    r#"[ -f "$d/.sbatch.err" ] && while IFS= read -r l || [ -n "$l" ]; do printf '%s err %s %s\n' "$n" "$i" "$l"; done < "$d/.sbatch.err"; "#,
    r#"elif [ -e "$d/.sbatch.claim" ] || [ -e "$d/job_id" ] || [ -e "$d/.job_id.tmp" ]; then printf '%s pending %s\n' "$n" "$i"; "#,
    r#"elif [ "$c" = 1 ] && : 2>/dev/null >"$d/.sbatch.claim"; then printf '%s abandoned %s\n' "$n" "$i"; "#,
    r#"elif [ "$c" = 1 ]; then printf '%s pending %s\n' "$n" "$i"; "#,
    r#"else printf '%s none %s\n' "$n" "$i"; fi; i=$((i+1)); done"#,
);

// The probe spells the job directory's file names out; they must be the ones the host writes.
const _: () = {
    assert!(matches!(JOB_ID_FILE.as_bytes(), b"job_id"));
    assert!(matches!(JOB_ID_PENDING_FILE.as_bytes(), b".job_id.tmp"));
    assert!(matches!(SBATCH_STATUS_FILE.as_bytes(), b".sbatch.status"));
    assert!(matches!(SBATCH_ERROR_FILE.as_bytes(), b".sbatch.err"));
    assert!(matches!(SBATCH_CLAIM_FILE.as_bytes(), b".sbatch.claim"));
};

/// What a job directory says about its submission.
#[derive(Debug, PartialEq, Eq)]
pub enum DirState {
    /// sbatch wrote this id.
    Submitted(JobId),
    /// sbatch ended with a failure status, and said this.
    Refused { status: String, message: String },
    /// The directory is gone.
    Missing,
    /// sbatch started (or was about to) and has not said how it went.
    Pending,
    /// sbatch never started, and now never will: the probe took its claim.
    Abandoned,
    /// Nothing yet, and too young to give up on.
    NotYet,
    /// The probe did not answer for it.
    Unknown,
}

/// The state of each of `dirs` (with whether it may be given up), in one exec.
pub async fn probe_dirs(
    exec: &impl Exec,
    nonce: &str,
    dirs: &[(String, bool)],
) -> Result<Vec<DirState>, SlurmError> {
    let mut command = ShellCommand::sh("look for job ids", PROBE).arg(nonce);
    for (dir, may_give_up) in dirs {
        command = command.arg(dir).arg(if *may_give_up { "1" } else { "0" });
    }
    let output = exec.exec(&command).await?;
    #[derive(Default)]
    struct Lines {
        id: Vec<String>,
        err: Vec<String>,
        tag: Option<String>,
        status: String,
    }
    let mut found: Vec<Lines> = (0..dirs.len()).map(|_| Lines::default()).collect();
    let text = output.stdout_text();
    for line in super::submit::complete_lines(&text) {
        let Some(rest) = line.strip_prefix(nonce).and_then(|r| r.strip_prefix(' ')) else {
            continue;
        };
        let mut parts = rest.splitn(3, ' ');
        let (Some(tag), Some(index)) = (parts.next(), parts.next()) else {
            continue;
        };
        let Some(entry) = index.parse::<usize>().ok().and_then(|i| found.get_mut(i)) else {
            continue;
        };
        let value = parts.next().unwrap_or("").to_string();
        match tag {
            "id" => entry.id.push(value),
            "err" => entry.err.push(value),
            "refused" => {
                entry.status = value;
                entry.tag = Some(tag.to_string());
            }
            _ => entry.tag = Some(tag.to_string()),
        }
    }
    Ok(found
        .into_iter()
        .map(|lines| {
            if !lines.id.is_empty() {
                return parse_parsable(&lines.id.join("\n"))
                    .map(DirState::Submitted)
                    .unwrap_or(DirState::Pending);
            }
            match lines.tag.as_deref() {
                Some("missing") => DirState::Missing,
                Some("pending") => DirState::Pending,
                Some("abandoned") => DirState::Abandoned,
                Some("none") => DirState::NotYet,
                Some("refused") => DirState::Refused {
                    status: lines.status,
                    message: lines.err.join("\n"),
                },
                _ => DirState::Unknown,
            }
        })
        .collect())
}

/// A submission to look for in Slurm: its job name and directory.
pub struct Wanted<'a> {
    pub name: &'a str,
    pub dir: &'a str,
}

/// Ask Slurm, in one exec, for jobs with these names whose batch script is in a directory of the same
/// name (`squeue`'s Command) or which ran in one (accounting's WorkDir). The directory's own name is
/// compared, not its whole path: Slurm records the physical path, which a symlinked home changes.
/// Returns the id found for each, if any, and whether accounting was asked too (if not, a job that
/// ended long ago cannot be told from one that never ran). If squeue itself fails nothing is decided.
pub async fn find_in_slurm(
    exec: &impl Exec,
    wanted: &[Wanted<'_>],
) -> Result<(Vec<Option<JobId>>, bool), SlurmError> {
    let mut names: Vec<&str> = wanted.iter().map(|w| w.name).collect();
    names.sort_unstable();
    names.dedup();
    let nonce = format!("slurmkit-{:016x}", rand::random::<u64>());
    let command = ShellCommand::sh("ask Slurm for jobs by name", FIND)
        .arg(&nonce)
        .arg(names.join(","));
    let output = exec.exec(&command).await?;
    let text = output.stdout_text();
    let (mut live, mut accounted) = (Vec::new(), Vec::new());
    let (mut squeue_status, mut sacct_status) = (None, None);
    for line in super::submit::complete_lines(&text) {
        if let Some(rest) = line.strip_prefix(&nonce).and_then(|r| r.strip_prefix(' ')) {
            match rest.split_once(' ') {
                Some(("squeue", status)) => squeue_status = Some(status.trim() == "0"),
                Some(("sacct", status)) => sacct_status = Some(status.trim() == "0"),
                _ => {}
            }
            continue;
        }
        let Some((id, path)) = line.split_once('|') else {
            continue;
        };
        let id = id.split_once("_[").map_or(id, |(base, _)| base);
        let Ok(id) = JobId::parse(id.trim()) else {
            continue;
        };
        let entry = (
            JobId::parse(id.base()).unwrap_or(id),
            path.trim().to_string(),
        );
        if squeue_status.is_none() {
            live.push(entry);
        } else if sacct_status.is_none() {
            accounted.push(entry);
        }
    }
    if squeue_status != Some(true) {
        return Err(SlurmError::QueryFailed {
            message: output.stderr_text().trim().to_string(),
        });
    }
    let found = wanted
        .iter()
        .map(|w| {
            let dir_name = w.dir.rsplit('/').next().unwrap_or(w.dir);
            let script = format!("/{dir_name}/{SCRIPT_FILE}");
            let workdir = format!("/{dir_name}");
            live.iter()
                .find(|(_, command)| command.ends_with(&script))
                .or_else(|| accounted.iter().find(|(_, dir)| dir.ends_with(&workdir)))
                .map(|(id, _)| id.clone())
        })
        .collect();
    Ok((found, sacct_status == Some(true)))
}

/// Arguments: a nonce and the job names, comma-separated. squeue's lines, then a marker with its
/// status; accounting's (sacct, or the job completion log without an accounting database), then
/// another.
const FIND: &str = concat!(
    r#"n=$1; names=$2; squeue --noheader --states=all --me --name="$names" '--Format=JobArrayID:|,Command:'; printf '%s squeue %s\n' "$n" "$?"; "#,
    r#"sacct --noheader --parsable2 --starttime=now-7days --name="$names" --format=JobID,WorkDir --allocations 2>/dev/null "#,
    r#"|| sacct --noheader --parsable2 --starttime=now-7days --name="$names" --format=JobID,WorkDir --completion 2>/dev/null; "#,
    r#"printf '%s sacct %s\n' "$n" "$?""#,
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::{CommandError, CommandOutput, Exit};

    /// Runs command lines with this machine's `sh`.
    struct Sh;

    impl Exec for Sh {
        async fn run(
            &self,
            command: &ShellCommand,
            _input: &[u8],
        ) -> Result<CommandOutput, CommandError> {
            let out = std::process::Command::new("/bin/sh")
                .arg("-c")
                .arg(command.as_str())
                .output()
                .unwrap();
            Ok(CommandOutput {
                exit: Exit::Code(out.status.code().unwrap_or(-1)),
                stdout: out.stdout,
                stderr: out.stderr,
            })
        }
    }

    #[tokio::test]
    async fn the_probe_reads_every_state_a_job_directory_can_be_in() {
        let base = tempfile::tempdir().unwrap();
        let dir = |name: &str, files: &[(&str, &str)]| {
            let path = base.path().join(name);
            std::fs::create_dir(&path).unwrap();
            for (file, text) in files {
                std::fs::write(path.join(file), text).unwrap();
            }
            path.display().to_string()
        };
        std::os::unix::fs::symlink(base.path(), base.path().join("link")).unwrap();
        let dirs = vec![
            (
                dir("submitted", &[("job_id", "wrapper says hi\n12;c")]),
                true,
            ),
            (base.path().join("gone").display().to_string(), true),
            (
                dir(
                    "refused",
                    &[
                        ("job_id", ""),
                        (".sbatch.status", "1\n"),
                        (".sbatch.err", "sbatch: error: no\n"),
                    ],
                ),
                true,
            ),
            (
                dir(
                    "queued-then-disk-full",
                    &[("job_id", ""), (".sbatch.status", "\n")],
                ),
                true,
            ),
            (
                dir("running", &[(".sbatch.claim", ""), ("job_id", "")]),
                true,
            ),
            (dir("older-version", &[(".job_id.tmp", "")]), true),
            (dir("never-ran", &[("job.sbatch", "#!/bin/sh\n")]), true),
            (dir("too-young", &[("job.sbatch", "#!/bin/sh\n")]), false),
            (base.path().join("link").display().to_string(), true),
        ];
        let states = probe_dirs(&Sh, "N", &dirs).await.unwrap();
        assert_eq!(
            states,
            vec![
                DirState::Submitted(JobId::parse("12").unwrap()),
                DirState::Missing,
                DirState::Refused {
                    status: "1".into(),
                    message: "sbatch: error: no".into()
                },
                DirState::Pending,
                DirState::Pending,
                DirState::Pending,
                DirState::Abandoned,
                DirState::NotYet,
                DirState::Missing,
            ]
        );
        assert!(
            base.path().join("never-ran/.sbatch.claim").exists(),
            "giving up takes the claim, so sbatch can no longer start there"
        );
        assert!(!base.path().join("too-young/.sbatch.claim").exists());
        // A second probe sees the claim: the directory is not given up twice.
        let again = probe_dirs(&Sh, "N", &dirs[6..7]).await.unwrap();
        assert_eq!(again, vec![DirState::Pending]);
    }
}
