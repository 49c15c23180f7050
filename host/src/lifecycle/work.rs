//! A job's work, resolved at plan time: the files its inputs name, its args and items as JSON, and the
//! jobs of the Slurmfile it runs after. Every mistake is refused here, before anything is sent, at its
//! file, line and column.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::error::PlanError;
use crate::config::locate::{Place, error_at};
use crate::config::{JobSettings, Slurmfile, resolve_local_path};
use crate::types::names::JobName;
use crate::types::spec::{ArraySpec, JobSpec};
use crate::types::work::{
    After, Input, InputSetting, MAX_ARGS_BYTES, RESERVED, RelativeGlob, RelativePath,
};
use crate::wit::DependencyKind;

/// Where a job's settings were written, to point errors at them.
pub(super) struct Origin<'a> {
    pub file: Option<&'a Slurmfile>,
    /// The `[jobs.<entry>]` the job comes from.
    pub entry: Option<&'a str>,
}

impl Origin<'_> {
    /// The places `key` may be written for this job, the winning layer first.
    fn places<'k>(&'k self, key: &'k str) -> Vec<Place<'k>> {
        let mut places = Vec::new();
        let env = self.file.and_then(|f| f.environment.as_deref());
        if let Some(entry) = self.entry {
            if let Some(env) = env {
                places.push(Place::new(&["environments", env, "jobs", entry, key]));
            }
            places.push(Place::new(&["jobs", entry, key]));
        }
        if let Some(env) = env {
            places.push(Place::new(&["environments", env, "job", key]));
        }
        places.push(Place::new(&["job", key]));
        places
    }

    /// An error at `key` (element `index`), in the Slurmfile when there is one.
    fn error(&self, key: &str, index: Option<usize>, message: String) -> PlanError {
        match self.file {
            Some(file) => {
                let places: Vec<Place> = self
                    .places(key)
                    .into_iter()
                    .map(|p| match index {
                        Some(i) => p.at(i),
                        None => p,
                    })
                    .collect();
                PlanError::Config(error_at(&file.path, &places, format!("`{key}`: {message}")))
            }
            None => PlanError::Refused(format!("`{key}`: {message}")),
        }
    }
}

/// Fill in `spec`'s inputs, outputs, args, items and dependencies from `settings`; `base` is where
/// relative paths start (the Slurmfile's directory).
pub(super) fn resolve(
    spec: &mut JobSpec,
    settings: &JobSettings,
    origin: &Origin,
    base: &Path,
) -> Result<(), PlanError> {
    spec.entry = origin.entry.and_then(|e| JobName::parse(e).ok());
    spec.project = origin.file.map(|f| f.path.display().to_string());
    spec.inputs = inputs(settings.inputs.as_deref().unwrap_or_default(), origin, base)?;
    spec.outputs = settings.outputs.clone().unwrap_or_default();
    if let Some(args) = &settings.args {
        spec.args = json_object(args, "args", None, origin)?;
    }
    spec.items = items(settings, origin, base)?;
    if !spec.items.is_empty() {
        if spec.array.is_some() {
            return Err(origin.error(
                "items",
                None,
                "set either `items` (one array task per item) or `array`, not both".into(),
            ));
        }
        let throttle = settings
            .max_concurrent
            .map(|n| format!("%{n}"))
            .unwrap_or_default();
        let range = format!("0-{}{throttle}", spec.items.len() - 1);
        spec.array = Some(ArraySpec::parse(&range)?);
    } else if let Some(n) = settings.max_concurrent {
        match &spec.array {
            Some(array) if !array.as_str().contains('%') => {
                spec.array = Some(ArraySpec::parse(&format!("{}%{n}", array.as_str()))?);
            }
            Some(_) => {}
            None => {
                return Err(origin.error(
                    "max_concurrent",
                    None,
                    "limits an array's tasks: set `items` or `array` too".into(),
                ));
            }
        }
    }
    let kinds = [
        (&settings.after, DependencyKind::AfterOk),
        (&settings.after_any, DependencyKind::AfterAny),
        (&settings.after_not_ok, DependencyKind::AfterNotOk),
    ];
    spec.after = kinds
        .into_iter()
        .flat_map(|(names, kind)| {
            names.iter().flatten().map(move |job| After {
                kind,
                job: job.clone(),
            })
        })
        .collect();
    let mut variables: BTreeMap<String, &JobName> = BTreeMap::new();
    for after in &spec.after {
        let variable = crate::types::work::dependency_variable(&after.job);
        if let Some(other) = variables.insert(variable.clone(), &after.job)
            && *other != after.job
        {
            return Err(origin.error(
                "after",
                None,
                format!(
                    "{} and {} would both be seen as ${variable}: rename one",
                    other, after.job
                ),
            ));
        }
    }
    Ok(())
}

