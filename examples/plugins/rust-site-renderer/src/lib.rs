//! A site renderer: the job as usual, plus what the site requires on every job. It reads its settings
//! from its Slurmfile `config` table:
//!
//! ```toml
//! [renderer]
//! plugin = "plugins/rust_site_renderer.wasm"
//! config = { site = "example-hpc", default_account = "proj42", modules = "gcc/13,openmpi/5" }
//! ```
//!
//! Jobs without an account get `default_account`; every job gets `--comment="site:<site>"` and a module
//! preamble (`module purge`, then `modules`) before the job's own modules.

wit_bindgen::generate!({ world: "renderer", path: "../../../wit" });

use slurmkit::plugin::host::{Level, config, log};
use slurmkit::plugin::types::{FieldError, Payload};

struct SiteRenderer;

fn setting(key: &str) -> Option<String> {
    config().into_iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

/// Double quotes for `#SBATCH` values; refuse what sbatch's directive parser cannot carry.
fn directive(field: &str, value: &str) -> Result<String, RenderError> {
    if value.is_empty()
        || value
            .chars()
            .any(|c| c.is_control() || c == '"' || c == '\\')
    {
        return Err(RenderError::InvalidField(FieldError {
            field: field.into(),
            message: format!("{value:?} cannot go in an #SBATCH line"),
        }));
    }
    Ok(format!("\"{value}\""))
}

/// Single quotes for bash.
fn quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

impl Guest for SiteRenderer {
    fn render(job: Job) -> Result<String, RenderError> {
        let site = setting("site").unwrap_or_else(|| "site".into());
        let mut lines = vec!["#!/bin/bash".to_string()];
        let mut sbatch = |option: &str, field: &str, value: &str| -> Result<(), RenderError> {
            lines.push(format!("#SBATCH --{option}={}", directive(field, value)?));
            Ok(())
        };
        sbatch("job-name", "name", &job.name)?;
        let account = job.account.clone().or_else(|| setting("default_account"));
        for (option, field, value) in [
            ("account", "account", account.as_deref()),
            ("partition", "partition", job.partition.as_deref()),
            ("qos", "qos", job.qos.as_deref()),
            ("output", "output", job.output.as_deref()),
            ("error", "error", job.error.as_deref()),
            ("chdir", "working-dir", job.working_dir.as_deref()),
        ] {
            if let Some(value) = value {
                sbatch(option, field, value)?;
            }
        }
        if let Some(seconds) = job.time_limit_seconds {
            sbatch(
                "time",
                "time-limit-seconds",
                &format!("{}:{:02}", seconds.div_ceil(60), 0),
            )?;
        }
        if let Some(cpus) = job.cpus_per_task {
            sbatch("cpus-per-task", "cpus-per-task", &cpus.to_string())?;
        }
        if let Some(mb) = job.memory_mb {
            sbatch("mem", "memory-mb", &format!("{mb}M"))?;
        }
        sbatch("comment", "site", &format!("site:{site}"))?;
        // Fields this site renderer does not handle are refused, never dropped.
        let unsupported = [
            ("nodes", job.nodes.is_some()),
            ("gpus", job.gpus.is_some()),
            ("gres", job.gres.is_some()),
            ("array", job.array.is_some()),
            ("dependencies", !job.dependencies.is_empty()),
            ("extra-directives", !job.extra_directives.is_empty()),
            // The site runs containers through the default renderer's pyxis and apptainer lines.
            ("container", job.container.is_some()),
        ];
        if let Some((field, _)) = unsupported.iter().find(|(_, set)| *set) {
            return Err(RenderError::Unsupported(FieldError {
                field: field.to_string(),
                message: format!(
                    "the {site} site renderer does not support it; use the default renderer"
                ),
            }));
        }
        lines.push(format!("# Rendered by the {site} site renderer."));
        lines.push("module purge".into());
        let site_modules = setting("modules").unwrap_or_default();
        for module in site_modules
            .split(',')
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .chain(job.modules.iter().map(String::as_str))
        {
            lines.push(format!("module load {}", quote(module)));
        }
        for (name, value) in &job.environment {
            lines.push(format!("export {name}={}", quote(value)));
        }
        match job.payload {
            Payload::Command(argv) => lines.push(format!(
                "exec {}",
                argv.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" ")
            )),
            Payload::Script(body) => lines.push(body.trim_end().to_string()),
        }
        log(Level::Debug, &format!("rendered {} for {site}", job.name));
        Ok(lines.join("\n") + "\n")
    }
}

export!(SiteRenderer);
