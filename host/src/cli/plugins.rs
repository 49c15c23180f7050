//! The plugin engine, renderer and site policies a command uses.

use super::diagnostics::Failure;
use crate::lifecycle::Plan;
use crate::plugin::policy::{Policies, PolicyPlugin};
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

/// The site layer's `[[policy]]` entries, then the Slurmfile's, loaded in that order.
pub async fn load_policies(engine: &PluginEngine, plan: &Plan) -> Result<Policies, Failure> {
    let site = plan.site.iter().flat_map(|site| {
        site.settings
            .policy
            .iter()
            .flatten()
            .map(|p| (&site.dir, p))
    });
    let own = plan.file.iter().flat_map(|file| {
        file.settings
            .policy
            .iter()
            .flatten()
            .map(|p| (&file.dir, p))
    });
    // Read (and pinned-checked) first, then loaded: no borrowing iterator lives across an await, so
    // the future can move between threads (the MCP server runs it on any).
    let specs = site
        .chain(own)
        .map(|(dir, settings)| PluginSpec::policy(dir, settings))
        .collect::<Result<Vec<_>, _>>()?;
    let mut policies = Policies::default();
    for spec in specs {
        policies
            .plugins
            .push(PolicyPlugin::load(engine, spec).await?);
    }
    Ok(policies)
}
