//! Where a plugin comes from and what it may do: its file (checked against its pin), its `config`
//! table, its grants and its limits, as the Slurmfile's `[renderer]` or `[[callbacks]]` entry says.

use std::path::Path;
use std::sync::Arc;

use super::{Capabilities, Limits, PluginError, file_stem, sha256_hex};
use crate::config::{
    CallbackSettings, PluginSettings, PolicySettings, RendererSettings, Slurmfile,
};

/// A plugin ready to load: its bytes, identity, configuration, capabilities and limits.
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

    /// A plugin a Slurmfile configures, under `name`.
    pub fn configured(
        file: &Slurmfile,
        name: &str,
        settings: PluginSettings<'_>,
    ) -> Result<PluginSpec, PluginError> {
        Self::configured_in(&file.dir, name, settings)
    }

    /// A plugin configured in a file in `dir` (a Slurmfile, or the site layer), under `name`: its
    /// path and grants are relative to `dir`.
    pub fn configured_in(
        dir: &Path,
        name: &str,
        settings: PluginSettings<'_>,
    ) -> Result<PluginSpec, PluginError> {
        let path = crate::config::resolve_local_path(settings.plugin, dir);
        let mut spec = PluginSpec::from_file(name, &path, settings.sha256)?;
        spec.config = config_pairs(name, settings.config)?;
        if let Some(grants) = settings.grants {
            spec.capabilities = Capabilities::from_grants(name, grants, dir)?;
        }
        spec.limits = Limits::from_settings(settings.limits);
        Ok(spec)
    }

    /// A `[[policy]]` entry of the file in `dir`, named by its `name` or its file's stem.
    pub fn policy(dir: &Path, settings: &PolicySettings) -> Result<Self, PluginError> {
        let name = settings.name.clone().unwrap_or_else(|| {
            file_stem(&crate::config::resolve_local_path(&settings.plugin, dir))
        });
        Self::configured_in(dir, &name, settings.plugin())
    }

    /// The renderer a Slurmfile configures, named after its file.
    pub fn renderer(file: &Slurmfile, settings: &RendererSettings) -> Result<Self, PluginError> {
        let name = file_stem(&file.resolve_path(&settings.plugin));
        Self::configured(file, &name, settings.plugin())
    }

    /// A `[[callbacks]]` entry.
    pub fn callback(file: &Slurmfile, settings: &CallbackSettings) -> Result<Self, PluginError> {
        Self::configured(file, &callback_name(file, settings), settings.plugin())
    }

    /// What the journal records about the plugin.
    pub fn provenance(&self) -> String {
        format!("{} sha256:{}", self.origin, self.sha256)
    }
}

/// A `[[callbacks]]` entry's name: its `name`, or its file's stem.
pub fn callback_name(file: &Slurmfile, settings: &CallbackSettings) -> String {
    settings
        .name
        .clone()
        .unwrap_or_else(|| file_stem(&file.resolve_path(&settings.plugin)))
}

/// The `config` table as the plugin sees it: key/value strings in key order.
pub fn config_pairs(
    plugin: &str,
    table: Option<&toml::Table>,
) -> Result<Vec<(String, String)>, PluginError> {
    let Some(table) = table else {
        return Ok(Vec::new());
    };
    table
        .iter()
        .map(|(key, value)| {
            let text = match value {
                toml::Value::String(s) => s.clone(),
                toml::Value::Integer(_)
                | toml::Value::Float(_)
                | toml::Value::Boolean(_)
                | toml::Value::Datetime(_) => value.to_string(),
                _ => {
                    return Err(PluginError::Load {
                        name: plugin.to_string(),
                        message: format!(
                            "config key {key:?} must be a string, number or boolean (plugins receive flat key/value pairs)"
                        ),
                    });
                }
            };
            Ok((key.clone(), text))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_tables_become_flat_pairs() {
        let table: toml::Table =
            toml::from_str("channel = \"#hpc\"\nretries = 3\nverbose = true").unwrap();
        let pairs = config_pairs("p", Some(&table)).unwrap();
        assert_eq!(
            pairs,
            vec![
                ("channel".into(), "#hpc".into()),
                ("retries".into(), "3".into()),
                ("verbose".into(), "true".into())
            ]
        );
        let nested: toml::Table = toml::from_str("a = { b = 1 }").unwrap();
        assert!(config_pairs("p", Some(&nested)).is_err());
    }
}
