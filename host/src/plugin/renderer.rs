//! Renderers: a job spec in, a complete sbatch script out.

use std::sync::Arc;

use super::engine::export_names;
use super::{Capabilities, Limits, PluginEngine, PluginError, PluginSpec, compat, convert};
use crate::types::spec::JobSpec;
use crate::types::text::bounded;
use crate::wit::latest::types::RenderError;
use crate::wit::{v0_1_0, v0_2_0};

/// A linked renderer, through the bindings of the version it was built against.
#[derive(Clone)]
enum Pre {
    V0_2(v0_2_0::renderer::RendererPre<super::PluginState>),
    V0_1(v0_1_0::renderer::RendererPre<super::PluginState>),
}

/// The default renderer (plugins/renderer-default), built by host/build.rs and embedded here.
pub static BUILTIN_WASM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/renderer-default.wasm"));

/// A script bigger than this is not a job script (sbatch itself refuses scripts over 4 MiB by default).
const MAX_SCRIPT_BYTES: usize = 1 << 20;

/// A loaded renderer, ready to render any number of jobs.
pub struct Renderer {
    engine: PluginEngine,
    spec: PluginSpec,
    pre: Pre,
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
        // The newest bindings first; a component built against 0.1 matches those instead.
        let pre = match v0_2_0::renderer::RendererPre::new(instance_pre.clone()) {
            Ok(pre) => Pre::V0_2(pre),
            Err(_) => match v0_1_0::renderer::RendererPre::new(instance_pre) {
                Ok(pre) => Pre::V0_1(pre),
                Err(_) => {
                    return Err(PluginError::WrongWorld {
                        name: spec.name.clone(),
                        expected: "renderer",
                        found: export_names(engine.engine(), &component),
                    });
                }
            },
        };
        Ok(Renderer {
            engine: engine.clone(),
            spec,
            pre,
        })
    }

    pub fn spec(&self) -> &PluginSpec {
        &self.spec
    }

    /// The WIT version the renderer was built against, as `major.minor.patch`.
    pub fn wit_version(&self) -> String {
        let (major, minor, patch) = match self.pre {
            Pre::V0_2(_) => v0_2_0::VERSION,
            Pre::V0_1(_) => v0_1_0::VERSION,
        };
        format!("{major}.{minor}.{patch}")
    }

    /// Instantiate the renderer in a fresh store and drop it: the fixed cost every call pays before the
    /// guest runs. `slurmkit plugin check` and the benchmark time it.
    pub async fn instantiate(&self) -> Result<(), PluginError> {
        let pre = self.pre.clone();
        self.engine
            .call(&self.spec, "instantiate", move |store| {
                Box::pin(async move {
                    match pre {
                        Pre::V0_2(pre) => pre.instantiate_async(store).await.map(|_| ()),
                        Pre::V0_1(pre) => pre.instantiate_async(store).await.map(|_| ()),
                    }
                })
            })
            .await
    }

    /// Render `job`. The script is checked before it is used: it must start with `#!`, be text without
    /// NUL bytes, and stay under 1 MiB.
    pub async fn render(&self, job: &JobSpec) -> Result<String, PluginError> {
        let (pre, record) = (self.pre.clone(), convert::job_to_wit(job));
        if let (Pre::V0_1(_), Some(lacks)) = (&self.pre, compat::missing_from_v1(&record)) {
            return Err(PluginError::TooOld {
                plugin: self.spec.name.clone(),
                version: "0.1.x".into(),
                lacks,
            });
        }
        let result = self
            .engine
            .call(&self.spec, "render", move |store| {
                Box::pin(async move {
                    match pre {
                        Pre::V0_2(pre) => {
                            let instance = pre.instantiate_async(&mut *store).await?;
                            instance.call_render(store, &record).await
                        }
                        Pre::V0_1(pre) => {
                            let instance = pre.instantiate_async(&mut *store).await?;
                            let record = compat::job_v1(&record);
                            let result = instance.call_render(store, &record).await?;
                            Ok(result.map_err(compat::render_error))
                        }
                    }
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
