//! Compiled components on disk, so a plugin is compiled once, not on every CLI run (a Python or
//! JavaScript component takes 10-14 s to compile on two cores; loading the artifact takes milliseconds).
//!
//! An artifact is keyed by the component's sha256 and the engine's precompile-compatibility hash, so a
//! different wasmtime version or configuration never reads it. Deserializing native code is only safe
//! for artifacts this host wrote: the cache directory is created private (0700), artifacts are written
//! atomically, and one that is not a regular file owned by this user, or is writable by others, is
//! ignored and rebuilt.

use std::hash::{Hash, Hasher};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use wasmtime::Engine;
use wasmtime::component::Component;

pub struct ComponentCache {
    dir: PathBuf,
    engine_key: String,
}

impl ComponentCache {
    pub fn new(dir: PathBuf, engine: &Engine) -> Self {
        let mut hasher = Sha256Hasher::default();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let engine_key = hasher.hex()[..16].to_string();
        ComponentCache { dir, engine_key }
    }

    /// Where the compiled form of the component with this hash lives.
    pub fn path_for(&self, sha256: &str) -> PathBuf {
        self.dir.join(format!("{sha256}-{}.cwasm", self.engine_key))
    }

    /// Whether a compiled form this host can trust is there: loading it compiles nothing.
    pub fn has(&self, sha256: &str) -> bool {
        trusted_artifact(&self.path_for(sha256))
    }

    /// Create the cache directory (private) if needed.
    pub fn ensure_dir(&self) -> std::io::Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        // Created private; an existing directory is left as it is (it may be one the user chose, like
        // a project directory), and artifacts in a directory others can write are never loaded.
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
    }

    /// The compiled component for `bytes`, from the cache or compiled now (and cached).
    pub fn load(&self, engine: &Engine, bytes: &[u8], sha256: &str) -> wasmtime::Result<Component> {
        let path = self.path_for(sha256);
        if trusted_artifact(&path) {
            // SAFETY: the artifact is a file this host wrote with `precompile_component` (private
            // directory, owned by us, not writable by others) for this exact engine configuration.
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(component) => {
                    tracing::debug!("loaded compiled plugin from {}", path.display());
                    return Ok(component);
                }
                Err(e) => tracing::warn!(
                    "ignoring unreadable compiled plugin {}: {e}",
                    path.display()
                ),
            }
        }
        let started = std::time::Instant::now();
        let artifact = engine.precompile_component(bytes)?;
        tracing::debug!("compiled plugin {sha256} in {:?}", started.elapsed());
        if let Err(e) = self.store(&path, &artifact) {
            tracing::warn!(
                "cannot cache the compiled plugin in {}: {e}",
                self.dir.display()
            );
        }
        // SAFETY: `artifact` was produced just now by this engine.
        unsafe { Component::deserialize(engine, &artifact) }
    }

    fn store(&self, path: &Path, artifact: &[u8]) -> std::io::Result<()> {
        self.ensure_dir()?;
        store_artifact(path, artifact)
    }
}

/// Write a compiled artifact atomically, private to this user.
pub fn store_artifact(path: &Path, artifact: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    let temporary = dir.join(format!(".{:016x}.tmp", rand::random::<u64>()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temporary)?;
    let written = file
        .write_all(artifact)
        .and_then(|()| file.sync_all())
        .and_then(|()| std::fs::rename(&temporary, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written
}

/// Only a regular file owned by us, in a directory owned by us, neither writable by anyone else.
fn trusted_artifact(path: &Path) -> bool {
    let uid = crate::local_user::uid().unwrap_or(u32::MAX);
    let ok = |meta: std::fs::Metadata| meta.uid() == uid && meta.permissions().mode() & 0o022 == 0;
    let file_ok = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_file() && ok(m));
    let dir_ok = path
        .parent()
        .and_then(|d| std::fs::symlink_metadata(d).ok())
        .is_some_and(|m| m.is_dir() && ok(m));
    file_ok && dir_ok
}

/// Feeds `Hash` into SHA-256 so the engine key is stable across runs.
#[derive(Default)]
struct Sha256Hasher(sha2::Sha256);

impl Sha256Hasher {
    fn hex(self) -> String {
        use sha2::Digest;
        hex::encode(self.0.finalize())
    }
}

impl Hasher for Sha256Hasher {
    fn finish(&self) -> u64 {
        0
    }
    fn write(&mut self, bytes: &[u8]) {
        use sha2::Digest;
        self.0.update(bytes);
    }
}
