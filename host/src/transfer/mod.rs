//! Files confined to a job directory, on the cluster or on this machine.
//!
//! Only relative names that stay inside the directory are taken: no absolute paths, no `..`, no empty or
//! `.` components. Reads ([`read_confined`]) run as one command that pins the directory before looking,
//! refuses links and anything but a regular file, and opens without following a link, so nothing
//! planted or swapped in the job directory (by the job itself, say) can make a read leave it or hang on
//! a FIFO. Writes ([`JobDir::write`]) go to a temporary name in the same directory and are renamed into
//! place, so a reader never sees half a file.

use std::path::Path;

pub mod pack;

use russh_sftp::client::SftpSession;
use russh_sftp::protocol::{FileAttributes, OpenFlags, StatusCode};
use tokio::io::AsyncWriteExt;

use crate::error::{Diagnose, exit};
use crate::exec::{Exec, Exit};
use crate::types::shell::ShellCommand;

#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error("{name:?} is not a path inside the job directory: {reason}")]
    OutsideJobDir { name: String, reason: &'static str },
    #[error("{path} does not exist")]
    NotFound { path: String },
    #[error("{path}: {message}")]
    Io { path: String, message: String },
    #[error("{path} is not a regular file (a FIFO, device or directory); refusing to read it")]
    NotRegular { path: String },
}

impl Diagnose for TransferError {
    fn exit_code(&self) -> u8 {
        exit::CLUSTER
    }
}

/// Run local filesystem work off the async threads.
async fn blocking<T: Send + 'static>(
    path: &str,
    work: impl FnOnce() -> Result<T, TransferError> + Send + 'static,
) -> Result<T, TransferError> {
    tokio::task::spawn_blocking(work).await.unwrap_or_else(|e| {
        Err(TransferError::Io {
            path: path.to_string(),
            message: e.to_string(),
        })
    })
}

/// Where files live: the cluster over SFTP, or this machine.
#[derive(Clone, Copy)]
pub enum Files<'a> {
    Sftp(&'a SftpSession),
    Local,
}

impl<'a> Files<'a> {
    /// The user's home directory on that side.
    pub async fn home(&self) -> Result<String, TransferError> {
        match self {
            Files::Sftp(sftp) => sftp.canonicalize(".").await.map_err(|e| io_error(".", e)),
            Files::Local => dirs::home_dir()
                .map(|h| h.display().to_string())
                .ok_or_else(|| TransferError::Io {
                    path: "~".into(),
                    message: "no home directory".into(),
                }),
        }
    }

    /// Resolve a configured base directory: `~/x` and relative paths are under the home directory.
    pub async fn resolve_base(&self, base: &str) -> Result<String, TransferError> {
        if base.starts_with('/') {
            return Ok(base.trim_end_matches('/').to_string());
        }
        let home = self.home().await?;
        let rest = base
            .strip_prefix("~")
            .unwrap_or(base)
            .trim_start_matches('/')
            .trim_end_matches('/');
        Ok(if rest.is_empty() {
            home
        } else {
            format!("{home}/{rest}")
        })
    }

