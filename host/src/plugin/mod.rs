//! Sandboxed WebAssembly plugins: site renderers and lifecycle callbacks.
//!
//! One [`PluginEngine`] per process (one wasmtime `Engine`, one epoch ticker, one linker). A plugin is
//! loaded once (hash checked, WIT version checked, compiled or taken from the on-disk cache, imports
//! resolved into an `InstancePre`, all off the async threads) and then every call gets a fresh `Store`
//! with its own limits, so one call's trap or exhausted memory cannot leak into the next. Plugins speak
//! the WIT's own generated types ([`crate::wit`]). Whatever a plugin does, the host gets a
//! [`PluginError`] naming the plugin, what it was doing and why it failed, and carries on.

pub mod cache;
pub mod callbacks;
pub mod caps;
pub mod compat;
pub mod compile;
pub mod convert;
mod engine;
pub mod inspect;
pub mod policy;
pub mod renderer;
pub mod spec;
mod symlinks;

use std::path::PathBuf;
use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

pub use caps::{Capabilities, Limits};
pub use engine::PluginEngine;
pub use spec::PluginSpec;

use crate::error::{Diagnose, exit};
use crate::wit::latest::{VERSION as WIT_VERSION, host};

/// The WIT package name plugins import.
pub const WIT_PACKAGE: &str = "slurmkit:plugin";

/// The WIT version this host implements, as text.
pub fn wit_version() -> String {
    let (major, minor, patch) = WIT_VERSION;
    format!("{major}.{minor}.{patch}")
}

#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("cannot read plugin {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("plugin {path} does not match its pinned sha256: expected {expected}, found {actual}")]
    HashMismatch {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("plugin {name} is not a WebAssembly component: {reason}")]
    NotAComponent { name: String, reason: String },
    #[error(
        "plugin {name} targets {WIT_PACKAGE}@{targets}, which this slurmkit cannot load: it loads {accepted}"
    )]
    Incompatible {
        name: String,
        targets: String,
        /// The versions this host loads, in words.
        accepted: String,
    },
    #[error("plugin {name} is not a {expected} plugin: it exports {found}")]
    WrongWorld {
        name: String,
        expected: &'static str,
        found: String,
    },
    #[error(
        "plugin {name} imports `{import}`, which slurmkit does not provide (plugins may import only {WIT_PACKAGE}/host and WASI 0.2 interfaces)"
    )]
    MissingImport { name: String, import: String },
    #[error(
        "plugin {name} imports `{import}` with a signature slurmkit does not provide ({detail}): it was built against different WIT than the version it names"
    )]
    ImportMismatch {
        name: String,
        import: String,
        detail: String,
    },
    #[error(transparent)]
    Grant(#[from] caps::GrantError),
    #[error("plugin {name} could not be loaded: {message}")]
    Load { name: String, message: String },
    #[error(
        "plugin {name} is too large to compile within bounds: {what}, over the limit of {limit} bytes"
    )]
    TooLarge {
        name: String,
        what: String,
        limit: usize,
    },
    #[error("compiling plugin {name} went past its {limit} limit ({value})")]
    CompileLimit {
        name: String,
        limit: &'static str,
        value: String,
        /// The `limits` key that raises it.
        setting: &'static str,
    },
    #[error("plugin {plugin} failed during {during}: {cause}")]
    Failed {
        plugin: String,
        during: String,
        cause: String,
    },
    #[error("plugin {plugin} refused the job: {message}")]
    Refused { plugin: String, message: String },
    #[error("plugin {plugin} returned an unusable result: {message}")]
    Invalid { plugin: String, message: String },
    #[error("site policy {policy} refused the job: {message}")]
    PolicyRefused { policy: String, message: String },
    #[error("site policy {policy} returned an unusable job from {during}: field {field}", field = source.field())]
    PolicyAmend {
        policy: String,
        during: &'static str,
        source: convert::AmendError,
    },
    #[error(
        "policy {plugin} was built against {WIT_PACKAGE}@{version}, which has no policy world: a policy must be built against {WIT_PACKAGE}@0.2.x (this slurmkit's is {})",
        wit_version()
    )]
    PolicyTooOld { plugin: String, version: String },
    #[error(
        "renderer {plugin} was built against {WIT_PACKAGE}@{version}, which has no {lacks}; rebuild it against {}",
        wit_version()
    )]
    TooOld {
        plugin: String,
        version: String,
        /// What the job needs that the version lacks, in words (`containers`).
        lacks: &'static str,
    },
}

