//! Fetching a job's outputs: what its `outputs` globs match in the job directory, copied into a local
//! directory. Confined on both sides: on the cluster the files are packed without following links
//! ([`crate::transfer::pack`]); here every path is checked to stay inside the destination, no link on
//! the way is written through, each file is written to a temporary name and linked into place
//! atomically, and nothing is replaced unless asked (`force`).

use std::path::{Path, PathBuf};

use super::LifecycleError;
use super::event::EventDetail;
use super::session::Session;
use crate::error::{Diagnose, exit};
use crate::journal::Submission;
use crate::transfer::pack::{Packed, pack};
use crate::types::names::JobId;
use crate::wit::EventKind;

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error(
        "job {job_id} declares no outputs; add `outputs = [\"results/*.json\", ...]` to its job in the Slurmfile"
    )]
    NoOutputs { job_id: JobId },
    #[error("{} file(s) already exist in {}: {}", paths.len(), dest.display(), paths.join(", "))]
    WouldOverwrite { dest: PathBuf, paths: Vec<String> },
    #[error("cannot write {path}: {message}")]
    Write { path: PathBuf, message: String },
    #[error(transparent)]
    Lifecycle(#[from] LifecycleError),
}

impl Diagnose for FetchError {
    fn exit_code(&self) -> u8 {
        match self {
            FetchError::NoOutputs { .. } => exit::CONFIG,
            FetchError::WouldOverwrite { .. } => exit::WOULD_OVERWRITE,
            FetchError::Write { .. } => exit::INTERNAL,
            FetchError::Lifecycle(e) => e.exit_code(),
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            FetchError::WouldOverwrite { .. } => {
                Some("pass --force to replace them, or --to another directory".into())
            }
            _ => None,
        }
    }

    fn diagnosed_source(&self) -> Option<&dyn Diagnose> {
        match self {
            FetchError::Lifecycle(e) => Some(e),
            _ => None,
        }
    }
}

/// The most a fetch brings back in one go (it is held in memory before it is written).
pub const MAX_FETCH_BYTES: u64 = 1 << 30;

/// What a fetch did.
#[derive(Debug, Default)]
pub struct Fetched {
    pub dest: PathBuf,
    /// Files written, relative to `dest`.
    pub files: Vec<String>,
    pub bytes: u64,
    /// Output globs that matched nothing.
    pub unmatched: Vec<String>,
    /// Entries left out, and why (links, devices).
    pub refused: Vec<String>,
}

/// The directory outputs go to by default: `./<name>-<id>`.
pub fn default_dest(submission: &Submission) -> PathBuf {
    PathBuf::from(format!(
        "{}-{}",
        submission.job_name,
        submission.job_id.as_ref().map_or("unknown", |i| i.as_str())
    ))
}

/// Fetch the outputs of `job_id` into `dest` (default `./<name>-<id>`), then deliver `outputs-fetched`.
pub async fn fetch(
    session: &Session,
    job_id: &JobId,
    dest: Option<&Path>,
    force: bool,
) -> Result<Fetched, FetchError> {
    let (cluster, id) = (session.target.key.clone(), job_id.clone());
    let submission = session
        .journal
        .run(move |j| j.find_by_job_id(&cluster, &id))
        .await
        .map_err(LifecycleError::from)?
        .ok_or_else(|| LifecycleError::NotJournaled {
            job_id: job_id.clone(),
            cluster: session.target.key.clone(),
        })?;
    let globs = &submission.spec.outputs;
    if globs.is_empty() {
        return Err(FetchError::NoOutputs {
            job_id: job_id.clone(),
        });
    }
    let dest = dest.map_or_else(|| default_dest(&submission), Path::to_path_buf);
    // Only the first part of each glob's fixed prefix: tar follows no link below what it is given, but
    // would follow one in the middle of a path it is given (`model/weights` through a linked `model`).
    let mut roots: Vec<String> = globs
        .iter()
        .map(|g| {
            let prefix = g.literal_prefix();
            match prefix.split('/').next() {
                Some(first) if !first.is_empty() => first.to_string(),
                _ => ".".to_string(),
            }
        })
        .collect();
    roots.sort();
    roots.dedup();
    if let Some(status) = super::observe::observe(session, std::slice::from_ref(job_id))
        .await?
        .into_iter()
        .find(|s| !s.state.is_terminal())
    {
        tracing::warn!(
            "job {job_id} is {}: its outputs may not be complete yet",
            status.state
        );
    }
    let packed = pack(&session.conn, &submission.job_dir, &roots, MAX_FETCH_BYTES)
        .await
        .map_err(LifecycleError::from)?;
    let matchers: Vec<_> = globs.iter().map(|g| g.matcher()).collect();
    let mut fetched = Fetched {
        dest: dest.clone(),
        ..Fetched::default()
    };
    let mut matched = vec![false; globs.len()];
    let mut files = Vec::new();
    for entry in packed {
        match entry {
            Packed::File { path, bytes } => {
                let mut wanted = false;
                for (i, m) in matchers.iter().enumerate() {
                    if m.is_match(&path) {
                        matched[i] = true;
                        wanted = true;
                    }
                }
                if wanted {
                    files.push((path, bytes));
                }
            }
            Packed::Refused { path, kind } => {
                if matchers.iter().any(|m| m.is_match(&path)) {
                    fetched.refused.push(format!("{path}: {kind}"));
                }
            }
            Packed::Dir { .. } => {}
        }
    }
    fetched.unmatched = globs
        .iter()
        .zip(&matched)
        .filter(|(_, m)| !**m)
        .map(|(g, _)| g.as_str().to_string())
        .collect();
    let written = tokio::task::spawn_blocking(move || write_all(&dest, &files, force))
        .await
        .map_err(|e| FetchError::Write {
            path: PathBuf::from("."),
            message: e.to_string(),
        })??;
    fetched.bytes = written.iter().map(|(_, n)| n).sum();
    fetched.files = written.into_iter().map(|(p, _)| p).collect();
    let event = session.outbox.event(
        EventKind::OutputsFetched,
        &submission.spec,
        &submission.job_dir,
        Some(job_id.as_str()),
        EventDetail::Outputs(fetched.files.clone()),
        &format!("@{}", crate::journal::now_ms()),
    );
    session.outbox.emit(submission.id, event).await;
    Ok(fetched)
}

