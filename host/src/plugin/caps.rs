//! What a plugin may touch, and how much it may use. Closed by default, like `WasiCtxBuilder::new()`:
//! no environment, no directories, no network, a fixed clock. Each capability is opened only by a
//! Slurmfile grant, and the limits bound memory (all of the plugin's linear memories together), wall
//! time per call and output.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{FsPerms, HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxBuilder};

use crate::config::{Grants, LimitSettings};
use crate::error::{Diagnose, exit};

pub const DEFAULT_MEMORY: usize = 64 << 20;
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
pub const DEFAULT_OUTPUT: usize = 64 << 10;
/// Compiling: wall time, and address space of the compiling process. The JavaScript example compiles in
/// 13 s and peaks at 850 MB on two idle cores.
pub const DEFAULT_COMPILE_TIME: Duration = Duration::from_secs(300);
pub const DEFAULT_COMPILE_MEMORY: usize = 4 << 30;

/// Per-plugin limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of linear memory, summed over every memory the plugin has.
    pub memory: usize,
    /// Wall time for one call (instantiation included).
    pub timeout: Duration,
    /// Bytes per call of `log` messages, and of stdout and of stderr each.
    pub output: usize,
    /// Wall time to compile the component (once; the result is cached).
    pub compile_time: Duration,
    /// Address space of the process that compiles it.
    pub compile_memory: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory: DEFAULT_MEMORY,
            timeout: DEFAULT_TIMEOUT,
            output: DEFAULT_OUTPUT,
            compile_time: DEFAULT_COMPILE_TIME,
            compile_memory: DEFAULT_COMPILE_MEMORY,
        }
    }
}

impl Limits {
    pub fn from_settings(settings: Option<&LimitSettings>) -> Self {
        let defaults = Limits::default();
        let Some(settings) = settings else {
            return defaults;
        };
        Limits {
            memory: settings.memory.map_or(defaults.memory, |m| {
                (m.mebibytes() as usize).saturating_mul(1 << 20)
            }),
            timeout: settings.timeout.map_or(defaults.timeout, |t| t.0),
            output: settings.output.map_or(defaults.output, |o| o.0 as usize),
            compile_time: settings.compile_time.map_or(defaults.compile_time, |t| t.0),
            compile_memory: settings
                .compile_memory
                .map_or(defaults.compile_memory, |m| {
                    (m.mebibytes() as usize).saturating_mul(1 << 20)
                }),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("grant {grant:?} of plugin {plugin}: {reason}")]
pub struct GrantError {
    pub plugin: String,
    pub grant: String,
    pub reason: String,
}

impl Diagnose for GrantError {
    fn exit_code(&self) -> u8 {
        exit::PLUGIN
    }
}

/// A directory opened to the plugin.
#[derive(Debug, Clone)]
pub struct Preopen {
    pub host: PathBuf,
    /// The path the plugin sees: the grant as written, normalized (`./ledger` → `ledger`).
    pub guest: String,
    pub writable: bool,
    /// The directory, held open since it was checked. Every call opens it again through
    /// `/proc/self/fd/N`, which names this very directory however its path changes since: a plugin (or
    /// another process) that swaps a directory on the path for a symlink gains nothing.
    handle: Option<Arc<std::fs::File>>,
}

impl Preopen {
    /// The path to open for a call: the held directory where `/proc` can name it, else `host` once
    /// more checked to resolve to itself.
    fn path_for_call(&self) -> std::io::Result<PathBuf> {
        if let Some(handle) = &self.handle {
            return Ok(fd_path(handle));
        }
        let resolved = std::fs::canonicalize(&self.host)?;
        if resolved != self.host {
            return Err(std::io::Error::other(format!(
                "granted directory {} now resolves to {}; refusing to open it",
                self.host.display(),
                resolved.display()
            )));
        }
        Ok(self.host.clone())
    }
}

fn fd_path(file: &std::fs::File) -> PathBuf {
    use std::os::fd::AsRawFd;
    PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()))
}

/// Open `host` and check that what was opened is `host` itself (no link swapped in meanwhile). `None`
/// where `/proc` cannot name open files; the caller then re-checks the path before every call.
fn hold_directory(host: &Path) -> Result<Option<Arc<std::fs::File>>, String> {
    let file =
        std::fs::File::open(host).map_err(|e| format!("cannot open {}: {e}", host.display()))?;
    match std::fs::read_link(fd_path(&file)) {
        Ok(opened) if opened == host => Ok(Some(Arc::new(file))),
        Ok(opened) => Err(format!(
            "{} resolved to {} while it was opened",
            host.display(),
            opened.display()
        )),
        Err(_) => Ok(None),
    }
}

/// Everything a plugin may reach beyond its own memory.
#[derive(Debug, Clone, Default)]
pub struct Capabilities {
    pub env: Vec<(String, String)>,
    pub preopens: Vec<Preopen>,
    pub clock: bool,
}

impl Capabilities {
    /// Nothing at all: what renderers and ungranted callbacks get.
    pub fn none() -> Self {
        Capabilities::default()
    }

