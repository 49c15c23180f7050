//! Renderers: a job spec in, a complete sbatch script out.

use std::sync::Arc;

use super::engine::export_names;
use super::{Capabilities, Limits, PluginEngine, PluginError, PluginSpec, convert};
use crate::types::spec::JobSpec;
use crate::types::text::bounded;
use crate::wit::v0_1_0::renderer::{Renderer as RendererWorld, RendererPre};
use crate::wit::v0_1_0::types::RenderError;

/// The default renderer (plugins/renderer-default), built by host/build.rs and embedded here.
pub static BUILTIN_WASM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/renderer-default.wasm"));

/// A script bigger than this is not a job script (sbatch itself refuses scripts over 4 MiB by default).
const MAX_SCRIPT_BYTES: usize = 1 << 20;

/// A loaded renderer, ready to render any number of jobs.
pub struct Renderer {
    engine: PluginEngine,
    spec: PluginSpec,
    pre: RendererPre<super::PluginState>,
}

impl Renderer {
    /// The built-in renderer, with no grants.
    pub async fn builtin(engine: &PluginEngine) -> Result<Self, PluginError> {
        let spec = PluginSpec {
            name: "renderer-default".into(),
            origin: "builtin".into(),
            bytes: Arc::new(BUILTIN_WASM.to_vec()),
            sha256: super::sha256_hex(BUILTIN_WASM),
            config: Vec::new(),
            capabilities: Capabilities::none(),
            limits: Limits::default(),
        };
        Self::load(engine, spec).await
    }

    /// Compile (or read from the cache) and link a renderer.
    pub async fn load(engine: &PluginEngine, spec: PluginSpec) -> Result<Self, PluginError> {
        let (component, instance_pre) = engine.prepare(&spec).await?;
        let pre = RendererPre::new(instance_pre).map_err(|_| PluginError::WrongWorld {
            name: spec.name.clone(),
            expected: "renderer",
            found: export_names(engine.engine(), &component),
        })?;
        Ok(Renderer {
            engine: engine.clone(),
            spec,
            pre,
        })
    }

    pub fn spec(&self) -> &PluginSpec {
        &self.spec
    }

    /// Instantiate the renderer in a fresh store and drop it: the fixed cost every call pays before the
    /// guest runs. `slurmkit plugin check` and the benchmark time it.
    pub async fn instantiate(&self) -> Result<(), PluginError> {
        let pre = self.pre.clone();
        self.engine
            .call(&self.spec, "instantiate", move |store| {
                Box::pin(async move { pre.instantiate_async(store).await.map(|_| ()) })
            })
            .await
    }

    /// Render `job`. The script is checked before it is used: it must start with `#!`, be text without
    /// NUL bytes, and stay under 1 MiB.
    pub async fn render(&self, job: &JobSpec) -> Result<String, PluginError> {
        let (pre, record) = (self.pre.clone(), convert::job_to_wit(job));
        let result = self
            .engine
            .call(&self.spec, "render", move |store| {
                Box::pin(async move {
                    let instance: RendererWorld = pre.instantiate_async(&mut *store).await?;
                    instance.call_render(store, &record).await
                })
            })
            .await?;
        let script = result.map_err(|e| PluginError::Refused {
            plugin: self.spec.name.clone(),
            message: bounded(&describe(&e), self.spec.limits.output),
        })?;
        let invalid = |message: &str| PluginError::Invalid {
            plugin: self.spec.name.clone(),
            message: message.to_string(),
        };
        if !script.starts_with("#!") {
            return Err(invalid(
                "the script does not start with #! (sbatch needs an interpreter line)",
            ));
        }
        if script.len() > MAX_SCRIPT_BYTES {
            return Err(invalid(&format!(
                "the script is {} bytes, over the 1 MiB limit",
                script.len()
            )));
        }
        if script.contains('\0') {
            return Err(invalid("the script contains a NUL byte"));
        }
        Ok(script)
    }
}

fn describe(error: &RenderError) -> String {
    match error {
        RenderError::InvalidField(f) => format!("field {}: {}", f.field, f.message),
        RenderError::Unsupported(f) => format!(
            "field {} cannot be expressed by this renderer: {}",
            f.field, f.message
        ),
        RenderError::Other(message) => message.clone(),
    }
}
