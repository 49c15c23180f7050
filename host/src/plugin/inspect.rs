//! `slurmkit plugin inspect`: a component's world, WIT version, imports and exports, read from its
//! bytes. Nothing is compiled: inspecting a hostile component costs what parsing it costs.

use std::path::Path;

use wasmparser::{ComponentExternalKind, Parser, Payload};

use super::{PluginError, PluginSpec, WIT_PACKAGE, file_stem};
use crate::types::text::bounded;

/// What `slurmkit plugin inspect` shows.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Inspection {
    pub path: String,
    pub size: u64,
    pub sha256: String,
    /// `renderer`, `callbacks`, `policy` or `unknown`.
    pub world: String,
    pub wit_version: Option<String>,
    pub imports: Vec<String>,
    pub exports: Vec<String>,
}

/// Inspect the component in `path`.
pub fn inspect(path: &Path) -> Result<Inspection, PluginError> {
    let spec = PluginSpec::from_file(&file_stem(path), path, None)?;
    let not_a_component = |reason: String| PluginError::NotAComponent {
        name: spec.name.clone(),
        reason,
    };
    if Parser::is_core_wasm(&spec.bytes) {
        return Err(not_a_component(
            "it is a core module; build it as a component (wasm32-wasip2, or `wasm-tools component new`)".into(),
        ));
    }
    if !Parser::is_component(&spec.bytes) {
        return Err(not_a_component("it is not WebAssembly".into()));
    }
    let (mut imports, mut exports) = (Vec::new(), Vec::new());
    // Only the outer component's own imports and exports: nested modules and components open and
    // close sections of their own.
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(&spec.bytes) {
        let payload = payload.map_err(|e| not_a_component(bounded(&e.to_string(), 512)))?;
        match payload {
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(section) if depth == 0 => {
                for import in section {
                    let import = import.map_err(|e| not_a_component(e.to_string()))?;
                    imports.push(bounded(import.name.name, 256));
                }
            }
            Payload::ComponentExportSection(section) if depth == 0 => {
                for export in section {
                    let export = export.map_err(|e| not_a_component(e.to_string()))?;
                    if matches!(
                        export.kind,
                        ComponentExternalKind::Func | ComponentExternalKind::Instance
                    ) {
                        exports.push(bounded(export.name.name, 256));
                    }
                }
            }
            _ => {}
        }
    }
    let has = |n: &str| exports.iter().any(|e| e == n);
    let world = if has("render") {
        "renderer"
    } else if has("on-event") {
        "callbacks"
    } else if has("pre-submit") {
        "policy"
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
