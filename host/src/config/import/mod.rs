//! `slurmkit import`: the Python SDK's Slurmfile (or a `pyproject.toml` with `[tool.slurm]`) converted
//! into a slurmkit Slurmfile.
//!
//! The SDK's schema (its `config.py` and `Cluster.from_env`): a root (the file, or `[tool.slurm]`)
//! holding environments, either as its own tables or under `[environments]`; the configuration of an
//! environment is `default` merged with it. Each environment has `cluster` (`backend`, `job_base_dir`,
//! `backend_config`: the SSH backend's arguments), `submit` (sbatch options), `packaging` and
//! `callbacks`. The SDK's `default` becomes `[environments.default]`, which slurmkit merges under every
//! environment as the SDK did; every other environment becomes `[environments.<name>]`.
//!
//! Every setting either carries over, checked by the rules slurmkit's own loader applies, or is listed
//! as not carried over with the reason; the result is loaded back for every environment before it is
//! returned, so what `import` writes always loads.

mod cluster;
mod job;

use std::fmt;
use std::path::Path;

use toml::{Table, Value};

use super::{ConfigError, DEFAULT_ENVIRONMENT, Slurmfile, merge, parse_error};
use crate::error::{Diagnose, exit};
use crate::types::text::escape_controls;

/// What the SDK's environments may hold.
const ENVIRONMENT_KEYS: [&str; 4] = ["cluster", "submit", "packaging", "callbacks"];

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// Not TOML: the file, line and column.
    #[error(transparent)]
    Toml(ConfigError),
    #[error("{path}: {what}", path = .path.display())]
    NotSdk {
        path: std::path::PathBuf,
        what: &'static str,
    },
    #[error("{path}: environment \"{name}\" is not defined (defined: {available})", path = .path.display(), name = escape_controls(.name))]
    UnknownEnvironment {
        path: std::path::PathBuf,
        name: String,
        available: String,
    },
    /// A conversion that does not load: a bug in this module.
    #[error("the converted Slurmfile does not load")]
    Unloadable(#[source] ConfigError),
    /// A conversion TOML cannot write: a bug in this module too.
    #[error("the converted Slurmfile cannot be written as TOML: {0}")]
    Serialize(String),
}

impl Diagnose for ImportError {
    fn exit_code(&self) -> u8 {
        match self {
            ImportError::Unloadable(_) | ImportError::Serialize(_) => exit::INTERNAL,
            _ => exit::CONFIG,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            ImportError::NotSdk { .. } => Some(
                "give the Python SDK's Slurmfile ([default], [<env>.cluster], [<env>.submit], [<env>.packaging], callbacks) or a pyproject.toml with a [tool.slurm] table".into(),
            ),
            ImportError::Unloadable(_) | ImportError::Serialize(_) => {
                Some("this is a bug in slurmkit import: please report it with the input file".into())
            }
            _ => None,
        }
    }
}

/// A setting of the SDK's file that has no slurmkit equivalent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    /// Where it is in the input: `prod.cluster.backend_config.password`.
    pub path: String,
    pub why: String,
}

/// Shown escaped: both parts come from the input file.
impl fmt::Display for Dropped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}",
            escape_controls(&self.path),
            escape_controls(&self.why)
        )
    }
}

/// A converted file.
#[derive(Debug)]
pub struct Conversion {
    /// The slurmkit Slurmfile: a comment listing what was not carried over, then the tables.
    pub text: String,
    /// The environments written, `default` first.
    pub environments: Vec<String>,
    /// What was not carried over, in the order of the input.
    pub dropped: Vec<Dropped>,
}

/// One environment, converted: its `[cluster]` and `[job]` tables, and what could not be carried.
#[derive(Default)]
pub(super) struct Layer {
    pub cluster: Table,
    pub job: Table,
    pub dropped: Vec<Dropped>,
}

impl Layer {
    pub fn drop(&mut self, path: &str, why: impl Into<String>) {
        self.dropped.push(Dropped {
            path: path.to_string(),
            why: why.into(),
        });
    }

    fn into_table(self) -> Table {
        let mut table = Table::new();
        if !self.cluster.is_empty() {
            table.insert("cluster".into(), Value::Table(self.cluster));
        }
        if !self.job.is_empty() {
            table.insert("job".into(), Value::Table(self.job));
        }
        table
    }
}