    /// Create `base` (and missing parents) and a fresh `base/name` (mode 0700). Fails if it exists.
    pub async fn create_job_dir(
        &self,
        base: &str,
        name: &str,
    ) -> Result<JobDir<'a>, TransferError> {
        check_relative(name)?;
        self.create_dir_all(base).await?;
        let path = format!("{base}/{name}");
        match self {
            Files::Sftp(sftp) => {
                sftp.create_dir(&path)
                    .await
                    .map_err(|e| io_error(&path, e))?;
                let mut attrs = FileAttributes::empty();
                attrs.permissions = Some(0o700);
                sftp.set_metadata(&path, attrs)
                    .await
                    .map_err(|e| io_error(&path, e))?;
            }
            Files::Local => {
                let dir = path.clone();
                blocking(&path, move || {
                    use std::os::unix::fs::DirBuilderExt;
                    std::fs::DirBuilder::new()
                        .mode(0o700)
                        .create(&dir)
                        .map_err(|e| local_error(&dir, e))
                })
                .await?;
            }
        }
        Ok(JobDir { files: *self, path })
    }

    async fn create_dir_all(&self, path: &str) -> Result<(), TransferError> {
        let mut current = String::new();
        for component in path.split('/').filter(|c| !c.is_empty()) {
            current.push('/');
            current.push_str(component);
            match self {
                Files::Sftp(sftp) => match sftp.metadata(&current).await {
                    Ok(meta) if meta.is_dir() => continue,
                    Ok(_) => {
                        return Err(TransferError::Io {
                            path: current,
                            message: "exists and is not a directory".into(),
                        });
                    }
                    Err(russh_sftp::client::error::Error::Status(s))
                        if s.status_code == StatusCode::NoSuchFile =>
                    {
                        sftp.create_dir(&current)
                            .await
                            .map_err(|e| io_error(&current, e))?;
                    }
                    Err(e) => return Err(io_error(&current, e)),
                },
                Files::Local => {
                    let dir = current.clone();
                    blocking(&current, move || {
                        if !Path::new(&dir).is_dir() {
                            std::fs::create_dir(&dir).map_err(|e| local_error(&dir, e))?;
                        }
                        Ok(())
                    })
                    .await?;
                }
            }
        }
        Ok(())
    }

    /// Open an existing job directory (recorded in the journal). It must be a real directory.
    pub async fn open_job_dir(&self, path: &str) -> Result<JobDir<'a>, TransferError> {
        match self {
            Files::Sftp(sftp) => match sftp.symlink_metadata(path).await {
                Ok(meta) if meta.is_dir() => {}
                Ok(_) => {
                    return Err(TransferError::Io {
                        path: path.into(),
                        message: "is not a directory".into(),
                    });
                }
                Err(russh_sftp::client::error::Error::Status(s))
                    if s.status_code == StatusCode::NoSuchFile =>
                {
                    return Err(TransferError::NotFound { path: path.into() });
                }
                Err(e) => return Err(io_error(path, e)),
            },
            Files::Local => {
                let dir = path.to_string();
                blocking(path, move || match std::fs::symlink_metadata(&dir) {
                    Ok(meta) if meta.is_dir() => Ok(()),
                    Ok(_) => Err(TransferError::Io {
                        path: dir,
                        message: "is not a directory".into(),
                    }),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        Err(TransferError::NotFound { path: dir })
                    }
                    Err(e) => Err(local_error(&dir, e)),
                })
                .await?
            }
        }
        Ok(JobDir {
            files: *self,
            path: path.to_string(),
        })
    }
}

/// A job directory and the only files transfer may touch.
pub struct JobDir<'a> {
    files: Files<'a>,
    path: String,
}

impl JobDir<'_> {
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Write `bytes` to `name` atomically with `mode`: a temporary file, then a rename. Only names directly
    /// in the job directory are written, so no intermediate directory (or link) is ever followed.
    pub async fn write(&self, name: &str, bytes: &[u8], mode: u32) -> Result<(), TransferError> {
        check_relative(name)?;
        if name.contains('/') {
            return Err(TransferError::OutsideJobDir {
                name: name.to_string(),
                reason: "only files directly in the job directory are written",
            });
        }
        let target = format!("{}/{name}", self.path);
        let temporary = format!("{}/.{name}.{:08x}.tmp", self.path, rand::random::<u32>());
        match self.files {
            Files::Sftp(sftp) => {
                let mut attrs = FileAttributes::empty();
                attrs.permissions = Some(mode);
                let flags = OpenFlags::CREATE | OpenFlags::EXCLUDE | OpenFlags::WRITE;
                let mut file = sftp
                    .open_with_flags_and_attributes(&temporary, flags, attrs)
                    .await
                    .map_err(|e| io_error(&temporary, e))?;
                file.write_all(bytes)
                    .await
                    .map_err(|e| local_error(&temporary, e))?;
                file.shutdown()
                    .await
                    .map_err(|e| local_error(&temporary, e))?;
                // The server applies its umask to the create attributes; set the mode explicitly.
                let mut attrs = FileAttributes::empty();
                attrs.permissions = Some(mode);
                sftp.set_metadata(&temporary, attrs)
                    .await
                    .map_err(|e| io_error(&temporary, e))?;
                if let Err(e) = sftp.rename(&temporary, &target).await {
                    let _ = sftp.remove_file(&temporary).await;
                    return Err(io_error(&target, e));
                }
            }
            Files::Local => {
                let bytes = bytes.to_vec();
                let written = target.clone();
                blocking(&target, move || {
                    use std::io::Write;
                    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
                    let result = (|| {
                        let mut file = std::fs::OpenOptions::new()
                            .write(true)
                            .create_new(true)
                            .mode(mode)
                            .open(&temporary)?;
                        file.write_all(&bytes)?;
                        file.sync_all()?;
                        std::fs::set_permissions(
                            &temporary,
                            std::fs::Permissions::from_mode(mode),
                        )?;
                        std::fs::rename(&temporary, &written)
                    })();
                    result.map_err(|e| {
                        let _ = std::fs::remove_file(&temporary);
                        local_error(&written, e)
                    })
                })
                .await?;
            }
        }
        Ok(())
    }
}

