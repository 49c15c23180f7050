//! Finding out what became of submissions whose reply never came back: first from their job
//! directories (the id sbatch wrote), then from Slurm itself (a job whose script is the one in that
//! directory). Each is one exec for every pending submission together.

use super::{SlurmError, parse_parsable};
use crate::exec::Exec;
use crate::types::job_dir::{
    JOB_ID_FILE, JOB_ID_PENDING_FILE, SBATCH_ERROR_FILE, SBATCH_STATUS_FILE, SCRIPT_FILE,
};
use crate::types::names::JobId;
use crate::types::shell::ShellCommand;

/// Arguments: the nonce, then the directories. Prints per directory `missing`, `none` (no id file),
/// `pending` (sbatch started and has not said how it went), `refused` with sbatch's status and its
/// stderr as `err` lines, or every line of the id file as `id`. Reads job directories of older
/// versions too (their sbatch output went to `.job_id.tmp` first).
const PROBE: &str = concat!(
    r#"n=$1; shift; i=0; for d in "$@"; do "#,
    r#"if [ -L "$d" ] || [ ! -d "$d" ]; then printf '%s missing %s\n' "$n" "$i"; "#,
    r#"elif [ -s "$d/job_id" ]; then while IFS= read -r l; do printf '%s id %s %s\n' "$n" "$i" "$l"; done < "$d/job_id"; "#,
    r#"elif [ -f "$d/.sbatch.status" ]; then read -r r < "$d/.sbatch.status"; printf '%s refused %s %s\n' "$n" "$i" "$r"; "#,
    r#"[ -f "$d/.sbatch.err" ] && while IFS= read -r l; do printf '%s err %s %s\n' "$n" "$i" "$l"; done < "$d/.sbatch.err"; "#,
    r#"elif [ -f "$d/job_id" ] || [ -f "$d/.job_id.tmp" ]; then printf '%s pending %s\n' "$n" "$i"; "#,
    r#"else printf '%s none %s\n' "$n" "$i"; fi; i=$((i+1)); done"#,
);

// The probe spells the job directory's file names out; they must be the ones the host writes.
const _: () = {
    assert!(matches!(JOB_ID_FILE.as_bytes(), b"job_id"));
    assert!(matches!(JOB_ID_PENDING_FILE.as_bytes(), b".job_id.tmp"));
    assert!(matches!(SBATCH_STATUS_FILE.as_bytes(), b".sbatch.status"));
    assert!(matches!(SBATCH_ERROR_FILE.as_bytes(), b".sbatch.err"));
};

/// What a job directory says about its submission.
#[derive(Debug, PartialEq, Eq)]
pub enum DirState {
    /// sbatch wrote this id.
    Submitted(JobId),
    /// sbatch refused it, with this exit status and message.
    Refused { status: String, message: String },
    /// The directory is gone.
    Missing,
    /// No id file: sbatch never ran, or ran and lost its output.
    NoId,
    /// sbatch's output file is there but holds no id: it was interrupted, or is running now.
    Pending,
    /// The probe did not answer for it.
    Unknown,
}

/// The state of each of `dirs`, in one exec.
pub async fn probe_dirs(
    exec: &impl Exec,
    nonce: &str,
    dirs: &[String],
) -> Result<Vec<DirState>, SlurmError> {
    let command = ShellCommand::sh("look for job ids", PROBE)
        .arg(nonce)
        .args(dirs);
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
    for line in text.lines() {
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
                Some("none") => DirState::NoId,
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

/// Ask Slurm, in one exec, for jobs with these names whose batch script is the one in their
/// directory (`squeue`'s Command) or which ran in it (accounting's WorkDir). Returns the id found
/// for each, if any.
pub async fn find_in_slurm(
    exec: &impl Exec,
    wanted: &[Wanted<'_>],
) -> Result<Vec<Option<JobId>>, SlurmError> {
    let mut names: Vec<&str> = wanted.iter().map(|w| w.name).collect();
    names.sort_unstable();
    names.dedup();
    let names = names.join(",");
    let squeue = ShellCommand::new("squeue")
        .arg("--noheader")
        .arg("--states=all")
        .arg("--me")
        .arg(format!("--name={names}"))
        .arg("--Format=JobArrayID:|,Command:");
    let sacct = |source: &'static str| {
        ShellCommand::new("sacct")
            .arg("--noheader")
            .arg("--parsable2")
            .arg("--starttime=now-7days")
            .arg(format!("--name={names}"))
            .arg("--format=JobID,WorkDir")
            .arg(source)
    };
    // squeue's lines carry the script path; accounting's (after the marker) the working directory.
    let command = squeue
        .then(ShellCommand::new("echo").arg("--"))
        .then(sacct("--allocations").or_else(sacct("--completion")));
    let output = exec.exec(&command).await?;
    let text = format!("\n{}", output.stdout_text());
    let (live, accounted) = text.split_once("\n--\n").unwrap_or((text.as_str(), ""));
    let parse = |block: &str| -> Vec<(JobId, String)> {
        block
            .lines()
            .filter_map(|line| {
                let (id, path) = line.split_once('|')?;
                let id = id.split_once("_[").map_or(id, |(base, _)| base);
                Some((JobId::parse(id.trim()).ok()?, path.trim().to_string()))
            })
            .collect()
    };
    let (live, accounted) = (parse(live), parse(accounted));
    Ok(wanted
        .iter()
        .map(|w| {
            let script = format!("{}/{SCRIPT_FILE}", w.dir);
            live.iter()
                .find(|(_, command)| *command == script)
                .or_else(|| accounted.iter().find(|(_, workdir)| workdir == w.dir))
                .map(|(id, _)| JobId::parse(id.base()).unwrap_or_else(|_| id.clone()))
        })
        .collect())
}

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
        let dirs = vec![
            dir("submitted", &[("job_id", "wrapper says hi\n12;c\n")]),
            base.path().join("gone").display().to_string(),
            dir(
                "refused",
                &[
                    ("job_id", ""),
                    (".sbatch.status", "1\n"),
                    (".sbatch.err", "sbatch: error: no\n"),
                ],
            ),
            dir("running", &[("job_id", "")]),
            dir("older", &[(".job_id.tmp", "")]),
            dir("staged", &[("job.sbatch", "#!/bin/sh\n")]),
        ];
        std::os::unix::fs::symlink(base.path(), base.path().join("link")).unwrap();
        let mut dirs = dirs;
        dirs.push(base.path().join("link").display().to_string());
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
                DirState::NoId,
                DirState::Missing,
            ]
        );
    }
}
