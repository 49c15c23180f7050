//! File transfer confined to a job directory, over SFTP or on this machine.
//!
//! A [`JobDir`] only takes relative names that stay inside it: no absolute paths, no `..`, no empty or `.`
//! components. Reads also refuse symlinks and check that the server's resolved path is still inside the
//! directory, so a link planted in the job directory cannot read elsewhere. Writes go to a temporary
//! name in the same directory and are renamed into place, so a reader never sees half a file.

use std::io::SeekFrom;
use std::path::Path;

use russh_sftp::client::SftpSession;
use russh_sftp::protocol::{FileAttributes, OpenFlags, StatusCode};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use crate::error::{Diagnose, exit};

#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error("{name:?} is not a path inside the job directory: {reason}")]
    OutsideJobDir { name: String, reason: &'static str },
    #[error("{path} does not exist")]
    NotFound { path: String },
    #[error("{path}: {message}")]
    Io { path: String, message: String },
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

    /// Read `name` from `offset` to its end (at most `limit` bytes). `NotFound` if it does not exist yet.
    pub async fn read_from(
        &self,
        name: &str,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<u8>, TransferError> {
        check_relative(name)?;
        let target = format!("{}/{name}", self.path);
        let mut bytes = Vec::new();
        match self.files {
            Files::Sftp(sftp) => {
                match sftp.symlink_metadata(&target).await {
                    Ok(meta) if meta.is_symlink() => return Err(symlink_refused(name)),
                    Ok(_) => {}
                    Err(russh_sftp::client::error::Error::Status(s))
                        if s.status_code == StatusCode::NoSuchFile =>
                    {
                        return Err(TransferError::NotFound { path: target });
                    }
                    Err(e) => return Err(io_error(&target, e)),
                }
                let resolved = sftp
                    .canonicalize(&target)
                    .await
                    .map_err(|e| io_error(&target, e))?;
                let resolved_dir = sftp
                    .canonicalize(&self.path)
                    .await
                    .map_err(|e| io_error(&self.path, e))?;
                if !resolved.starts_with(&format!("{resolved_dir}/")) {
                    return Err(symlink_refused(name));
                }
                let mut file = sftp
                    .open(&resolved)
                    .await
                    .map_err(|e| io_error(&target, e))?;
                file.seek(SeekFrom::Start(offset))
                    .await
                    .map_err(|e| local_error(&target, e))?;
                (&mut file)
                    .take(limit)
                    .read_to_end(&mut bytes)
                    .await
                    .map_err(|e| local_error(&target, e))?;
                let _ = file.shutdown().await;
            }
            Files::Local => {
                let (name, dir, path) = (name.to_string(), self.path.clone(), target.clone());
                bytes = blocking(&target, move || {
                    use std::io::{Read, Seek};
                    let target = path;
                    match std::fs::symlink_metadata(&target) {
                        Ok(meta) if meta.file_type().is_symlink() => {
                            return Err(symlink_refused(&name));
                        }
                        Ok(_) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                            return Err(TransferError::NotFound { path: target });
                        }
                        Err(e) => return Err(local_error(&target, e)),
                    }
                    let resolved =
                        std::fs::canonicalize(&target).map_err(|e| local_error(&target, e))?;
                    let resolved_dir =
                        std::fs::canonicalize(&dir).map_err(|e| local_error(&dir, e))?;
                    if !resolved.starts_with(&resolved_dir) || resolved == resolved_dir {
                        return Err(symlink_refused(&name));
                    }
                    let mut file =
                        std::fs::File::open(&resolved).map_err(|e| local_error(&target, e))?;
                    file.seek(SeekFrom::Start(offset))
                        .map_err(|e| local_error(&target, e))?;
                    let mut bytes = Vec::new();
                    file.take(limit)
                        .read_to_end(&mut bytes)
                        .map_err(|e| local_error(&target, e))?;
                    Ok(bytes)
                })
                .await?;
            }
        }
        Ok(bytes)
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

    #[tokio::test]
    async fn local_writes_are_atomic_and_confined() {
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
        assert_eq!(
            dir.read_from("job.sbatch", 2, 100).await.unwrap(),
            b"/bin/bash\n"
        );
        // No temporary files left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        // A job directory is never reused.
        assert!(files.create_job_dir(&base_str, "hello-1").await.is_err());

        std::os::unix::fs::symlink(&outside, format!("{}/link.out", dir.path())).unwrap();
        assert!(matches!(
            dir.read_from("link.out", 0, 100).await,
            Err(TransferError::OutsideJobDir { .. })
        ));
        std::os::unix::fs::symlink(base.path(), format!("{}/up", dir.path())).unwrap();
        assert!(matches!(
            dir.read_from("up/secret", 0, 100).await,
            Err(TransferError::OutsideJobDir { .. })
        ));
        assert!(matches!(
            dir.read_from("../secret", 0, 100).await,
            Err(TransferError::OutsideJobDir { .. })
        ));
        assert!(matches!(
            dir.write("/tmp/x", b"", 0o600).await,
            Err(TransferError::OutsideJobDir { .. })
        ));
        assert!(matches!(
            dir.read_from("missing.out", 0, 100).await,
            Err(TransferError::NotFound { .. })
        ));
    }
}
