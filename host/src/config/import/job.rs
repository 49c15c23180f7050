//! `[<env>.submit]` (sbatch options) and `[<env>.packaging]` as slurmkit's `[job]`.

use toml::{Table, Value};

use super::{Layer, fits, key_path, shown};
use crate::config::JobSettings;
use crate::types::units::Memory;

pub(super) const NO_BUILD: &str = "slurmkit does not build or push images: build and push it yourself, then set the job's container image";
const NO_WHEEL: &str = "slurmkit runs a command or a script, not a pickled Python function, so it builds and installs no wheel: install the project on the cluster (a venv, a module) or stage it with a job's inputs";
const NO_INHERIT: &str = "slurmkit has no workflows submitting from the compute node, so nothing to inherit a packaging from";

/// `[submit]`: sbatch options, as `@task(...)` takes them (`cpus_per_task`, `memory` for `mem`,
/// `job_name`); the ones `[job]` has a key for go there, any other becomes one of its
/// `extra_directives`, as the SDK wrote every option as an `#SBATCH` line.
pub(super) fn submit(value: &Value, at: &str, layer: &mut Layer) {
    let Value::Table(options) = value else {
        layer.drop(at, "submit must be a table of sbatch options");
        return;
    };
    for (key, value) in options {
        let here = format!("{at}.{}", key_path(key));
        let name = key.replace('-', "_");
        match name.as_str() {
            "job_name" | "name" => carry(layer, "name", value, &here),
            "mem" | "memory" => carry(layer, "mem", &size(value), &here),
            "mem_per_cpu" => carry(layer, "mem_per_cpu", &size(value), &here),
            "chdir" | "working_dir" => carry(layer, "working_dir", value, &here),
            "partition" | "account" | "qos" | "reservation" | "time" | "nodes" | "array"
            | "dependency" | "output" | "error" => carry(layer, &name, value, &here),
            "ntasks" | "ntasks_per_node" | "cpus_per_task" => {
                carry(layer, &name, &as_integer(value), &here)
            }
            "gpus" | "gres" | "constraint" => carry(layer, &name, &as_text(value), &here),
            "exclusive" if value.is_bool() => carry(layer, "exclusive", value, &here),
            _ if name.starts_with("packaging") => layer.drop(&here, NO_WHEEL),
            _ => directive(&name, value, &here, layer),
        }
    }
}

/// Any other sbatch option: `--name=value`, or `--name` for `true`.
fn directive(name: &str, value: &Value, at: &str, layer: &mut Layer) {
    let option = format!("--{}", name.replace('_', "-"));
    let text = match value {
        Value::String(text) => format!("{option}={text}"),
        Value::Integer(n) => format!("{option}={n}"),
        Value::Float(x) => format!("{option}={x}"),
        Value::Boolean(true) => option,
        Value::Boolean(false) => {
            return layer.drop(
                at,
                "false: the SDK wrote it as `=False`, which sbatch refuses; a flag that is off is left out",
            );
        }
        _ => {
            return layer.drop(
                at,
                format!(
                    "{}: an sbatch option takes text, a number or true",
                    shown(value)
                ),
            );
        }
    };
    let text = Value::String(text);
    if let Err(why) = fits::<JobSettings>("extra_directives", &Value::Array(vec![text.clone()])) {
        return layer.drop(at, why);
    }
    match layer.job.get_mut("extra_directives") {
        Some(Value::Array(directives)) => directives.push(text),
        _ => {
            layer
                .job
                .insert("extra_directives".into(), Value::Array(vec![text]));
        }
    }
}

/// Put `key = value` in `[job]` if the loader takes it; otherwise say why not.
pub(super) fn carry(layer: &mut Layer, key: &str, value: &Value, at: &str) {
    match fits::<JobSettings>(key, value) {
        Ok(()) => {
            layer.job.insert(key.to_string(), value.clone());
        }
        Err(why) => layer.drop(at, why),
    }
}