/// Arguments: the job directory, a name inside it, an offset and a byte count. The directory (and any
/// subdirectory on the way) is entered with `cd -P` and checked to lie inside the job directory; from
/// then on the shell's working directory is pinned, so swapping a path component cannot move the read.
/// The file itself must be a regular file, not a link: checked first for a clear message, and enforced
/// at open by `dd iflag=nofollow,nonblock` (a link swapped in fails to open, a FIFO cannot block).
/// Exit statuses: 2 missing, 5 outside the job directory, 6 not a regular file.
const READ: &str = concat!(
    r#"d=$1; f=$2; cd -P -- "$d" || exit 2; top=$(pwd -P); "#,
    r#"case "$f" in */*) cd -P -- "${f%/*}" 2>/dev/null || exit 2; "#,
    r#"case "$(pwd -P)/" in "$top"/*) ;; *) exit 5;; esac; f=${f##*/};; esac; "#,
    r#"if [ -L "$f" ]; then exit 5; elif [ ! -e "$f" ]; then exit 2; elif [ ! -f "$f" ]; then exit 6; fi; "#,
    r#"exec dd if="$f" iflag=nofollow,nonblock,skip_bytes,count_bytes skip="$3" count="$4" bs=1M status=none"#,
);

/// Read `name` inside `job_dir` from `offset` (at most `limit` bytes), in one command: `NotFound` if
/// it does not exist yet; refused if it is (or becomes) a link or not a regular file, or lies outside.
pub async fn read_confined(
    exec: &impl Exec,
    job_dir: &str,
    name: &str,
    offset: u64,
    limit: u64,
) -> Result<Vec<u8>, TransferError> {
    check_relative(name)?;
    let command = ShellCommand::sh("read a job file", READ)
        .arg(job_dir)
        .arg(name)
        .arg(offset.to_string())
        .arg(limit.to_string());
    let path = format!("{job_dir}/{name}");
    let output = exec.exec(&command).await.map_err(|e| TransferError::Io {
        path: path.clone(),
        message: e.to_string(),
    })?;
    match output.exit {
        Exit::Code(0) => Ok(output.stdout),
        Exit::Code(2) => Err(TransferError::NotFound { path }),
        Exit::Code(5) => Err(symlink_refused(name)),
        Exit::Code(6) => Err(TransferError::NotRegular { path }),
        _ => {
            let stderr = output.stderr_text();
            // A link or FIFO swapped in after the check fails to open: say so, as for one seen first.
            if stderr.contains("Too many levels of symbolic links") {
                Err(symlink_refused(name))
            } else if stderr.contains("Resource temporarily unavailable") {
                Err(TransferError::NotRegular { path })
            } else {
                Err(TransferError::Io {
                    path,
                    message: crate::types::text::bounded(stderr.trim(), 1024),
                })
            }
        }
    }
}

fn symlink_refused(name: &str) -> TransferError {
    TransferError::OutsideJobDir {
        name: name.to_string(),
        reason: "it is, or resolves through, a symbolic link leaving the job directory",
    }
}

