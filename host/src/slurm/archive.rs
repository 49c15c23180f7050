//! The tar stream that carries job directories to the exchange ([`super::submit`]).

use std::collections::{HashMap, HashSet};
use std::io::Read as _;
use std::path::PathBuf;

use super::store::STORE_THRESHOLD;
use super::submit::{Content, FROM_STORE_FILE, MANIFEST_FILE, StagedJob, TO_STORE_FILE};
use crate::types::work::FileIdentity;

/// A local input read whole while it was sent, at least [`STORE_THRESHOLD`] bytes, that did not change
/// while it was read: its digest may be remembered for this identity.
#[derive(Debug)]
pub struct Hashed {
    /// What the file was when it was opened (and still was once read).
    pub identity: FileIdentity,
    /// Hex.
    pub sha256: String,
}

/// About how many bytes [`write_archive`] will send (file contents; headers left out), for progress.
/// Inputs the store holds are not sent.
pub fn archive_size(jobs: &[StagedJob]) -> u64 {
    let mut seen = HashSet::new();
    jobs.iter()
        .flat_map(|job| job.files.iter().chain(&job.inputs))
        .map(|file| match &file.content {
            Content::Bytes(bytes) => bytes.len() as u64,
            Content::File(path) if seen.insert(path.clone()) => {
                std::fs::metadata(path).map_or(0, |m| m.len())
            }
            Content::File(_) | Content::Stored { .. } => 0,
        })
        .sum()
}