/// `[packaging]` (a table), or the packaging as `Cluster(default_packaging=...)` and `@task(packaging=...)`
/// write it: `auto`, `wheel`, `none`, `inherit`, `container`, `container:IMAGE`, or an image. `base`: the
/// `[default]` packaging this environment's merges over, for a container whose image is set there.
pub(super) fn packaging(value: &Value, at: &str, layer: &mut Layer, base: Option<&Table>) {
    let table = match value {
        Value::String(spec) => return packaging_spec(spec, at, layer),
        Value::Table(table) => table,
        _ => return layer.drop(at, "packaging must be a table"),
    };
    let get = |key: &str| table.get(key).or_else(|| base.and_then(|b| b.get(key)));
    let kind = get("type").and_then(Value::as_str).unwrap_or("auto");
    for (key, value) in table {
        let here = format!("{at}.{}", key_path(key));
        match (kind, key.as_str()) {
            (_, "modules") => carry(layer, "modules", value, &here),
            ("container", _) => container_setting(key, value, &here, layer),
            ("none", "type") => {}
            ("auto" | "wheel", _) => layer.drop(&here, NO_WHEEL),
            ("inherit", _) => layer.drop(&here, NO_INHERIT),
            (_, "type") => layer.drop(&here, format!("unknown packaging type {}", shown(value))),
            _ => layer.drop(&here, "not a setting of the SDK's packaging"),
        }
    }
    if kind != "container" {
        return;
    }
    let Some(image) = get("image") else {
        if table.contains_key("type") {
            layer.drop(
                &format!("{at}.type"),
                format!("\"container\" without an image: {NO_BUILD}"),
            );
        }
        return;
    };
    let mut container = Table::new();
    container.insert("image".into(), image.clone());
    container.insert("runtime".into(), Value::String("pyxis".into()));
    if fits::<JobSettings>("container", &Value::Table(container.clone())).is_err() {
        // Said where the image is written, when it is this environment's.
        if table.contains_key("image") {
            let why = fits::<JobSettings>("container", &Value::Table(container))
                .err()
                .unwrap_or_default();
            layer.drop(&format!("{at}.image"), why);
        }
        return;
    }
    for key in ["mounts", "workdir"] {
        let Some(value) = get(key) else { continue };
        let mut candidate = container.clone();
        candidate.insert(key.into(), value.clone());
        match fits::<JobSettings>("container", &Value::Table(candidate.clone())) {
            Ok(()) => container = candidate,
            Err(why) if table.contains_key(key) => layer.drop(&format!("{at}.{key}"), why),
            Err(_) => {}
        }
    }
    layer
        .job
        .insert("container".into(), Value::Table(container));
}

/// One key of a container packaging; `image`, `mounts` and `workdir` are read by [`packaging`].
fn container_setting(key: &str, value: &Value, at: &str, layer: &mut Layer) {
    match key {
        "type" | "image" | "mounts" | "workdir" => {}
        "mount_job_dir" => {
            if value.as_bool() != Some(false) {
                layer.drop(
                    at,
                    "slurmkit mounts only what the container's mounts list: add the job directory there if the payload needs it",
                );
            }
        }
        "srun_args" => layer.drop(
            at,
            "slurmkit writes the srun line itself; sbatch options go in extra_directives",
        ),
        "python_executable" => layer.drop(at, "slurmkit runs no Python runner in the container"),
        "runtime" | "dockerfile" | "context" | "build_args" | "build_secrets" | "push"
        | "platform" | "no_cache" | "tls_verify" | "use_digest" | "registry" | "name" | "tag" => {
            layer.drop(at, NO_BUILD)
        }
        _ => layer.drop(at, "not a setting of the SDK's container packaging"),
    }
}

/// The packaging as one string.
fn packaging_spec(spec: &str, at: &str, layer: &mut Layer) {
    let image = match spec {
        "none" => return,
        "auto" | "wheel" => return layer.drop(at, format!("{spec:?}: {NO_WHEEL}")),
        "inherit" => return layer.drop(at, format!("{spec:?}: {NO_INHERIT}")),
        "container" => return layer.drop(at, format!("{spec:?}: {NO_BUILD}")),
        _ => spec.strip_prefix("container:").unwrap_or(spec),
    };
    let mut table = Table::new();
    table.insert("type".into(), Value::String("container".into()));
    table.insert("image".into(), Value::String(image.into()));
    packaging(&Value::Table(table), at, layer, None);
}

/// A count written as text (`"8"`) as the number the loader takes.
pub(super) fn as_integer(value: &Value) -> Value {
    match value {
        Value::String(text) => text
            .trim()
            .parse::<i64>()
            .map_or_else(|_| value.clone(), Value::Integer),
        _ => value.clone(),
    }
}

/// A number where text is wanted (`gpus = 4`) as text.
fn as_text(value: &Value) -> Value {
    match value {
        Value::Integer(n) => Value::String(n.to_string()),
        _ => value.clone(),
    }
}

/// A memory size slurmkit reads as written, or with a fraction (`"1.5G"`) in whole MiB.
fn size(value: &Value) -> Value {
    let Value::String(text) = value else {
        return value.clone();
    };
    if Memory::parse(text).is_ok() {
        return value.clone();
    }
    let trimmed = text
        .trim()
        .trim_end_matches(['B', 'b'])
        .trim_end_matches('i');
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let mib_per_unit = match unit {
        "K" | "k" => 1.0 / 1024.0,
        "" | "M" | "m" => 1.0,
        "G" | "g" => 1024.0,
        "T" | "t" => 1024.0 * 1024.0,
        _ => return value.clone(),
    };
    match number.parse::<f64>() {
        Ok(x) if x > 0.0 && x * mib_per_unit < 1e12 => {
            Value::String(format!("{}M", (x * mib_per_unit).ceil() as u64))
        }
        _ => value.clone(),
    }
}