    /// Turn Slurmfile grants into capabilities. Directories are relative to `project_dir` and may not
    /// leave it; write grants are created if missing, read grants must exist.
    pub fn from_grants(
        plugin: &str,
        grants: &Grants,
        project_dir: &Path,
    ) -> Result<Self, GrantError> {
        let error = |grant: &str, reason: String| GrantError {
            plugin: plugin.to_string(),
            grant: grant.to_string(),
            reason,
        };
        let mut env = Vec::new();
        for name in &grants.env {
            let valid =
                !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !valid {
                return Err(error(name, "is not an environment variable name".into()));
            }
            match std::env::var(name) {
                Ok(value) => env.push((name.clone(), value)),
                Err(_) => tracing::warn!(
                    "plugin {plugin}: granted environment variable {name} is not set here"
                ),
            }
        }
        let mut preopens = Vec::new();
        for (written, writable) in grants
            .read
            .iter()
            .map(|p| (p, false))
            .chain(grants.write.iter().map(|p| (p, true)))
        {
            let (host, guest) =
                confine(written, project_dir).map_err(|reason| error(written, reason))?;
            if writable && !host.exists() {
                std::fs::create_dir_all(&host).map_err(|e| {
                    error(written, format!("cannot create {}: {e}", host.display()))
                })?;
            }
            if !host.is_dir() {
                return Err(error(
                    written,
                    format!("{} is not a directory", host.display()),
                ));
            }
            // Resolve links only now that the directory exists, and check again.
            let (host, _) =
                confine(written, project_dir).map_err(|reason| error(written, reason))?;
            let handle = hold_directory(&host).map_err(|reason| error(written, reason))?;
            preopens.push(Preopen {
                host,
                guest,
                writable,
                handle,
            });
        }
        Ok(Capabilities {
            env,
            preopens,
            clock: grants.clock,
        })
    }

    /// The WASI context for one call, with output captured into the given pipes.
    pub fn wasi_ctx(
        &self,
        stdout: MemoryOutputPipe,
        stderr: MemoryOutputPipe,
    ) -> Result<WasiCtx, std::io::Error> {
        let mut builder = WasiCtxBuilder::new();
        builder.stdout(stdout).stderr(stderr);
        for (name, value) in &self.env {
            builder.env(name, value);
        }
        for preopen in &self.preopens {
            let path = preopen.path_for_call()?;
            let perms = if preopen.writable {
                FsPerms::ReadWrite
            } else {
                FsPerms::ReadOnly
            };
            builder
                .preopened_dir(&path, &preopen.guest, perms)
                .map_err(|e| {
                    std::io::Error::other(format!(
                        "cannot open {} for the plugin: {e}",
                        preopen.host.display()
                    ))
                })?;
        }
        if !self.clock {
            builder.wall_clock(FixedClock).monotonic_clock(FixedClock);
        }
        Ok(builder.build())
    }
}

/// Normalize `written` lexically, refuse absolute paths and `..` escapes, then check that the deepest
/// existing ancestor, with links resolved, is still inside `project_dir`.
fn confine(written: &str, project_dir: &Path) -> Result<(PathBuf, String), String> {
    let path = Path::new(written);
    if path.is_absolute() {
        return Err("must be a path relative to the Slurmfile's directory".into());
    }
    let mut parts: Vec<String> = Vec::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::Normal(part) => parts.push(part.to_string_lossy().into_owned()),
            Component::ParentDir => {
                if parts.pop().is_none() {
                    return Err("leaves the Slurmfile's directory".into());
                }
            }
            Component::RootDir | Component::Prefix(_) => return Err("must be relative".into()),
        }
    }
    if parts.is_empty() {
        return Err("grants the whole project directory; name a subdirectory".into());
    }
    let root = project_dir
        .canonicalize()
        .map_err(|e| format!("cannot resolve {}: {e}", project_dir.display()))?;
    let host = parts.iter().fold(root.clone(), |acc, part| acc.join(part));
    let existing = host.ancestors().find(|p| p.exists()).unwrap_or(&root);
    let resolved = existing
        .canonicalize()
        .map_err(|e| format!("cannot resolve {}: {e}", existing.display()))?;
    if !resolved.starts_with(&root) {
        return Err(format!(
            "resolves to {}, outside the Slurmfile's directory",
            resolved.display()
        ));
    }
    let host = if existing == host { resolved } else { host };
    Ok((host, parts.join("/")))
}

/// The time a plugin sees without a clock grant: the Unix epoch, forever.
struct FixedClock;

impl HostWallClock for FixedClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl HostMonotonicClock for FixedClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }
    fn now(&self) -> u64 {
        0
    }
}

/// Caps the sum of all linear memories and tables (wasmtime's `StoreLimits` caps each memory separately,
/// a componentize-py guest has several, and a table of a million function references is host memory too),
/// and remembers a refusal so the error can say "out of memory".
#[derive(Debug)]
pub struct MemoryLimiter {
    cap: usize,
    total: usize,
    pub refused: Option<usize>,
}

