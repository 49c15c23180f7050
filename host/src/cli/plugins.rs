//! The plugin engine and renderer a command uses.

use super::diagnostics::Failure;
use crate::lifecycle::Plan;
use crate::plugin::renderer::Renderer;
use crate::plugin::{PluginEngine, PluginSpec};

pub fn engine(plan: &Plan) -> Result<PluginEngine, Failure> {
    // This binary compiles plugins too, in a child process under each plugin's compile limits.
    let compiler = std::env::current_exe().ok();
    Ok(PluginEngine::new(Some(plan.dirs.cache.clone()), compiler)?)
}

/// The configured renderer, or the built-in one.
pub async fn load_renderer(engine: &PluginEngine, plan: &Plan) -> Result<Renderer, Failure> {
    match plan
        .file
        .as_ref()
        .and_then(|f| f.settings.renderer.as_ref().map(|r| (f, r)))
    {
        Some((file, settings)) => {
            Ok(Renderer::load(engine, PluginSpec::renderer(file, settings)?).await?)
        }
        None => Ok(Renderer::builtin(engine).await?),
    }
}