/// Convert the SDK file `text` (read from `path`). `only`: the environments to convert (none: all);
/// `default`, the base of every environment, is always converted.
pub fn convert(path: &Path, text: &str, only: &[String]) -> Result<Conversion, ImportError> {
    let document: Table =
        toml::from_str(text).map_err(|e| ImportError::Toml(parse_error(path, text, &e)))?;
    let not_sdk = |what| ImportError::NotSdk {
        path: path.to_path_buf(),
        what,
    };
    let (root, prefix) = match document.get("tool").and_then(|tool| tool.get("slurm")) {
        Some(Value::Table(slurm)) => (slurm, "tool.slurm."),
        _ if is_pyproject(path) => {
            return Err(not_sdk("no [tool.slurm] table in this pyproject.toml"));
        }
        _ => (&document, ""),
    };
    let (sources, mut dropped) = environments(root, prefix);
    if !sources
        .iter()
        .any(|(_, parts)| parts.iter().any(|(_, t)| is_sdk_environment(t)))
    {
        return Err(not_sdk(if looks_like_slurmkit(root) {
            "this is a slurmkit Slurmfile already ([cluster], [job] or [jobs] at the top), not the Python SDK's"
        } else {
            "no Python SDK settings: no environment with a cluster, submit, packaging or callbacks table"
        }));
    }
    for name in only {
        if !sources.iter().any(|(n, _)| n == name) {
            return Err(ImportError::UnknownEnvironment {
                path: path.to_path_buf(),
                name: name.clone(),
                available: sources
                    .iter()
                    .map(|(n, _)| n.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
    }

    // The SDK's `default` packaging, which an environment's merges over (key by key, as the SDK
    // merges): a container image set there holds for an environment that only adds mounts.
    let mut base_packaging = Table::new();
    for (name, parts) in &sources {
        if name == DEFAULT_ENVIRONMENT {
            for (_, table) in parts {
                if let Some(Value::Table(packaging)) = table.get("packaging") {
                    merge(&mut base_packaging, packaging.clone());
                }
            }
        }
    }
    let mut environments_out = Table::new();
    let mut names = Vec::new();
    for (name, parts) in &sources {
        if name != DEFAULT_ENVIRONMENT && !only.is_empty() && !only.contains(name) {
            continue;
        }
        let base = (name != DEFAULT_ENVIRONMENT).then_some(&base_packaging);
        let mut merged = Table::new();
        for (at, table) in parts {
            let layer = environment(table, at, base);
            dropped.extend(layer.dropped.iter().cloned());
            merge(&mut merged, layer.into_table());
        }
        environments_out.insert(name.clone(), Value::Table(merged));
        names.push(name.clone());
    }
    inherit_directives(&mut environments_out);
    let mut file = Table::new();
    file.insert("environments".into(), Value::Table(environments_out));
    let skipped: Vec<&str> = sources
        .iter()
        .map(|(n, _)| n.as_str())
        .filter(|n| !names.iter().any(|kept| kept == n))
        .collect();
    let tables = toml::to_string(&file).map_err(|e| ImportError::Serialize(e.to_string()))?;
    let text = header(path, &dropped, &skipped) + &tables;
    check_loads(&text, &names)?;
    Ok(Conversion {
        text,
        environments: names,
        dropped,
    })
}

/// An environment's name and the tables it is read from, each with its path in the input.
type Source<'a> = (String, Vec<(String, &'a Table)>);

/// The environments of `root`, `default` first (read from both the root's `[default]` and
/// `[environments.default]` when both exist), and what is there but is no environment.
fn environments<'a>(root: &'a Table, prefix: &str) -> (Vec<Source<'a>>, Vec<Dropped>) {
    let mut out: Vec<Source<'a>> = Vec::new();
    let mut default = Vec::new();
    let mut dropped = Vec::new();
    let not_environment = |at: String| Dropped {
        path: at,
        why: "not part of the Python SDK's Slurmfile schema: not an environment table".into(),
    };
    let (tables, inner) = match root.get("environments") {
        Some(Value::Table(environments)) => {
            for (key, value) in root {
                let at = format!("{prefix}{}", key_path(key));
                match (key.as_str(), value) {
                    ("environments", _) => {}
                    (DEFAULT_ENVIRONMENT, Value::Table(table)) => default.push((at, table)),
                    _ => dropped.push(not_environment(at)),
                }
            }
            (environments, format!("{prefix}environments."))
        }
        _ => (root, prefix.to_string()),
    };
    for (name, value) in tables {
        let at = format!("{inner}{}", key_path(name));
        match value {
            Value::Table(table) if name == DEFAULT_ENVIRONMENT => default.push((at, table)),
            Value::Table(table) => out.push((name.clone(), vec![(at, table)])),
            _ => dropped.push(not_environment(at)),
        }
    }
    if !default.is_empty() {
        out.insert(0, (DEFAULT_ENVIRONMENT.to_string(), default));
    }
    (out, dropped)
}

/// A key as a TOML path segment: bare when it can be, quoted otherwise.
fn key_path(key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare {
        key.to_string()
    } else {
        format!("{key:?}")
    }
}

fn is_sdk_environment(table: &Table) -> bool {
    ENVIRONMENT_KEYS.iter().any(|key| table.contains_key(*key))
}

fn looks_like_slurmkit(root: &Table) -> bool {
    root.contains_key("job")
        || root.contains_key("jobs")
        || root
            .get("cluster")
            .and_then(Value::as_table)
            .is_some_and(|cluster| cluster.contains_key("hostname"))
}

fn is_pyproject(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|name| name.eq_ignore_ascii_case("pyproject.toml"))
}