impl Diagnose for PluginError {
    fn exit_code(&self) -> u8 {
        match self {
            PluginError::Grant(e) => e.exit_code(),
            _ => exit::PLUGIN,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            PluginError::HashMismatch { actual, .. } => Some(format!(
                "if this file is the version you intend to run, update the Slurmfile's sha256 to {actual}; otherwise restore the pinned file"
            )),
            PluginError::Incompatible { .. } => {
                Some("rebuild the plugin against the WIT in this slurmkit's wit/ directory".into())
            }
            PluginError::MissingImport { .. } => Some(
                "JavaScript plugins built with componentize-js need `-d http fetch-event` (or disableFeatures) so they do not import wasi:http".into(),
            ),
            PluginError::CompileLimit { setting, .. } => Some(format!(
                "if the plugin is trusted and just large, raise the limit in its Slurmfile entry: limits = {{ {setting} = ... }} (compiling happens once; the result is cached)"
            )),
            PluginError::TooLarge { .. } => Some(
                "build the plugin smaller (optimise for size, leave out what it does not use); components this large take minutes and gigabytes to compile".into(),
            ),
            PluginError::ImportMismatch { .. } => Some(
                "rebuild the plugin against the WIT in this slurmkit's wit/ directory, unchanged".into(),
            ),
            PluginError::PolicyRefused { .. } => Some(
                "the site's policy decides what may be submitted here: change the job as its message says, or ask the site's administrators".into(),
            ),
            PluginError::PolicyTooOld { .. } => Some(
                "rebuild the policy against the WIT in this slurmkit's wit/ directory, world `policy`".into(),
            ),
            PluginError::Failed { .. } => Some(
                "`slurmkit plugin check <file.wasm>` runs the plugin on sample input under the same limits".into(),
            ),
            _ => None,
        }
    }
}

/// The WASI and host-import state of one call.
pub struct PluginState {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: caps::MemoryLimiter,
    name: Arc<str>,
    config: Arc<Vec<(String, String)>>,
    /// Output bytes (log messages) this call may still write.
    output_left: usize,
    output_exceeded: bool,
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl host::Host for PluginState {
    async fn log(&mut self, level: host::Level, message: String) -> wasmtime::Result<()> {
        if message.len() > self.output_left {
            self.output_exceeded = true;
            self.output_left = 0;
            return Err(wasmtime::format_err!("output limit exceeded"));
        }
        self.output_left -= message.len();
        let plugin = &*self.name;
        // One line per call, whatever the message holds: it cannot forge a line of slurmkit's own.
        let message = crate::types::text::escape_controls(&message);
        match level {
            host::Level::Trace => tracing::trace!(plugin, "{message}"),
            host::Level::Debug => tracing::debug!(plugin, "{message}"),
            host::Level::Info => tracing::info!(plugin, "{message}"),
            host::Level::Warn => tracing::warn!(plugin, "{message}"),
            host::Level::Error => tracing::error!(plugin, "{message}"),
        }
        Ok(())
    }

    async fn config(&mut self) -> wasmtime::Result<Vec<(String, String)>> {
        Ok(self.config.as_ref().clone())
    }
}

/// Components built against 0.1 call the same host functions through their own bindings.
impl crate::wit::v0_1_0::host::Host for PluginState {
    async fn log(
        &mut self,
        level: crate::wit::v0_1_0::host::Level,
        message: String,
    ) -> wasmtime::Result<()> {
        use crate::wit::v0_1_0::host::Level as Old;
        let level = match level {
            Old::Trace => host::Level::Trace,
            Old::Debug => host::Level::Debug,
            Old::Info => host::Level::Info,
            Old::Warn => host::Level::Warn,
            Old::Error => host::Level::Error,
        };
        host::Host::log(self, level, message).await
    }

    async fn config(&mut self) -> wasmtime::Result<Vec<(String, String)>> {
        host::Host::config(self).await
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// `callbacks/ledger.wasm` → `ledger`.
pub fn file_stem(path: &std::path::Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}