fn inputs(
    settings: &[InputSetting],
    origin: &Origin,
    base: &Path,
) -> Result<Vec<Input>, PlanError> {
    let mut staged: BTreeMap<RelativePath, usize> = BTreeMap::new();
    let mut inputs = Vec::new();
    for (index, setting) in settings.iter().enumerate() {
        let error = |message: String| origin.error("inputs", Some(index), message);
        let found: Vec<Input> = match setting {
            InputSetting::Glob(glob) => {
                let files = matching_files(base, glob).map_err(|e| error(e.to_string()))?;
                if files.is_empty() {
                    return Err(error(format!(
                        "{:?} matches no file under {}",
                        glob.as_str(),
                        base.display()
                    )));
                }
                files
                    .into_iter()
                    .map(|relative| {
                        let to = RelativePath::parse("input", &relative)
                            .map_err(|e| error(e.to_string()))?;
                        Ok(Input {
                            source: base.join(&relative),
                            to,
                        })
                    })
                    .collect::<Result<_, PlanError>>()?
            }
            InputSetting::Mapped { from, to } => {
                let source = resolve_local_path(from, base);
                let metadata = std::fs::metadata(&source)
                    .map_err(|e| error(format!("cannot read {}: {e}", source.display())))?;
                if metadata.is_dir() {
                    let files = all_files(&source).map_err(|e| error(e.to_string()))?;
                    if files.is_empty() {
                        return Err(error(format!("{} holds no file", source.display())));
                    }
                    files
                        .into_iter()
                        .map(|relative| {
                            let to = to.join(&relative).map_err(|e| error(e.to_string()))?;
                            Ok(Input {
                                source: source.join(&relative),
                                to,
                            })
                        })
                        .collect::<Result<_, PlanError>>()?
                } else {
                    vec![Input {
                        source,
                        to: to.clone(),
                    }]
                }
            }
        };
        for input in found {
            if RESERVED.contains(&input.to.top()) {
                return Err(error(format!(
                    "{:?} would land on {:?}, which slurmkit writes in every job directory; place it elsewhere with {{ from = ..., to = ... }}",
                    input.to.as_str(),
                    input.to.top()
                )));
            }
            if let Some(other) = staged.insert(input.to.clone(), index) {
                return Err(error(format!(
                    "{:?} is also staged by entry {} of `inputs`: each place in the job directory takes one file",
                    input.to.as_str(),
                    other + 1
                )));
            }
            inputs.push(input);
        }
    }
    // A file cannot also be a directory: `data` from one entry and `data/x.csv` from another. Among
    // sorted paths, the first at or after `data/` starts with it if any does.
    let sorted: Vec<&str> = staged.keys().map(RelativePath::as_str).collect();
    for (path, index) in &staged {
        let below = format!("{}/", path.as_str());
        let first = sorted.partition_point(|other| *other < below.as_str());
        if let Some(inner) = sorted.get(first).filter(|other| other.starts_with(&below)) {
            return Err(origin.error(
                "inputs",
                Some(*index),
                format!(
                    "{:?} is a file here, but {:?} needs it to be a directory",
                    path.as_str(),
                    inner
                ),
            ));
        }
    }
    Ok(inputs)
}

