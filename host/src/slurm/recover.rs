//! Finding out what became of submissions whose reply never came back: first from their job
//! directories (the id sbatch wrote), then from Slurm itself (a job whose script is the one in that
//! directory). Each is one exec for every pending submission together.

use super::{SlurmError, parse_parsable};
use crate::exec::Exec;
use crate::types::job_dir::SCRIPT_FILE;
use crate::types::names::JobId;
use crate::types::shell::ShellCommand;

/// Arguments: the nonce, then the directories. Prints per directory `missing`, `none` (no id file),
/// `pending` (sbatch's output file exists, no id yet) and every line of the id file as `id`.
const PROBE: &str = concat!(
    r#"n=$1; shift; i=0; for d in "$@"; do "#,
    r#"if [ -L "$d" ] || [ ! -d "$d" ]; then printf '%s missing %s\n' "$n" "$i"; "#,
    r#"elif [ -f "$d/job_id" ]; then while IFS= read -r l; do printf '%s id %s %s\n' "$n" "$i" "$l"; done < "$d/job_id"; "#,
    r#"elif [ -f "$d/.job_id.tmp" ]; then printf '%s pending %s\n' "$n" "$i"; "#,
    r#"else printf '%s none %s\n' "$n" "$i"; fi; i=$((i+1)); done"#,
);

/// What a job directory says about its submission.
#[derive(Debug, PartialEq, Eq)]
pub enum DirState {
    /// sbatch wrote this id.
    Submitted(JobId),
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
    let mut lines: Vec<(bool, Vec<String>, Option<&str>)> =
        vec![(false, Vec::new(), None); dirs.len()];
    let text = output.stdout_text();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(nonce).and_then(|r| r.strip_prefix(' ')) else {
            continue;
        };
        let mut parts = rest.splitn(3, ' ');
        let (Some(tag), Some(index)) = (parts.next(), parts.next()) else {
            continue;
        };
        let Some(entry) = index.parse::<usize>().ok().and_then(|i| lines.get_mut(i)) else {
            continue;
        };
        match tag {
            "id" => {
                entry.0 = true;
                entry.1.push(parts.next().unwrap_or("").to_string());
            }
            "missing" => entry.2 = Some("missing"),
            "pending" => entry.2 = Some("pending"),
            "none" => entry.2 = Some("none"),
            _ => {}
        }
    }
    Ok(lines
        .into_iter()
        .map(|(has_id, id_lines, tag)| match (has_id, tag) {
            (true, _) => parse_parsable(&id_lines.join("\n"))
                .map(DirState::Submitted)
                .unwrap_or(DirState::Pending),
            (false, Some("missing")) => DirState::Missing,
            (false, Some("pending")) => DirState::Pending,
            (false, Some("none")) => DirState::NoId,
            _ => DirState::Unknown,
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
