//! The command line's say as plain values ([`Flags`], [`JobFlags`]: no clap here), and those values as
//! the top layer of the Slurmfile merge: `{ cluster = {...}, job = {...} }`, every value checked by the
//! rules the Slurmfile's own value would be, so a bad one is named as the flag it came from.

use std::path::{Path, PathBuf};

use crate::config::{BackendKind, JobSettings};
use crate::types::HostKeyPolicy;
use crate::types::names::{Account, InvalidValue, JobName, Partition, Qos};
use crate::types::units::TimeLimit;

use super::error::{PlanError, refuse};

/// What the command line says about where and how to run, above the Slurmfile.
#[derive(Debug, Clone, Default)]
pub struct Flags {
    /// The Slurmfile to use (a file, or a directory to look in); default: search up from `cwd`.
    pub slurmfile: Option<PathBuf>,
    pub environment: Option<String>,
    pub hostname: Option<String>,
    pub username: Option<String>,
    pub port: Option<u16>,
    pub host_key_policy: Option<HostKeyPolicy>,
    pub key_file: Option<PathBuf>,
    pub proxy_jump: Option<String>,
    pub backend: Option<BackendKind>,
    pub data_dir: Option<PathBuf>,
    pub cache_dir: Option<PathBuf>,
}

/// What the command line says about the job, above the Slurmfile's `[job]` and `[jobs.<name>]`.
#[derive(Debug, Clone, Default)]
pub struct JobFlags {
    pub name: Option<String>,
    pub partition: Option<String>,
    pub account: Option<String>,
    pub qos: Option<String>,
    pub time: Option<String>,
    /// sbatch's other options, as `(Slurmfile key, flag, value)`: checked as the Slurmfile's would be.
    pub options: Vec<(&'static str, &'static str, String)>,
    /// `KEY=JSON` arguments, over the Slurmfile's `args`.
    pub args: Vec<String>,
    /// Run this instead of what the Slurmfile says.
    pub command: Vec<String>,
}

