//! The process-wide wasmtime engine: compiling (off the async threads), linking, and running one call
//! under a plugin's limits.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wasmtime::component::{Component, InstancePre, Linker, ResourceTable};
use wasmtime::{Engine, Store, UpdateDeadline};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;

use super::{PluginError, PluginSpec, PluginState, WIT_PACKAGE, cache, caps, compile, host};
use crate::types::text::{bounded, escape_controls};

/// How often the epoch ticks; a running guest yields to the async runtime at every tick, and its time
/// limit is counted in ticks.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// A future borrowing a call's store.
pub(super) type CallFuture<'s, T> = Pin<Box<dyn Future<Output = wasmtime::Result<T>> + Send + 's>>;

/// The engine, its epoch ticker, its linker and the compiled-component cache. Cheap to clone.
#[derive(Clone)]
pub struct PluginEngine {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    linker: Linker<PluginState>,
    cache: Option<cache::ComponentCache>,
    /// The slurmkit binary, to compile in a child process under limits; `None`: compile in this one.
    compiler: Option<PathBuf>,
    ticker_stop: Arc<AtomicBool>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

impl PluginEngine {
    /// `cache_dir`: where compiled components are kept between runs (`None`: compile every time).
    /// `compiler`: the slurmkit binary, to compile in a child process under each plugin's compile
    /// limits (it writes into the cache, so it needs one); `None`: compile in this process, with only
    /// the size budget to bound it.
    pub fn new(
        cache_dir: Option<PathBuf>,
        compiler: Option<PathBuf>,
    ) -> Result<PluginEngine, PluginError> {
        let load_error = |e: &dyn std::fmt::Display| PluginError::Load {
            name: "engine".into(),
            message: e.to_string(),
        };
        let engine = Engine::new(&compile::engine_config()).map_err(|e| load_error(&e))?;
        // One linker for every plugin: WASI (nothing granted unless a store's context grants it) and
        // the host imports.
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(|e| load_error(&e))?;
        super::symlinks::guard(&mut linker).map_err(|e| load_error(&e))?;
        host::add_to_linker::<PluginState, wasmtime::component::HasSelf<PluginState>>(
            &mut linker,
            |s| s,
        )
        .map_err(|e| load_error(&e))?;
        crate::wit::v0_1_0::host::add_to_linker::<
            PluginState,
            wasmtime::component::HasSelf<PluginState>,
        >(&mut linker, |s| s)
        .map_err(|e| load_error(&e))?;
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
            .map_err(|e| load_error(&e))?;
        let cache = cache_dir.map(|dir| cache::ComponentCache::new(dir, &engine));
        let compiler = compiler.filter(|_| cache.is_some());
        Ok(PluginEngine {
            inner: Arc::new(Inner {
                engine,
                linker,
                cache,
                compiler,
                ticker_stop,
            }),
        })
    }

    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// Whether loading `spec` finds it compiled already (in the cache).
    pub fn is_cached(&self, spec: &PluginSpec) -> bool {
        self.inner
            .cache
            .as_ref()
            .is_some_and(|cache| cache.has(&spec.sha256))
    }

    /// Compile (or fetch from the cache) and link a plugin. Compiling is bounded (see
    /// [`super::compile`]) and never runs on the async threads: it takes seconds and must not stall
    /// the runtime (or Ctrl-C).
    pub(super) async fn prepare(
        &self,
        spec: &PluginSpec,
    ) -> Result<(Component, InstancePre<PluginState>), PluginError> {
        check_is_component(spec)?;
        if let (Some(cache), Some(compiler)) = (&self.inner.cache, &self.inner.compiler)
            && !cache.has(&spec.sha256)
        {
            compile::check_budget(spec)?;
            cache.ensure_dir().map_err(|e| PluginError::Load {
                name: spec.name.clone(),
                message: format!("cannot create the compiled-plugin cache: {e}"),
            })?;
            compile::in_child(compiler, spec, &cache.path_for(&spec.sha256)).await?;
        }
        let (engine, spec) = (self.clone(), spec.clone());
        let name = spec.name.clone();
        tokio::task::spawn_blocking(move || {
            let component = engine.component(&spec)?;
            let pre = engine
                .inner
                .linker
                .instantiate_pre(&component)
                .map_err(|e| link_error(&spec.name, engine.engine(), &component, e))?;
            Ok((component, pre))
        })
        .await
        .unwrap_or_else(|e| {
            Err(PluginError::Load {
                name,
                message: e.to_string(),
            })
        })
    }