/// The files under `base` that `glob` matches, as relative `/`-separated paths, sorted. A directory
/// that matches brings everything below it; links to directories are not followed.
pub fn matching_files(base: &Path, glob: &RelativeGlob) -> std::io::Result<Vec<String>> {
    let matcher = glob.matcher();
    let prefix = glob.literal_prefix();
    let start = base.join(&prefix);
    let mut found = Vec::new();
    match std::fs::metadata(&start) {
        Ok(m) if m.is_dir() => {
            for relative in all_files(&start)? {
                let path = if prefix.is_empty() {
                    relative
                } else {
                    format!("{prefix}/{relative}")
                };
                if matcher.is_match(&path) {
                    found.push(path);
                }
            }
        }
        Ok(_) if matcher.is_match(&prefix) => found.push(prefix),
        _ => {}
    }
    found.sort();
    Ok(found)
}

/// Every file below `dir`, relative and `/`-separated, skipping links to directories.
fn all_files(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut found = Vec::new();
    let mut pending: Vec<(PathBuf, String)> = vec![(dir.to_path_buf(), String::new())];
    while let Some((path, relative)) = pending.pop() {
        for entry in std::fs::read_dir(&path)? {
            let entry = entry?;
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                return Err(std::io::Error::other(format!(
                    "{} has a name that is not UTF-8",
                    entry.path().display()
                )));
            };
            let child = if relative.is_empty() {
                name
            } else {
                format!("{relative}/{name}")
            };
            let kind = entry.file_type()?;
            if kind.is_dir() {
                pending.push((entry.path(), child));
            } else if kind.is_file() || (kind.is_symlink() && entry.path().is_file()) {
                found.push(child);
            } else if kind.is_symlink() {
                tracing::warn!(
                    "not staging {}: a link to a directory",
                    entry.path().display()
                );
            }
        }
    }
    found.sort();
    Ok(found)
}

/// The job's items: `items` inline, or `items_file` (JSON Lines), each an object.
fn items(
    settings: &JobSettings,
    origin: &Origin,
    base: &Path,
) -> Result<Vec<serde_json::Value>, PlanError> {
    match (&settings.items, &settings.items_file) {
        (Some(_), Some(_)) => Err(origin.error(
            "items_file",
            None,
            "set either `items` or `items_file`, not both".into(),
        )),
        (Some(items), None) => items
            .iter()
            .enumerate()
            .map(|(index, item)| match item {
                toml::Value::Table(table) => json_object(table, "items", Some(index), origin),
                other => Err(origin.error(
                    "items",
                    Some(index),
                    format!(
                        "item {index} is a {}, not a table: write items as [{{ lr = 0.1 }}, {{ lr = 0.01 }}]",
                        other.type_str()
                    ),
                )),
            })
            .collect(),
        (None, Some(file)) => items_file(&resolve_local_path(file, base), origin),
        (None, None) => Ok(Vec::new()),
    }
}

fn items_file(path: &Path, origin: &Origin) -> Result<Vec<serde_json::Value>, PlanError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        origin.error(
            "items_file",
            None,
            format!("cannot read {}: {e}", path.display()),
        )
    })?;
    let mut items = Vec::new();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let start = offset;
        offset += line.len();
        let content = line.trim_end_matches(['\n', '\r']);
        if content.trim().is_empty() {
            continue;
        }
        let at = |message: String| {
            PlanError::Config(crate::config::located(
                path,
                &text,
                start..start + content.len(),
                message,
            ))
        };
        let value: serde_json::Value =
            serde_json::from_str(content).map_err(|e| at(format!("not JSON: {e}")))?;
        if !value.is_object() {
            return Err(at(format!(
                "an item must be a JSON object ({{\"lr\": 0.1}}), not {}",
                json_kind(&value)
            )));
        }
        if content.len() > MAX_ARGS_BYTES {
            return Err(at(format!(
                "this item is {} bytes of JSON; an item holds at most {MAX_ARGS_BYTES} (put data in `inputs`)",
                content.len()
            )));
        }
        items.push(value);
    }
    if items.is_empty() {
        return Err(origin.error(
            "items_file",
            None,
            format!(
                "{} holds no item (one JSON object per line)",
                path.display()
            ),
        ));
    }
    Ok(items)
}

fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// A TOML table as a JSON object, at most [`MAX_ARGS_BYTES`] long. Datetimes become strings.
fn json_object(
    table: &toml::Table,
    key: &str,
    index: Option<usize>,
    origin: &Origin,
) -> Result<serde_json::Value, PlanError> {
    let value = toml_to_json(&toml::Value::Table(table.clone()))
        .map_err(|message| origin.error(key, index, message))?;
    let size = serde_json::to_vec(&value).map(|v| v.len()).unwrap_or(0);
    if size > MAX_ARGS_BYTES {
        return Err(origin.error(
            key,
            index,
            format!(
                "{size} bytes of JSON; arguments hold at most {MAX_ARGS_BYTES} (put data in `inputs`)"
            ),
        ));
    }
    Ok(value)
}

fn toml_to_json(value: &toml::Value) -> Result<serde_json::Value, String> {
    use serde_json::Value as J;
    Ok(match value {
        toml::Value::String(s) => J::String(s.clone()),
        toml::Value::Integer(i) => J::from(*i),
        toml::Value::Float(f) => serde_json::Number::from_f64(*f)
            .map(J::Number)
            .ok_or_else(|| format!("{f} has no JSON form (JSON has no NaN or infinity)"))?,
        toml::Value::Boolean(b) => J::Bool(*b),
        toml::Value::Datetime(d) => J::String(d.to_string()),
        toml::Value::Array(items) => {
            J::Array(items.iter().map(toml_to_json).collect::<Result<_, _>>()?)
        }
        toml::Value::Table(table) => J::Object(
            table
                .iter()
                .map(|(k, v)| Ok((k.clone(), toml_to_json(v)?)))
                .collect::<Result<_, String>>()?,
        ),
    })
}

/// The jobs to submit for `selected` (entry names): each with every job it runs after, dependencies
/// first. A name that is not a `[jobs.<name>]` entry, or a cycle, is refused.
pub(super) fn order(
    selected: &[String],
    after_of: &dyn Fn(&str) -> Result<Vec<String>, PlanError>,
    defined: &[String],
    file: Option<&Slurmfile>,
) -> Result<Vec<String>, PlanError> {
    let mut order = Vec::new();
    let mut path: Vec<String> = Vec::new();
    fn visit(
        name: &str,
        after_of: &dyn Fn(&str) -> Result<Vec<String>, PlanError>,
        defined: &[String],
        file: Option<&Slurmfile>,
        path: &mut Vec<String>,
        order: &mut Vec<String>,
    ) -> Result<(), PlanError> {
        if order.iter().any(|n| n == name) {
            return Ok(());
        }
        if let Some(at) = path.iter().position(|n| n == name) {
            let mut cycle = path[at..].to_vec();
            cycle.push(name.to_string());
            return Err(PlanError::Refused(format!(
                "the jobs run after each other in a cycle: {}; remove one of these `after` entries",
                cycle.join(" → ")
            )));
        }
        path.push(name.to_string());
        for dependency in &after_of(name)? {
            if !defined.contains(dependency) {
                let message = format!(
                    "no job {dependency:?} in this Slurmfile to run after; defined jobs are {}",
                    defined.join(", ")
                );
                return Err(match file {
                    Some(file) => {
                        let places: Vec<Place> = ["after", "after_any", "after_not_ok"]
                            .iter()
                            .map(|key| Place::new(&["jobs", name, key]))
                            .collect();
                        PlanError::Config(error_at(&file.path, &places, message))
                    }
                    None => PlanError::Refused(message),
                });
            }
            visit(dependency, after_of, defined, file, path, order)?;
        }
        path.pop();
        order.push(name.to_string());
        Ok(())
    }
    for name in selected {
        visit(name, after_of, defined, file, &mut path, &mut order)?;
    }
    Ok(order)
}
