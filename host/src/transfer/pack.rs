//! Reading several files of a job directory at once: one command packs them as a tar stream, and the
//! stream is read here with every entry checked. For `fetch` (the job's outputs) and `result` (an
//! array's results).
//!
//! GNU tar walks the directories itself, opening each entry relative to its parent without following
//! links, after `cd -P` pinned the job directory: a link in the job directory is packed as a link (and
//! refused here), never followed out of it.

use crate::exec::{Exec, Exit};
use crate::types::shell::ShellCommand;

use super::{TransferError, check_relative};

/// Arguments: the most bytes to send, the job directory, then the paths to pack (relative to it).
/// Paths that do not exist are left out (tar warns on stderr and carries on); the stream is cut one
/// byte past the limit, so going over it is seen here without the rest being sent.
const PACK: &str = r#"n=$1; cd -P -- "$2" || exit 2; shift 2; tar -c -f - --ignore-failed-read -- "$@" | head -c "$n""#;

/// One packed entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packed {
    File {
        path: String,
        bytes: Vec<u8>,
    },
    Dir {
        path: String,
    },
    /// A link, device or FIFO: never followed, never written out.
    Refused {
        path: String,
        kind: String,
    },
}

/// Pack `paths` of `job_dir` (relative; `.` for the whole directory) and read them back.
pub async fn pack(
    exec: &impl Exec,
    job_dir: &str,
    paths: &[String],
    limit: u64,
) -> Result<Vec<Packed>, TransferError> {
    for path in paths {
        if path != "." {
            check_relative(path)?;
        }
    }
    let command = ShellCommand::sh("pack job files", PACK)
        .arg((limit + 1).to_string())
        .arg(job_dir)
        .args(paths);
    let output = exec.exec(&command).await.map_err(|e| TransferError::Io {
        path: job_dir.to_string(),
        message: e.to_string(),
    })?;
    match output.exit {
        Exit::Code(0) => {}
        Exit::Code(2) if output.stdout.is_empty() => {
            return Err(TransferError::NotFound {
                path: job_dir.to_string(),
            });
        }
        _ if output.stdout.is_empty() => {
            return Err(TransferError::Io {
                path: job_dir.to_string(),
                message: crate::types::text::bounded(output.stderr_text().trim(), 1024),
            });
        }
        _ => {}
    }
    if output.stdout.len() as u64 > limit {
        return Err(TransferError::Io {
            path: job_dir.to_string(),
            message: format!(
                "more than {limit} bytes to bring back; fetch fewer files (narrower `outputs`)"
            ),
        });
    }
    // A file that changed while tar read it is padded or cut: not a copy of anything.
    let stderr = output.stderr_text();
    if let Some(line) = stderr
        .lines()
        .find(|l| l.contains("shrank") || l.contains("changed as we read it"))
    {
        return Err(TransferError::Io {
            path: job_dir.to_string(),
            message: format!(
                "{}; fetch again once the job has ended",
                crate::types::text::bounded(line.trim(), 512)
            ),
        });
    }
    unpack(&output.stdout).map_err(|e| TransferError::Io {
        path: job_dir.to_string(),
        message: format!("the packed files could not be read: {e}"),
    })
}

/// The entries of a tar stream, each path checked to stay inside (no absolute paths, no `..`).
fn unpack(bytes: &[u8]) -> std::io::Result<Vec<Packed>> {
    let mut archive = tar::Archive::new(bytes);
    let mut entries = Vec::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let raw = entry.path()?.to_string_lossy().into_owned();
        let path = raw
            .trim_start_matches("./")
            .trim_end_matches('/')
            .to_string();
        if path.is_empty() || path == "." {
            continue;
        }
        if check_relative(&path).is_err() {
            entries.push(Packed::Refused {
                path,
                kind: "a path leaving the job directory".into(),
            });
            continue;
        }
        let kind = entry.header().entry_type();
        entries.push(match kind {
            tar::EntryType::Regular | tar::EntryType::GNUSparse => {
                let mut bytes = Vec::with_capacity(entry.size() as usize);
                std::io::Read::read_to_end(&mut entry, &mut bytes)?;
                Packed::File { path, bytes }
            }
            tar::EntryType::Directory => Packed::Dir { path },
            tar::EntryType::Symlink | tar::EntryType::Link => Packed::Refused {
                path,
                kind: "a link".into(),
            },
            other => Packed::Refused {
                path,
                kind: format!("not a regular file ({other:?})"),
            },
        });
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_read_and_links_refused() {
        let dir = tempfile::tempdir().unwrap();
        let job = dir.path().join("job");
        std::fs::create_dir_all(job.join("results/sub")).unwrap();
        std::fs::write(job.join("results/0.json"), "[1]").unwrap();
        std::fs::write(job.join("results/sub/x"), "x").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", job.join("results/link")).unwrap();
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(PACK)
            .arg("sh")
            .arg("1000000")
            .arg(&job)
            .args(["results", "missing"])
            .output()
            .unwrap();
        let mut entries = unpack(&out.stdout).unwrap();
        entries.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
        assert!(entries.contains(&Packed::File {
            path: "results/0.json".into(),
            bytes: b"[1]".to_vec()
        }));
        assert!(entries.contains(&Packed::File {
            path: "results/sub/x".into(),
            bytes: b"x".to_vec()
        }));
        assert!(entries.contains(&Packed::Refused {
            path: "results/link".into(),
            kind: "a link".into()
        }));
        assert!(
            !entries
                .iter()
                .any(|e| matches!(e, Packed::File { bytes, .. } if bytes.starts_with(b"root:"))),
            "the link was not followed"
        );
    }
}
