//! Sandboxed WebAssembly plugins: site renderers and lifecycle callbacks.
//!
//! One [`PluginEngine`] per process (one wasmtime `Engine`, one epoch ticker). A plugin is loaded once
//! (hash checked, WIT version checked, compiled or taken from the on-disk cache, imports resolved into an
//! `InstancePre`) and then every call gets a fresh `Store` with its own limits, so one call's trap or
//! exhausted memory cannot leak into the next. Whatever a plugin does, the host gets a [`PluginError`]
//! naming the plugin, what it was doing and why it failed, and carries on.

mod bindings;
pub mod cache;
pub mod callbacks;
pub mod caps;
pub mod convert;
pub mod renderer;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Engine, Store};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

pub use bindings::v0_1_0::VERSION as WIT_VERSION;

use crate::config::{CallbackSettings, Grants, LimitSettings, RendererSettings, Slurmfile};
pub use caps::{Capabilities, Limits};
pub use convert::EventKind;

use bindings::v0_1_0::host;

/// The WIT package name plugins import.
pub const WIT_PACKAGE: &str = "slurmkit:plugin";

/// How often the epoch ticks; a plugin's deadline is counted in ticks.
const EPOCH_TICK: Duration = Duration::from_millis(10);

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
        "plugin {name} targets {WIT_PACKAGE}@{targets}, which this slurmkit cannot load: it supports {WIT_PACKAGE}@{supported} (same major version, this minor or older)"
    )]
    Incompatible {
        name: String,
        targets: String,
        supported: String,
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
    #[error(transparent)]
    Grant(#[from] caps::GrantError),
    #[error("plugin {name} could not be loaded: {message}")]
    Load { name: String, message: String },
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
}

impl PluginError {
    pub fn hint(&self) -> Option<String> {
        match self {
            PluginError::HashMismatch { actual, .. } => Some(format!(
                "if this file is the version you intend to run, update the Slurmfile's sha256 to {actual}; otherwise restore the pinned file"
            )),
            PluginError::Incompatible { .. } => Some("rebuild the plugin against the WIT in this slurmkit's wit/ directory".into()),
            PluginError::MissingImport { .. } => Some(
                "JavaScript plugins built with componentize-js need `-d http fetch-event` (or disableFeatures) so they do not import wasi:http".into(),
            ),
            PluginError::Failed { .. } => Some("`slurmkit plugin check <file.wasm>` runs the plugin on sample input under the same limits".into()),
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

/// Where a plugin came from and what it may do.
#[derive(Debug, Clone)]
pub struct PluginSpec {
    /// Name for logs, errors and the journal.
    pub name: String,
    /// `builtin` or the file's path.
    pub origin: String,
    pub bytes: Arc<Vec<u8>>,
    pub sha256: String,
    pub config: Vec<(String, String)>,
    pub capabilities: Capabilities,
    pub limits: Limits,
}

impl PluginSpec {
    /// Read a plugin file and check it against its pinned hash, if one is given.
    pub fn from_file(
        name: &str,
        path: &Path,
        pinned_sha256: Option<&str>,
    ) -> Result<PluginSpec, PluginError> {
        let bytes = std::fs::read(path).map_err(|source| PluginError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let sha256 = sha256_hex(&bytes);
        if let Some(expected) = pinned_sha256 {
            let expected = expected
                .trim()
                .trim_start_matches("sha256:")
                .to_ascii_lowercase();
            if expected != sha256 {
                return Err(PluginError::HashMismatch {
                    path: path.to_path_buf(),
                    expected,
                    actual: sha256,
                });
            }
        }
        Ok(PluginSpec {
            name: name.to_string(),
            origin: path.display().to_string(),
            bytes: Arc::new(bytes),
            sha256,
            config: Vec::new(),
            capabilities: Capabilities::none(),
            limits: Limits::default(),
        })
    }

    /// What the journal records about the plugin.
    pub fn provenance(&self) -> String {
        format!("{} sha256:{}", self.origin, self.sha256)
    }
}

/// The renderer a Slurmfile configures: its file (checked against its pin), config, grants and limits.
pub fn renderer_spec(
    file: &Slurmfile,
    settings: &RendererSettings,
) -> Result<PluginSpec, PluginError> {
    let path = file.resolve_path(&settings.plugin);
    let name = file_stem(&path);
    configured(
        file,
        &name,
        &path,
        settings.sha256.as_deref(),
        settings.config.as_ref(),
        settings.grants.as_ref(),
        settings.limits.as_ref(),
    )
}

/// A `[[callbacks]]` entry's name: its `name`, or its file's stem.
pub fn callback_name(file: &Slurmfile, settings: &CallbackSettings) -> String {
    settings
        .name
        .clone()
        .unwrap_or_else(|| file_stem(&file.resolve_path(&settings.plugin)))
}

/// A callback a Slurmfile configures.
pub fn callback_spec(
    file: &Slurmfile,
    settings: &CallbackSettings,
) -> Result<PluginSpec, PluginError> {
    let path = file.resolve_path(&settings.plugin);
    let name = callback_name(file, settings);
    configured(
        file,
        &name,
        &path,
        settings.sha256.as_deref(),
        settings.config.as_ref(),
        settings.grants.as_ref(),
        settings.limits.as_ref(),
    )
}

fn configured(
    file: &Slurmfile,
    name: &str,
    path: &Path,
    sha256: Option<&str>,
    config: Option<&toml::Table>,
    grants: Option<&Grants>,
    limits: Option<&LimitSettings>,
) -> Result<PluginSpec, PluginError> {
    let mut spec = PluginSpec::from_file(name, path, sha256)?;
    spec.config = callbacks::config_pairs(name, config)?;
    if let Some(grants) = grants {
        spec.capabilities = Capabilities::from_grants(name, grants, &file.dir)?;
    }
    spec.limits = Limits::from_settings(limits);
    Ok(spec)
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// The process-wide wasmtime engine, its epoch ticker and the compiled-component cache.
pub struct PluginEngine {
    engine: Engine,
    cache: Option<cache::ComponentCache>,
    ticker_stop: Arc<AtomicBool>,
}

impl Drop for PluginEngine {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

impl PluginEngine {
    /// `cache_dir`: where compiled components are kept between runs (`None`: compile every time).
    pub fn new(cache_dir: Option<PathBuf>) -> Result<PluginEngine, PluginError> {
        let mut config = wasmtime::Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(true);
        // Reserve address space in proportion to the default memory cap instead of wasmtime's 4 GiB per
        // memory: login nodes often limit virtual memory (`ulimit -v`). Memories past it move on growth.
        config.memory_reservation(caps::DEFAULT_MEMORY as u64);
        config.memory_guard_size(64 << 10);
        config.memory_reservation_for_growth(1 << 20);
        config.max_wasm_stack(1 << 20);
        let engine = Engine::new(&config).map_err(|e| PluginError::Load {
            name: "engine".into(),
            message: e.to_string(),
        })?;
        let ticker_stop = Arc::new(AtomicBool::new(false));
        let (weak, stop) = (engine.weak(), ticker_stop.clone());
        std::thread::Builder::new()
            .name("slurmkit-epoch".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    match weak.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                }
            })
            .map_err(|e| PluginError::Load {
                name: "engine".into(),
                message: e.to_string(),
            })?;
        let cache = cache_dir.map(|dir| cache::ComponentCache::new(dir, &engine));
        Ok(PluginEngine {
            engine,
            cache,
            ticker_stop,
        })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Compile (or fetch from the cache) and check a plugin's WIT version.
    fn component(&self, spec: &PluginSpec) -> Result<Component, PluginError> {
        if wasmparser::Parser::is_core_wasm(&spec.bytes) {
            return Err(PluginError::NotAComponent {
                name: spec.name.clone(),
                reason: "it is a core module; build it as a component (wasm32-wasip2, or `wasm-tools component new`)".into(),
            });
        }
        if !wasmparser::Parser::is_component(&spec.bytes) {
            return Err(PluginError::NotAComponent {
                name: spec.name.clone(),
                reason: "it is not WebAssembly".into(),
            });
        }
        let component = match &self.cache {
            Some(cache) => cache.load(&self.engine, &spec.bytes, &spec.sha256),
            None => Component::new(&self.engine, spec.bytes.as_slice()),
        }
        .map_err(|e| PluginError::NotAComponent {
            name: spec.name.clone(),
            reason: format!("{e:#}"),
        })?;
        check_version(&spec.name, &self.engine, &component)?;
        Ok(component)
    }

    /// A linker with WASI (nothing granted unless the store's context grants it) and the host imports.
    fn linker(&self) -> Result<Linker<PluginState>, PluginError> {
        let mut linker = Linker::new(&self.engine);
        let err = |e: wasmtime::Error| PluginError::Load {
            name: "linker".into(),
            message: e.to_string(),
        };
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(err)?;
        host::add_to_linker::<PluginState, wasmtime::component::HasSelf<PluginState>>(
            &mut linker,
            |s| s,
        )
        .map_err(err)?;
        Ok(linker)
    }

    /// A fresh store for one call of `spec`, with its capabilities and limits. Returns the output pipes too.
    fn store(
        &self,
        spec: &PluginSpec,
        config: Arc<Vec<(String, String)>>,
    ) -> Result<(Store<PluginState>, Output), PluginError> {
        let stdout = MemoryOutputPipe::new(spec.limits.output);
        let stderr = MemoryOutputPipe::new(spec.limits.output);
        let wasi = spec
            .capabilities
            .wasi_ctx(stdout.clone(), stderr.clone())
            .map_err(|e| PluginError::Load {
                name: spec.name.clone(),
                message: e.to_string(),
            })?;
        let state = PluginState {
            wasi,
            table: ResourceTable::new(),
            limiter: caps::MemoryLimiter::new(spec.limits.memory),
            name: Arc::from(spec.name.as_str()),
            config,
            output_left: spec.limits.output,
            output_exceeded: false,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.limiter);
        let ticks = spec
            .limits
            .timeout
            .as_millis()
            .div_ceil(EPOCH_TICK.as_millis()) as u64
            + 1;
        store.set_epoch_deadline(ticks);
        store.epoch_deadline_trap();
        Ok((store, Output { stdout, stderr }))
    }

    /// Run one guest call under the plugin's wall-time limit. Epochs stop a guest spinning in wasm; the
    /// timeout also covers time spent in host calls, which epochs cannot interrupt. A little slack lets
    /// the epoch trap (the more precise report) win when both would fire.
    async fn with_deadline<T>(
        &self,
        spec: &PluginSpec,
        call: impl Future<Output = wasmtime::Result<T>>,
    ) -> CallOutcome<T> {
        tokio::time::timeout(spec.limits.timeout + Duration::from_millis(250), call)
            .await
            .ok()
    }

    /// Turn a call's outcome into the value or a [`PluginError`] that says why it failed.
    fn settle<T>(
        &self,
        spec: &PluginSpec,
        during: &str,
        store: &Store<PluginState>,
        output: &Output,
        outcome: CallOutcome<T>,
    ) -> Result<T, PluginError> {
        output.forward(&spec.name);
        let failed = |cause: String| PluginError::Failed {
            plugin: spec.name.clone(),
            during: during.to_string(),
            cause,
        };
        match outcome {
            None => Err(failed(format!(
                "it did not finish within its {:?} time limit",
                spec.limits.timeout
            ))),
            Some(Ok(value)) => Ok(value),
            Some(Err(error)) => Err(failed(describe_failure(&error, store.data(), spec, output))),
        }
    }
}

/// A guest call's result, or `None` if it ran out of time.
type CallOutcome<T> = Option<wasmtime::Result<T>>;

/// Captured stdout/stderr of one call.
struct Output {
    stdout: MemoryOutputPipe,
    stderr: MemoryOutputPipe,
}

impl Output {
    /// Send the plugin's stdout and stderr to the log, line by line.
    fn forward(&self, plugin: &str) {
        for (stream, pipe) in [("stdout", &self.stdout), ("stderr", &self.stderr)] {
            let bytes = pipe.contents();
            for line in String::from_utf8_lossy(&bytes)
                .lines()
                .filter(|l| !l.trim().is_empty())
            {
                tracing::info!(plugin, stream, "{line}");
            }
        }
    }

    fn stderr_tail(&self) -> Option<String> {
        let bytes = self.stderr.contents();
        let text = String::from_utf8_lossy(&bytes);
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        (!lines.is_empty()).then(|| lines[lines.len().saturating_sub(3)..].join(" | "))
    }
}

/// Words for why a call failed, most specific first.
fn describe_failure(
    error: &wasmtime::Error,
    state: &PluginState,
    spec: &PluginSpec,
    output: &Output,
) -> String {
    let mut cause = if state.output_exceeded {
        format!(
            "it exceeded its output limit ({} bytes of log per call)",
            spec.limits.output
        )
    } else if let Some(wanted) = state.limiter.refused {
        format!(
            "it ran out of memory: it tried to grow to {} MiB, past its {} MiB limit",
            wanted >> 20,
            spec.limits.memory >> 20
        )
    } else {
        match error.downcast_ref::<wasmtime::Trap>() {
            Some(wasmtime::Trap::Interrupt) => format!(
                "it did not finish within its {:?} time limit",
                spec.limits.timeout
            ),
            Some(wasmtime::Trap::StackOverflow) => {
                "it overflowed its stack (runaway recursion?)".to_string()
            }
            Some(wasmtime::Trap::UnreachableCodeReached) => {
                "it trapped (panicked or aborted)".to_string()
            }
            // Compiled languages keep their own stack in linear memory; overflowing it lands here.
            Some(wasmtime::Trap::MemoryOutOfBounds) => {
                "it accessed memory out of bounds (its shadow stack overflowed, or it has a memory bug)".to_string()
            }
            Some(trap) => format!("it trapped: {trap}"),
            None => format!("{error:#}"),
        }
    };
    if let Some(tail) = output.stderr_tail() {
        cause.push_str(&format!("; its stderr ends: {tail}"));
    }
    cause
}

/// Check the `slurmkit:plugin` version a component was built against.
fn check_version(name: &str, engine: &Engine, component: &Component) -> Result<(), PluginError> {
    let (major, minor, patch) = WIT_VERSION;
    let supported = format!("{major}.{minor}.{patch}");
    for (import, _) in component.component_type().imports(engine) {
        let Some(rest) = import
            .strip_prefix(WIT_PACKAGE)
            .and_then(|r| r.strip_prefix('/'))
        else {
            continue;
        };
        let Some((_, version)) = rest.split_once('@') else {
            return Err(PluginError::Incompatible {
                name: name.into(),
                targets: "(no version)".into(),
                supported,
            });
        };
        let mut parts = version
            .split('.')
            .map(|p| p.split(['-', '+']).next().unwrap_or("").parse::<u64>().ok());
        let compatible = match (parts.next().flatten(), parts.next().flatten()) {
            (Some(m), Some(n)) => m == major && n <= minor && (major != 0 || n == minor),
            _ => false,
        };
        if !compatible {
            return Err(PluginError::Incompatible {
                name: name.into(),
                targets: version.to_string(),
                supported,
            });
        }
    }
    Ok(())
}

/// What `slurmkit plugin inspect` shows.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Inspection {
    pub path: String,
    pub size: u64,
    pub sha256: String,
    /// `renderer`, `callbacks` or `unknown`.
    pub world: String,
    pub wit_version: Option<String>,
    pub imports: Vec<String>,
    pub exports: Vec<String>,
}

impl PluginEngine {
    pub fn inspect(&self, path: &Path) -> Result<Inspection, PluginError> {
        let spec = PluginSpec::from_file(&file_stem(path), path, None)?;
        let component = match self.component(&spec) {
            Err(PluginError::Incompatible { .. }) => {
                Component::new(&self.engine, spec.bytes.as_slice()).map_err(|e| {
                    PluginError::NotAComponent {
                        name: spec.name.clone(),
                        reason: e.to_string(),
                    }
                })?
            }
            other => other?,
        };
        let ty = component.component_type();
        let imports: Vec<String> = ty
            .imports(&self.engine)
            .map(|(name, _)| name.to_string())
            .collect();
        let exports: Vec<String> = ty
            .exports(&self.engine)
            .filter(|(_, item)| {
                matches!(
                    item.ty,
                    ComponentItem::ComponentFunc(_) | ComponentItem::ComponentInstance(_)
                )
            })
            .map(|(name, _)| name.to_string())
            .collect();
        let has = |n: &str| exports.iter().any(|e| e == n);
        let world = if has("render") {
            "renderer"
        } else if has("on-event") {
            "callbacks"
        } else {
            "unknown"
        };
        let wit_version = imports.iter().find_map(|i| {
            i.strip_prefix(WIT_PACKAGE)?
                .split_once('@')
                .map(|(_, v)| v.to_string())
        });
        Ok(Inspection {
            path: path.display().to_string(),
            size: spec.bytes.len() as u64,
            sha256: spec.sha256,
            world: world.into(),
            wit_version,
            imports,
            exports,
        })
    }
}

/// `callbacks/ledger.wasm` → `ledger`.
pub fn file_stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// The exports of a component, for "wrong world" errors.
fn export_names(engine: &Engine, component: &Component) -> String {
    let names: Vec<String> = component
        .component_type()
        .exports(engine)
        .map(|(name, _)| name.to_string())
        .collect();
    if names.is_empty() {
        "nothing".into()
    } else {
        names.join(", ")
    }
}

/// Map an `instantiate_pre` failure to the import it could not satisfy.
fn link_error(
    name: &str,
    engine: &Engine,
    component: &Component,
    error: wasmtime::Error,
) -> PluginError {
    let text = format!("{error:#}");
    let missing = component
        .component_type()
        .imports(engine)
        .map(|(import, _)| import.to_string())
        .find(|import| text.contains(&format!("`{import}`")));
    match missing {
        Some(import) => PluginError::MissingImport {
            name: name.to_string(),
            import,
        },
        None => PluginError::Load {
            name: name.to_string(),
            message: text,
        },
    }
}
