//! `slurmkit plugin inspect`: a component's world, WIT version, imports and exports.

use std::path::Path;

use wasmtime::component::Component;
use wasmtime::component::types::ComponentItem;

use super::{PluginEngine, PluginError, PluginSpec, WIT_PACKAGE, file_stem};

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
    /// What a component is and imports, compiled (or read from the cache) but not run. The compile
    /// runs on a blocking thread.
    pub async fn inspect(&self, path: &Path) -> Result<Inspection, PluginError> {
        let (engine, path) = (self.clone(), path.to_path_buf());
        let name = file_stem(&path);
        tokio::task::spawn_blocking(move || engine.inspect_now(&path))
            .await
            .unwrap_or_else(|e| {
                Err(PluginError::Load {
                    name,
                    message: e.to_string(),
                })
            })
    }

    fn inspect_now(&self, path: &Path) -> Result<Inspection, PluginError> {
        let spec = PluginSpec::from_file(&file_stem(path), path, None)?;
        let component = match self.component(&spec) {
            Err(PluginError::Incompatible { .. }) => {
                Component::new(self.engine(), spec.bytes.as_slice()).map_err(|e| {
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
            .imports(self.engine())
            .map(|(name, _)| name.to_string())
            .collect();
        let exports: Vec<String> = ty
            .exports(self.engine())
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