    /// Compile (or fetch from the cache) and check a plugin's WIT version. Blocking.
    pub(super) fn component(&self, spec: &PluginSpec) -> Result<Component, PluginError> {
        check_is_component(spec)?;
        if !self.is_cached(spec) {
            compile::check_budget(spec)?;
        }
        let engine = self.engine();
        let component = match &self.inner.cache {
            Some(cache) => cache.load(engine, &spec.bytes, &spec.sha256),
            None => Component::new(engine, spec.bytes.as_slice()),
        }
        .map_err(|e| PluginError::NotAComponent {
            name: spec.name.clone(),
            reason: bounded(&format!("{e:#}"), 1024),
        })?;
        check_version(&spec.name, engine, &component)?;
        Ok(component)
    }

    /// Run one guest call of `spec` in a fresh store with its capabilities and limits: `run` gets the
    /// store, instantiates and calls. The guest yields to the runtime at every epoch tick (so Ctrl-C
    /// and other work go on while it runs) and is stopped at its time limit; whatever happens is
    /// turned into the value or a [`PluginError`] that says why the call failed.
    pub(super) async fn call<T>(
        &self,
        spec: &PluginSpec,
        during: &str,
        run: impl for<'s> FnOnce(&'s mut Store<PluginState>) -> CallFuture<'s, T>,
    ) -> Result<T, PluginError> {
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
            config: Arc::new(spec.config.clone()),
            output_left: spec.limits.output,
            output_exceeded: false,
        };
        let output = Output { stdout, stderr };
        let mut store = Store::new(self.engine(), state);
        store.limiter(|state| &mut state.limiter);
        let limit = spec
            .limits
            .timeout
            .as_millis()
            .div_ceil(EPOCH_TICK.as_millis()) as u64
            + 1;
        let mut ticks = 0u64;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            ticks += 1;
            Ok(if ticks >= limit {
                UpdateDeadline::Interrupt
            } else {
                UpdateDeadline::Yield(1)
            })
        });
        // Epochs stop a guest spinning in wasm; the timeout also covers time spent in host calls, which
        // epochs cannot interrupt. A little slack lets the epoch trap (the more precise report) win
        // when both would fire.
        let outcome = tokio::time::timeout(
            spec.limits.timeout + Duration::from_millis(250),
            run(&mut store),
        )
        .await
        .ok();
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
            Some(Err(error)) => Err(failed(describe_failure(
                &error,
                store.data(),
                spec,
                &output,
            ))),
        }
    }
}

/// A component, not a core module or something else.
fn check_is_component(spec: &PluginSpec) -> Result<(), PluginError> {
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
    Ok(())
}

/// Captured stdout/stderr of one call.
struct Output {
    stdout: MemoryOutputPipe,
    stderr: MemoryOutputPipe,
}

impl Output {
    /// Send the plugin's stdout and stderr to the log, line by line, control characters escaped.
    fn forward(&self, plugin: &str) {
        for (stream, pipe) in [("stdout", &self.stdout), ("stderr", &self.stderr)] {
            let bytes = pipe.contents();
            for line in String::from_utf8_lossy(&bytes)
                .split('\n')
                .filter(|l| !l.trim().is_empty())
            {
                let line = escape_controls(line);
                tracing::info!(plugin, stream, "{line}");
            }
        }
    }

    /// The last lines of stderr, for an error message: at most 1 KiB, control characters escaped.
    fn stderr_tail(&self) -> Option<String> {
        let bytes = self.stderr.contents();
        let text = String::from_utf8_lossy(&bytes);
        let lines: Vec<&str> = text.split('\n').filter(|l| !l.trim().is_empty()).collect();
        (!lines.is_empty())
            .then(|| bounded(&lines[lines.len().saturating_sub(3)..].join(" | "), 1024))
    }
}