/// Host bytes per table element: a function reference is a pointer.
const TABLE_ELEMENT_BYTES: usize = 8;

impl MemoryLimiter {
    pub fn new(cap: usize) -> Self {
        MemoryLimiter {
            cap,
            total: 0,
            refused: None,
        }
    }

    /// Grow the running total from `current` to `desired` bytes, if the cap allows.
    fn grow(&mut self, current: usize, desired: usize) -> bool {
        let total = (self.total - current.min(self.total)).saturating_add(desired);
        if total > self.cap {
            self.refused = Some(total);
            return false;
        }
        self.total = total;
        true
    }
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(self.grow(current, desired))
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(self.grow(
            current.saturating_mul(TABLE_ELEMENT_BYTES),
            desired.saturating_mul(TABLE_ELEMENT_BYTES),
        ))
    }

    // Generous for interpreters packaged as components (several core instances each), small enough that
    // counts alone cannot exhaust the host.
    fn instances(&self) -> usize {
        200
    }

    fn memories(&self) -> usize {
        64
    }

    fn tables(&self) -> usize {
        256
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::ResourceLimiter;

    #[test]
    fn tables_count_against_the_same_cap() {
        let mut limiter = MemoryLimiter::new(1 << 20);
        assert!(limiter.memory_growing(0, 1 << 19, None).unwrap());
        assert!(limiter.table_growing(0, 1000, None).unwrap());
        assert!(
            !limiter.table_growing(1000, 1_000_000, None).unwrap(),
            "8 MB of table elements past a 1 MiB cap"
        );
        assert!(limiter.refused.is_some());
    }

    #[test]
    fn memory_cap_is_for_the_sum_of_memories() {
        let mut limiter = MemoryLimiter::new(100);
        assert!(limiter.memory_growing(0, 60, None).unwrap());
        assert!(
            !limiter.memory_growing(0, 60, None).unwrap(),
            "a second memory may not take the total past the cap"
        );
        assert_eq!(limiter.refused, Some(120));
        assert!(limiter.memory_growing(0, 40, None).unwrap());
        assert!(!limiter.memory_growing(60, 61, None).unwrap());
    }

    #[test]
    fn grants_stay_in_the_project() {
        let project = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir(project.path().join("inputs")).unwrap();
        std::os::unix::fs::symlink(outside.path(), project.path().join("escape")).unwrap();
        let grants = |read: &[&str], write: &[&str]| Grants {
            read: read.iter().map(|s| s.to_string()).collect(),
            write: write.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        let caps =
            Capabilities::from_grants("p", &grants(&["./inputs"], &["ledger"]), project.path())
                .unwrap();
        assert_eq!(caps.preopens[0].guest, "inputs");
        assert!(!caps.preopens[0].writable);
        assert!(caps.preopens[1].writable && project.path().join("ledger").is_dir());
        for bad in ["../x", "/etc", "a/../../x", ".", "escape", "escape/sub"] {
            let err = Capabilities::from_grants("p", &grants(&[bad], &[]), project.path());
            assert!(err.is_err(), "{bad} should be refused");
        }
        assert!(
            Capabilities::from_grants("p", &grants(&["missing"], &[]), project.path()).is_err()
        );
    }

    #[test]
    fn a_grant_swapped_for_a_symlink_after_loading_still_opens_the_checked_directory() {
        let project = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(project.path().join("shared/templates")).unwrap();
        let grants = Grants {
            read: vec!["shared/templates".into()],
            ..Default::default()
        };
        let caps = Capabilities::from_grants("p", &grants, project.path()).unwrap();
        let pipe = || MemoryOutputPipe::new(64);
        assert!(caps.wasi_ctx(pipe(), pipe()).is_ok());
        // Swap the directory for a symlink leading out of the project.
        let moved = project.path().join("shared/moved");
        std::fs::rename(project.path().join("shared/templates"), &moved).unwrap();
        std::os::unix::fs::symlink(outside.path(), project.path().join("shared/templates"))
            .unwrap();
        let path = caps.preopens[0].path_for_call().unwrap();
        assert_eq!(
            std::fs::canonicalize(path).unwrap(),
            moved.canonicalize().unwrap(),
            "the held directory, not the link"
        );
        assert!(caps.wasi_ctx(pipe(), pipe()).is_ok());
    }

    #[test]
    fn only_named_variables_are_passed() {
        let grants = Grants {
            env: vec!["PATH".into(), "SLURMKIT_SURELY_UNSET".into()],
            ..Default::default()
        };
        let caps = Capabilities::from_grants("p", &grants, Path::new(".")).unwrap();
        assert_eq!(caps.env.len(), 1);
        assert_eq!(caps.env[0].0, "PATH");
        assert!(
            Capabilities::from_grants(
                "p",
                &Grants {
                    env: vec!["A=B".into()],
                    ..Default::default()
                },
                Path::new(".")
            )
            .is_err()
        );
    }
}