/// One SDK environment table (at input path `at`) as a slurmkit layer; `base`: the `default`
/// packaging its own merges over.
fn environment(table: &Table, at: &str, base: Option<&Table>) -> Layer {
    let mut layer = Layer::default();
    // The SDK's precedence: the cluster's default account and partition, then `[submit]`.
    for key in ENVIRONMENT_KEYS {
        let Some(value) = table.get(key) else {
            continue;
        };
        let here = format!("{at}.{key}");
        match key {
            "cluster" => cluster::convert(value, &here, &mut layer),
            "submit" => job::submit(value, &here, &mut layer),
            "packaging" => job::packaging(value, &here, &mut layer, base),
            _ => callbacks(value, &here, &mut layer),
        }
    }
    for key in table.keys() {
        if !ENVIRONMENT_KEYS.contains(&key.as_str()) {
            layer.drop(
                &format!("{at}.{}", key_path(key)),
                "not part of the Python SDK's Slurmfile schema (cluster, submit, packaging, callbacks)",
            );
        }
    }
    layer
}

/// The SDK merges `[submit]` key by key, where slurmkit replaces a list: an environment's
/// `extra_directives` start with those of `default` for the options it does not set itself.
fn inherit_directives(environments: &mut Table) {
    let directives = |table: Option<&Value>| -> Vec<Value> {
        table
            .and_then(|env| env.get("job"))
            .and_then(|job| job.get("extra_directives"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let option = |directive: &Value| {
        let text = directive.as_str().unwrap_or_default();
        text.split_once('=')
            .map_or(text, |(option, _)| option)
            .to_string()
    };
    let base = directives(environments.get(DEFAULT_ENVIRONMENT));
    if base.is_empty() {
        return;
    }
    for (name, env) in environments.iter_mut() {
        let own = directives(Some(env));
        if name == DEFAULT_ENVIRONMENT || own.is_empty() {
            continue;
        }
        let mut all: Vec<Value> = base
            .iter()
            .filter(|d| !own.iter().any(|o| option(o) == option(d)))
            .cloned()
            .collect();
        all.extend(own);
        if let Some(job) = env.get_mut("job").and_then(Value::as_table_mut) {
            job.insert("extra_directives".into(), Value::Array(all));
        }
    }
}

/// `callbacks = ["module:Class", { target = "module:Class", args, kwargs }]`: Python objects, which
/// slurmkit cannot run.
pub(super) fn callbacks(value: &Value, at: &str, layer: &mut Layer) {
    const WHY: &str = "a Python callback cannot run in slurmkit, whose callbacks are WebAssembly components ([[callbacks]] plugin = \"x.wasm\"; see wit/README.md)";
    let Value::Array(entries) = value else {
        layer.drop(
            at,
            "callbacks must be a list; and Python callbacks cannot run in slurmkit",
        );
        return;
    };
    for (i, entry) in entries.iter().enumerate() {
        let target = match entry {
            Value::String(target) => Some(target.as_str()),
            Value::Table(table) => table.get("target").and_then(Value::as_str),
            _ => None,
        };
        let why = match target {
            Some(target) => format!("{target:?}: {WHY}"),
            None => WHY.to_string(),
        };
        layer.drop(&format!("{at}[{i}]"), why);
    }
}

fn header(path: &Path, dropped: &[Dropped], skipped: &[&str]) -> String {
    let source = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    let mut out = format!(
        "# Converted by `slurmkit import` from the Python SDK's {}.\n\
         # [environments.default] is the base of every environment, as the SDK's [default] was.\n",
        escape_controls(&source)
    );
    if !skipped.is_empty() {
        out += &format!(
            "# Environments not converted (not asked for): {}\n",
            escape_controls(&skipped.join(", "))
        );
    }
    if dropped.is_empty() {
        out += "# Every setting was carried over.\n";
    } else {
        out += "#\n# Not carried over:\n";
        for item in dropped {
            out += &format!("#   {item}\n");
        }
    }
    out + "\n"
}

/// Load `text` as slurmkit would, under every environment: a conversion that does not load is a bug
/// here, never the user's to find.
fn check_loads(text: &str, names: &[String]) -> Result<(), ImportError> {
    let path = Path::new("Slurmfile.toml");
    Slurmfile::parse(path, text, None).map_err(ImportError::Unloadable)?;
    for name in names {
        Slurmfile::parse(path, text, Some(name)).map_err(ImportError::Unloadable)?;
    }
    Ok(())
}

/// Whether `{key = value}` reads as the loader reads it in `T` (a `[cluster]` or `[job]` table); the
/// loader's message when it does not.
pub(super) fn fits<T: serde::de::DeserializeOwned>(key: &str, value: &Value) -> Result<(), String> {
    let mut table = Table::new();
    table.insert(key.to_string(), value.clone());
    Value::Table(table)
        .try_into::<T>()
        .map(|_| ())
        .map_err(|e| e.message().trim().to_string())
}

/// A value as the SDK wrote it, for a message.
pub(super) fn shown(value: &Value) -> String {
    match value {
        Value::String(text) => format!("{text:?}"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests;