/// The flags as `{ cluster = {...}, job = {...} }`, each value validated first.
pub(super) fn top_layer(
    flags: &Flags,
    job: &JobFlags,
    cwd: &Path,
) -> Result<toml::Table, PlanError> {
    let mut cluster = toml::Table::new();
    let set = |table: &mut toml::Table, key: &str, value: Option<toml::Value>| {
        if let Some(value) = value {
            table.insert(key.to_string(), value);
        }
    };
    let text = |v: &Option<String>| v.clone().map(toml::Value::String);
    for (flag, value, check) in [
        (
            "--hostname",
            &flags.hostname,
            crate::types::names::host_name as fn(&str) -> Result<(), InvalidValue>,
        ),
        (
            "--username",
            &flags.username,
            crate::types::names::user_name,
        ),
    ] {
        if let Some(value) = value {
            check(value).map_err(|source| PlanError::Flag { flag, source })?;
        }
    }
    set(&mut cluster, "hostname", text(&flags.hostname));
    set(&mut cluster, "username", text(&flags.username));
    set(
        &mut cluster,
        "port",
        flags.port.map(|p| toml::Value::Integer(p.into())),
    );
    set(
        &mut cluster,
        "host_key_policy",
        flags
            .host_key_policy
            .map(|p| toml::Value::String(p.as_str().into())),
    );
    // Relative to where the command runs, not to the Slurmfile.
    if let Some(key) = &flags.key_file {
        let path = cwd.join(key);
        let Some(text) = path.to_str() else {
            refuse!("--key-file {}: the path is not UTF-8", path.display());
        };
        cluster.insert("key_filename".into(), toml::Value::String(text.to_string()));
    }
    set(&mut cluster, "proxy_jump", text(&flags.proxy_jump));
    set(
        &mut cluster,
        "backend",
        flags.backend.map(|b| {
            toml::Value::String(match b {
                BackendKind::Ssh => "ssh".into(),
                BackendKind::Local => "local".into(),
            })
        }),
    );
    let mut job_table = toml::Table::new();
    // Each value is checked as it will be read, and a refusal names the flag it came from.
    let checked = |flag: &'static str,
                   value: &Option<String>,
                   check: fn(&str) -> Result<(), InvalidValue>| {
        value
            .as_deref()
            .map(|v| {
                check(v)
                    .map(|()| toml::Value::String(v.to_string()))
                    .map_err(|source| PlanError::Flag { flag, source })
            })
            .transpose()
    };
    type Check = fn(&str) -> Result<(), InvalidValue>;
    let job_flags: [(&str, &'static str, &Option<String>, Check); 5] = [
        ("name", "--name", &job.name, |v| JobName::parse(v).map(drop)),
        ("partition", "--partition", &job.partition, |v| {
            Partition::parse(v).map(drop)
        }),
        ("account", "--account", &job.account, |v| {
            Account::parse(v).map(drop)
        }),
        ("qos", "--qos", &job.qos, |v| Qos::parse(v).map(drop)),
        ("time", "--time", &job.time, |v| {
            TimeLimit::parse(v).map(drop)
        }),
    ];
    for (key, flag, value, check) in job_flags {
        set(&mut job_table, key, checked(flag, value, check)?);
    }
    for (key, flag, value) in &job.options {
        let value = option_value(key, flag, value)?;
        job_table.insert(key.to_string(), value);
    }
    if !job.args.is_empty() {
        let mut args = toml::Table::new();
        for arg in &job.args {
            let (key, value) = parse_arg(arg)?;
            args.insert(key, value);
        }
        job_table.insert("args".into(), toml::Value::Table(args));
    }
    if !job.command.is_empty() {
        for argument in &job.command {
            crate::types::names::command_argument(argument).map_err(|source| PlanError::Flag {
                flag: "the command after --",
                source,
            })?;
        }
        let argv = job
            .command
            .iter()
            .cloned()
            .map(toml::Value::String)
            .collect();
        job_table.insert("command".into(), toml::Value::Array(argv));
    }
    let mut top = toml::Table::new();
    top.insert("cluster".into(), toml::Value::Table(cluster));
    top.insert("job".into(), toml::Value::Table(job_table));
    Ok(top)
}

/// An sbatch option from the command line as the Slurmfile would hold it, checked by the same rules.
fn option_value(key: &str, flag: &'static str, raw: &str) -> Result<toml::Value, PlanError> {
    let value = match key {
        "ntasks" | "cpus_per_task" => raw
            .parse::<i64>()
            .map(toml::Value::Integer)
            .unwrap_or_else(|_| toml::Value::String(raw.to_string())),
        "nodes" if !raw.contains('-') => raw
            .parse::<i64>()
            .map(toml::Value::Integer)
            .unwrap_or_else(|_| toml::Value::String(raw.to_string())),
        _ => toml::Value::String(raw.to_string()),
    };
    let mut probe = toml::Table::new();
    probe.insert(key.to_string(), value.clone());
    toml::Value::Table(probe)
        .try_into::<JobSettings>()
        .map_err(|e: toml::de::Error| PlanError::FlagValue {
            flag,
            message: e.message().trim().to_string(),
        })?;
    Ok(value)
}

/// `--arg KEY=JSON` as a TOML value (JSON has no TOML form for `null`).
fn parse_arg(arg: &str) -> Result<(String, toml::Value), PlanError> {
    let refuse = |rule: &'static str| PlanError::Flag {
        flag: "--arg",
        source: InvalidValue {
            what: "job argument",
            value: arg.to_string(),
            rule,
        },
    };
    let (key, json) = arg
        .split_once('=')
        .ok_or_else(|| refuse("write KEY=JSON, e.g. --arg lr=0.1 or --arg name='\"run 1\"'"))?;
    if key.is_empty() || key.chars().any(char::is_control) {
        return Err(refuse("the key before = must be a name"));
    }
    let value: serde_json::Value = serde_json::from_str(json).map_err(|_| {
        refuse("the value after = must be JSON: numbers and true/false as they are, strings in double quotes (--arg name='\"run 1\"')")
    })?;
    let value = toml::Value::try_from(&value)
        .map_err(|_| refuse("null has no place in a job's arguments; leave the key out"))?;
    Ok((key.to_string(), value))
}