/// Write every file under `dest`, checking all first: with `force` unset, one file in the way stops
/// them all before anything is written.
fn write_all(
    dest: &Path,
    files: &[(String, Vec<u8>)],
    force: bool,
) -> Result<Vec<(String, u64)>, FetchError> {
    let error = |path: &Path, message: String| FetchError::Write {
        path: path.to_path_buf(),
        message,
    };
    if !force {
        let existing: Vec<String> = files
            .iter()
            .filter(|(path, _)| dest.join(path).symlink_metadata().is_ok())
            .map(|(path, _)| path.clone())
            .collect();
        if !existing.is_empty() {
            return Err(FetchError::WouldOverwrite {
                dest: dest.to_path_buf(),
                paths: existing,
            });
        }
    }
    std::fs::create_dir_all(dest).map_err(|e| error(dest, e.to_string()))?;
    let mut written = Vec::new();
    for (path, bytes) in files {
        let parent = make_parents(dest, path).map_err(|e| error(&dest.join(path), e))?;
        let name = path.rsplit('/').next().unwrap_or(path);
        let target = parent.join(name);
        let temp = parent.join(format!(".{name}.slurmkit-{:08x}", rand::random::<u32>()));
        let result = (|| -> std::io::Result<()> {
            use std::io::Write;
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&temp)?;
            file.write_all(bytes)?;
            file.sync_all()?;
            if force {
                std::fs::rename(&temp, &target)
            } else {
                // A link fails if the name exists: nothing is replaced, even if it appeared just now.
                std::fs::hard_link(&temp, &target)?;
                std::fs::remove_file(&temp)
            }
        })();
        if let Err(e) = result {
            let _ = std::fs::remove_file(&temp);
            return Err(error(&target, e.to_string()));
        }
        written.push((path.clone(), bytes.len() as u64));
    }
    Ok(written)
}

/// Create the directories of `path` under `dest` one by one, refusing to go through a link or a
/// non-directory; the parent directory of the file.
fn make_parents(dest: &Path, path: &str) -> Result<PathBuf, String> {
    let mut current = dest.to_path_buf();
    let parts: Vec<&str> = path.split('/').collect();
    for part in &parts[..parts.len().saturating_sub(1)] {
        current.push(part);
        match current.symlink_metadata() {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(format!(
                    "{} is a link: not writing through it",
                    current.display()
                ));
            }
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(format!("{} is not a directory", current.display())),
            Err(_) => std::fs::create_dir(&current).map_err(|e| e.to_string())?,
        }
    }
    Ok(current)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_written_inside_and_never_replaced_unless_forced() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out");
        let files = vec![
            ("results/a.json".to_string(), b"{}".to_vec()),
            ("model/w/1.bin".to_string(), vec![1, 2, 3]),
        ];
        let written = write_all(&dest, &files, false).unwrap();
        assert_eq!(written.len(), 2);
        assert_eq!(
            std::fs::read(dest.join("model/w/1.bin")).unwrap(),
            [1, 2, 3]
        );
        let again = write_all(&dest, &files, false);
        assert!(
            matches!(again, Err(FetchError::WouldOverwrite { ref paths, .. }) if paths.len() == 2)
        );
        let changed = vec![("results/a.json".to_string(), b"[1]".to_vec())];
        write_all(&dest, &changed, true).unwrap();
        assert_eq!(std::fs::read(dest.join("results/a.json")).unwrap(), b"[1]");
        // A link planted where a directory goes is not written through.
        std::os::unix::fs::symlink(dir.path(), dest.join("linked")).unwrap();
        let through = vec![("linked/x".to_string(), b"x".to_vec())];
        assert!(write_all(&dest, &through, true).is_err());
        assert!(!dir.path().join("x").exists());
        let leftovers = std::fs::read_dir(dest.join("results"))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with('.')
            })
            .count();
        assert_eq!(leftovers, 0, "no temporary file left behind");
    }
}