/// The job directories as one tar stream, written to `out` (a pipe to the remote command). Inputs
/// are read as they are written; each job's manifest lists the sha256 of the bytes actually sent (for
/// an input the store holds, the digest it is stored under). A file staged by several jobs is sent
/// once and hard-linked into the others' directories. Inputs the store holds are listed in the job's
/// [`FROM_STORE_FILE`], inputs sent that the store should keep in its [`TO_STORE_FILE`].
/// `sent` is told the size of each chunk written, for a progress bar. Returns the large inputs
/// hashed on the way (see [`Hashed`]).
pub fn write_archive(
    jobs: &[StagedJob],
    out: impl std::io::Write,
    sent: &mut dyn FnMut(u64),
) -> std::io::Result<Vec<Hashed>> {
    let mut archive = tar::Builder::new(out);
    let mtime = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let header = |kind: tar::EntryType, mode: u32, size: u64| {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_size(size);
        header.set_mtime(mtime);
        header
    };
    // A local file several jobs stage travels once: the others get a hard link to its first copy.
    let mut sent_files: HashMap<PathBuf, (String, String)> = HashMap::new();
    let mut hashed = Vec::new();
    for job in jobs {
        let dir = |path: &str| format!("{}/{path}/", job.dir_name);
        archive.append_data(
            &mut header(tar::EntryType::Directory, 0o700, 0),
            format!("{}/", job.dir_name),
            std::io::empty(),
        )?;
        let mut made: HashSet<&str> = HashSet::new();
        for path in &job.dirs {
            made.insert(path);
            archive.append_data(
                &mut header(tar::EntryType::Directory, 0o750, 0),
                dir(path),
                std::io::empty(),
            )?;
        }
        let (mut manifest, mut from_store, mut to_store) =
            (String::new(), String::new(), String::new());
        for (file, is_input) in job
            .files
            .iter()
            .map(|f| (f, false))
            .chain(job.inputs.iter().map(|f| (f, true)))
        {
            let path = format!("{}/{}", job.dir_name, file.name);
            let digest = match &file.content {
                Content::Bytes(bytes) => {
                    let mut h = header(tar::EntryType::Regular, file.mode, bytes.len() as u64);
                    archive.append_data(&mut h, &path, bytes.as_slice())?;
                    sent(bytes.len() as u64);
                    hex::encode(<sha2::Sha256 as sha2::Digest>::digest(bytes))
                }
                Content::Stored { sha256, .. } => {
                    // Linked from the store after unpacking: its directories must be there.
                    let parents = file.name.match_indices('/').map(|(at, _)| &file.name[..at]);
                    for parent in parents {
                        if made.insert(parent) {
                            archive.append_data(
                                &mut header(tar::EntryType::Directory, 0o750, 0),
                                dir(parent),
                                std::io::empty(),
                            )?;
                        }
                    }
                    from_store.push_str(&format!("{sha256} {}\n", file.name));
                    sha256.clone()
                }
                Content::File(source) if sent_files.contains_key(source) => {
                    let (first, digest) = &sent_files[source];
                    let mut h = header(tar::EntryType::Link, file.mode, 0);
                    archive.append_link(&mut h, &path, first)?;
                    digest.clone()
                }
                Content::File(source) => {
                    let opened = std::fs::File::open(source).map_err(|e| {
                        std::io::Error::new(e.kind(), format!("{}: {e}", source.display()))
                    })?;
                    let opened_as = opened.metadata()?;
                    let size = opened_as.len();
                    // A file large enough for the store: what was opened, to remember its digest by
                    // if the path still names that once it is read.
                    let before = (size >= STORE_THRESHOLD)
                        .then(|| std::fs::canonicalize(source).ok())
                        .flatten()
                        .map(|path| {
                            FileIdentity::new(path.to_string_lossy().into_owned(), &opened_as)
                        });
                    let mut reader = Hashing::new(opened.take(size), sent);
                    let mut h = header(tar::EntryType::Regular, file.mode, size);
                    archive.append_data(&mut h, &path, &mut reader)?;
                    if reader.read < size {
                        return Err(std::io::Error::other(format!(
                            "{} shrank while it was sent; run the command again",
                            source.display()
                        )));
                    }
                    let digest = hex::encode(reader.finish());
                    if size >= STORE_THRESHOLD {
                        to_store.push_str(&format!("{digest} {}\n", file.name));
                        match before {
                            Some(identity)
                                if FileIdentity::of(source).is_ok_and(|now| now == identity) =>
                            {
                                hashed.push(Hashed {
                                    identity,
                                    sha256: digest.clone(),
                                })
                            }
                            _ => tracing::debug!(
                                "{} changed while it was sent: its digest is not remembered",
                                source.display()
                            ),
                        }
                    }
                    sent_files.insert(source.clone(), (path.clone(), digest.clone()));
                    digest
                }
            };
            if is_input {
                manifest.push_str(&format!("{digest}  {}\n", file.name));
            }
        }
        if !job.inputs.is_empty() {
            if !made.contains(".slurmkit") {
                archive.append_data(
                    &mut header(tar::EntryType::Directory, 0o750, 0),
                    dir(".slurmkit"),
                    std::io::empty(),
                )?;
            }
            for (name, text) in [
                (MANIFEST_FILE, &manifest),
                (FROM_STORE_FILE, &from_store),
                (TO_STORE_FILE, &to_store),
            ] {
                if name == MANIFEST_FILE || !text.is_empty() {
                    let mut h = header(tar::EntryType::Regular, 0o640, text.len() as u64);
                    let path = format!("{}/{name}", job.dir_name);
                    archive.append_data(&mut h, path, text.as_bytes())?;
                }
            }
        }
    }
    // Last: the mark that the stream arrived whole (see the exchange's script).
    archive.append_data(
        &mut header(tar::EntryType::Regular, 0o600, 0),
        ".slurmkit-complete",
        std::io::empty(),
    )?;
    archive.into_inner()?.flush()?;
    Ok(hashed)
}

/// A reader that hashes what passes through it and reports its progress.
struct Hashing<'a, R> {
    inner: R,
    hasher: sha2::Sha256,
    read: u64,
    sent: &'a mut dyn FnMut(u64),
}

impl<'a, R: std::io::Read> Hashing<'a, R> {
    fn new(inner: R, sent: &'a mut dyn FnMut(u64)) -> Self {
        Hashing {
            inner,
            hasher: <sha2::Sha256 as sha2::Digest>::new(),
            read: 0,
            sent,
        }
    }

    fn finish(self) -> Vec<u8> {
        <sha2::Sha256 as sha2::Digest>::finalize(self.hasher).to_vec()
    }
}

impl<R: std::io::Read> std::io::Read for Hashing<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        <sha2::Sha256 as sha2::Digest>::update(&mut self.hasher, &buf[..n]);
        self.read += n as u64;
        (self.sent)(n as u64);
        Ok(n)
    }
}