/// Words for why a call failed, most specific first.
fn describe_failure(
    error: &wasmtime::Error,
    state: &PluginState,
    spec: &PluginSpec,
    output: &Output,
) -> String {
    let cause = if state.output_exceeded {
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
        if let Some(exit) = error.downcast_ref::<wasmtime_wasi::I32Exit>() {
            return with_stderr(
                format!(
                    "it called exit({}) instead of returning a result (a plugin must return from its export)",
                    exit.0
                ),
                output,
            );
        }
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
            None => bounded(&format!("{error:#}"), 1024),
        }
    };
    with_stderr(cause, output)
}

/// `cause`, with the end of the plugin's stderr when it wrote any.
fn with_stderr(mut cause: String, output: &Output) -> String {
    if let Some(tail) = output.stderr_tail() {
        cause.push_str(&format!("; its stderr ends: {tail}"));
    }
    cause
}

/// The versions this host loads, in words.
fn accepted_versions() -> String {
    let versions: Vec<String> = crate::wit::ACCEPTED
        .iter()
        .rev()
        .map(|(major, minor, _)| format!("{major}.{minor}.x"))
        .collect();
    format!("{WIT_PACKAGE}@{} only", versions.join(" and "))
}

/// Check the `slurmkit:plugin` version a component was built against: one of [`crate::wit::ACCEPTED`]
/// (for 0.x, where every minor may break, the same minor; for 1.x and later, the same major and a minor
/// no newer).
pub(super) fn check_version(
    name: &str,
    engine: &Engine,
    component: &Component,
) -> Result<(), PluginError> {
    let incompatible = |targets: &str| PluginError::Incompatible {
        name: name.into(),
        targets: bounded(targets, 64),
        accepted: accepted_versions(),
    };
    for (import, _) in component.component_type().imports(engine) {
        let Some(rest) = import
            .strip_prefix(WIT_PACKAGE)
            .and_then(|r| r.strip_prefix('/'))
        else {
            continue;
        };
        let Some((_, version)) = rest.split_once('@') else {
            return Err(incompatible("(no version)"));
        };
        let mut parts = version
            .split('.')
            .map(|p| p.split(['-', '+']).next().unwrap_or("").parse::<u64>().ok());
        let compatible = match (parts.next().flatten(), parts.next().flatten()) {
            (Some(m), Some(n)) => crate::wit::ACCEPTED.iter().any(|(major, minor, _)| {
                m == *major && n <= *minor && (*major != 0 || n == *minor)
            }),
            _ => false,
        };
        if !compatible {
            return Err(incompatible(version));
        }
    }
    Ok(())
}

/// The exports of a component, for "wrong world" errors.
pub(super) fn export_names(engine: &Engine, component: &Component) -> String {
    let names: Vec<String> = component
        .component_type()
        .exports(engine)
        .map(|(name, _)| name.to_string())
        .collect();
    if names.is_empty() {
        "nothing".into()
    } else {
        bounded(&names.join(", "), 512)
    }
}

/// Map an `instantiate_pre` failure to the import it could not satisfy: missing altogether, or there
/// with another signature.
fn link_error(
    name: &str,
    engine: &Engine,
    component: &Component,
    error: wasmtime::Error,
) -> PluginError {
    let text = format!("{error:#}");
    let import = component
        .component_type()
        .imports(engine)
        .map(|(import, _)| import.to_string())
        .find(|import| text.contains(&format!("`{import}`")));
    let Some(import) = import else {
        return PluginError::Load {
            name: name.to_string(),
            message: bounded(&text, 1024),
        };
    };
    // The innermost cause says what did not match.
    let detail = error
        .chain()
        .last()
        .map(|cause| cause.to_string())
        .unwrap_or_default();
    if detail.contains("is missing") || detail.contains("was not found") {
        PluginError::MissingImport {
            name: name.to_string(),
            import: bounded(&import, 256),
        }
    } else {
        PluginError::ImportMismatch {
            name: name.to_string(),
            import: bounded(&import, 256),
            detail: bounded(&detail, 256),
        }
    }
}