/// Accept only a relative path of normal components.
pub fn check_relative(name: &str) -> Result<(), TransferError> {
    let refuse = |reason| {
        Err(TransferError::OutsideJobDir {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() {
        return refuse("it is empty");
    }
    if name.starts_with('/') {
        return refuse("absolute paths are not allowed");
    }
    if name.contains('\0') || name.contains('\\') {
        return refuse("it contains a NUL or backslash");
    }
    for component in name.split('/') {
        match component {
            "" => return refuse("it has an empty path component"),
            "." | ".." => return refuse("'.' and '..' components are not allowed"),
            _ => {}
        }
    }
    Ok(())
}

fn io_error(path: &str, e: russh_sftp::client::error::Error) -> TransferError {
    TransferError::Io {
        path: path.to_string(),
        message: e.to_string(),
    }
}

fn local_error(path: &str, e: std::io::Error) -> TransferError {
    TransferError::Io {
        path: path.to_string(),
        message: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_relative_names() {
        for good in ["job.sbatch", "outputs/result.csv", "slurm-12.out"] {
            assert!(check_relative(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../b",
            "a//b",
            "./a",
            "a/.",
            "a\\b",
            "a\0b",
        ] {
            assert!(check_relative(bad).is_err(), "{bad:?}");
        }
    }

    /// Runs command lines with this machine's `sh`.
    struct Sh;

    impl Exec for Sh {
        async fn run(
            &self,
            command: &ShellCommand,
            _input: &[u8],
        ) -> Result<crate::exec::CommandOutput, crate::exec::CommandError> {
            let out = std::process::Command::new("/bin/sh")
                .arg("-c")
                .arg(command.as_str())
                .output()
                .unwrap();
            Ok(crate::exec::CommandOutput {
                exit: out.status.code().map_or(Exit::Unknown, Exit::Code),
                stdout: out.stdout,
                stderr: out.stderr,
            })
        }
    }

    #[tokio::test]
    async fn local_writes_are_atomic_and_reads_stay_confined() {
        let base = tempfile::tempdir().unwrap();
        let outside = base.path().join("secret");
        std::fs::write(&outside, "top secret").unwrap();
        let files = Files::Local;
        let base_str = base.path().join("jobs").display().to_string();
        let dir = files.create_job_dir(&base_str, "hello-1").await.unwrap();
        dir.write("job.sbatch", b"#!/bin/bash\n", 0o750)
            .await
            .unwrap();
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(format!("{}/job.sbatch", dir.path())).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o750);
        assert_eq!(
            std::fs::metadata(dir.path()).unwrap().permissions().mode() & 0o777,
            0o700
        );
        let read = |name: &'static str| read_confined(&Sh, dir.path(), name, 2, 100);
        assert_eq!(read("job.sbatch").await.unwrap(), b"/bin/bash\n");
        // No temporary files left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        // A job directory is never reused.
        assert!(files.create_job_dir(&base_str, "hello-1").await.is_err());

        std::os::unix::fs::symlink(&outside, format!("{}/link.out", dir.path())).unwrap();
        assert!(matches!(
            read("link.out").await,
            Err(TransferError::OutsideJobDir { .. })
        ));
        std::os::unix::fs::symlink(base.path(), format!("{}/up", dir.path())).unwrap();
        assert!(matches!(
            read("up/secret").await,
            Err(TransferError::OutsideJobDir { .. })
        ));
        assert!(matches!(
            read("../secret").await,
            Err(TransferError::OutsideJobDir { .. })
        ));
        assert!(matches!(
            dir.write("/tmp/x", b"", 0o600).await,
            Err(TransferError::OutsideJobDir { .. })
        ));
        assert!(matches!(
            read("missing.out").await,
            Err(TransferError::NotFound { .. })
        ));
        let fifo = format!("{}/fifo.out", dir.path());
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        assert!(matches!(
            read("fifo.out").await,
            Err(TransferError::NotRegular { .. })
        ));
        std::fs::create_dir(format!("{}/sub", dir.path())).unwrap();
        std::fs::write(format!("{}/sub/x.out", dir.path()), "..inner").unwrap();
        assert_eq!(read("sub/x.out").await.unwrap(), b"inner");
    }
}
