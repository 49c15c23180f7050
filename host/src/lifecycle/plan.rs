//! One resolved plan per invocation, before any I/O: flags, the Slurmfile (with its environment) and
//! ssh_config, merged in one place.
//!
//! As ripgrep turns low-level arguments into high-level ones, the command line becomes [`Flags`] and
//! [`JobFlags`] (plain values, no clap), and those become a top layer merged over the Slurmfile with the
//! same [`config::merge`] that puts environments over the file and `[jobs.<name>]` over `[job]`. Where
//! the cluster is and how to reach it ([`Plan::target`]) applies one precedence, flag > Slurmfile >
//! ssh_config > default, to the target and to every jump hop ([`super::hops`]).

use std::path::{Path, PathBuf};

use crate::config::{
    self, BackendKind, ClusterSettings, JobSettings, Slurmfile, resolve_local_path,
};
use crate::types::HostKeyPolicy;
use crate::types::names::{Account, InvalidValue, JobName, Partition, Qos};
use crate::types::spec::{JobSpec, Payload};
use crate::types::units::TimeLimit;

use super::error::{PlanError, refuse};
use super::remote::Target;
use super::work;

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

/// Where slurmkit keeps its own state.
#[derive(Debug, Clone)]
pub struct Dirs {
    /// The journal's directory.
    pub data: PathBuf,
    /// Compiled plugins.
    pub cache: PathBuf,
}

impl Dirs {
    fn resolve(flags: &Flags) -> Result<Dirs, PlanError> {
        let data = match &flags.data_dir {
            Some(dir) => dir.clone(),
            None => match dirs::data_dir() {
                Some(dir) => dir.join("slurmkit"),
                None => refuse!("no user data directory; pass --data-dir"),
            },
        };
        let cache = match (&flags.cache_dir, &flags.data_dir) {
            (Some(dir), _) => dir.clone(),
            (None, Some(dir)) => dir.join("cache/components"),
            (None, None) => dirs::cache_dir()
                .map(|d| d.join("slurmkit"))
                .unwrap_or_else(|| data.join("cache"))
                .join("components"),
        };
        Ok(Dirs { data, cache })
    }

    pub fn journal(&self) -> PathBuf {
        self.data.join("journal.sqlite")
    }
}

/// Everything an invocation needs to know before it does anything.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The Slurmfile, if one was found (none is fine when flags say everything).
    pub file: Option<Slurmfile>,
    /// The site layer, if the site has one: its policies run on every job, before the Slurmfile's.
    pub site: Option<config::SiteLayer>,
    pub dirs: Dirs,
    /// The flags as a layer over the Slurmfile: `cluster` and `job` tables.
    top: toml::Table,
    /// Where relative paths without a Slurmfile are resolved.
    cwd: PathBuf,
}

impl Plan {
    /// Find and read the Slurmfile and turn the flags into the top layer. Flag values are validated
    /// here, so a bad one is named as the flag it came from.
    pub fn resolve(flags: &Flags, job: &JobFlags, cwd: &Path) -> Result<Plan, PlanError> {
        let file = match Slurmfile::discover(flags.slurmfile.as_deref(), cwd)? {
            Some(path) => Some(Slurmfile::load(&path, flags.environment.as_deref())?),
            None if flags.environment.is_some() => refuse!(
                "--env / SLURM_ENV was given but no Slurmfile was found (looked in {} and its parents)",
                cwd.display()
            ),
            None => None,
        };
        let site = config::SiteLayer::load(&config::SiteLayer::path())?;
        Ok(Plan {
            file,
            site,
            dirs: Dirs::resolve(flags)?,
            top: top_layer(flags, job, cwd)?,
            cwd: cwd.to_path_buf(),
        })
    }

    /// The directory relative paths are resolved against: the Slurmfile's, else the current one.
    pub fn base_dir(&self) -> &Path {
        self.file.as_ref().map_or(&self.cwd, |f| &f.dir)
    }

    /// `[cluster]` with the flags over it.
    pub fn cluster_settings(&self) -> Result<ClusterSettings, PlanError> {
        let mut table = self.file_table("cluster");
        config::merge(&mut table, layer(&self.top, "cluster"));
        self.read(table)
    }

    /// The cluster to reach, with every hop resolved. Reads ssh_config (running `ssh -G`), so it runs on
    /// a blocking thread.
    pub async fn target(&self) -> Result<Target, PlanError> {
        let plan = self.clone();
        tokio::task::spawn_blocking(move || {
            super::hops::target(&plan.cluster_settings()?, plan.base_dir())
        })
        .await
        .unwrap_or_else(|e| {
            Err(PlanError::Refused(format!(
                "resolving the cluster failed: {e}"
            )))
        })
    }

    /// The jobs to render or submit: the named `[jobs.<name>]` entries, or the only one, or `[job]`
    /// alone. Each is `[job]`, then its entry, then the flags, merged.
    pub fn jobs(&self, names: &[String]) -> Result<Vec<JobSpec>, PlanError> {
        let entries = self.file_table("jobs");
        let entry_names: Vec<&String> = entries.keys().collect();
        let selected: Vec<Option<String>> = if !names.is_empty() {
            for name in names {
                if !entries.contains_key(name) {
                    refuse!(
                        "no job {name:?} in {}: defined jobs are {}",
                        self.file
                            .as_ref()
                            .map(|f| f.path.display().to_string())
                            .unwrap_or_else(|| "(no Slurmfile)".into()),
                        if entry_names.is_empty() {
                            "none".to_string()
                        } else {
                            format!("{entry_names:?}")
                        }
                    );
                }
            }
            names.iter().cloned().map(Some).collect()
        } else {
            match entry_names.as_slice() {
                [] => vec![None],
                [only] => vec![Some((*only).clone())],
                many => refuse!(
                    "the Slurmfile defines several jobs ({}); name one",
                    many.iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }
        };
        selected
            .into_iter()
            .map(|entry| self.job(entry.as_deref(), &entries))
            .collect()
    }

    fn job(&self, entry: Option<&str>, entries: &toml::Table) -> Result<JobSpec, PlanError> {
        let mut table = self.file_table("job");
        if let Some(toml::Value::Table(over)) = entry.and_then(|name| entries.get(name)) {
            config::merge_job(&mut table, over.clone());
        }
        config::merge_job(&mut table, layer(&self.top, "job"));
        let settings: JobSettings = self.read(table)?;
        let payload = match payload(&settings, self.base_dir()) {
            // Without a Slurmfile, only `-- COMMAND` says what to run: say where none was found.
            Err(_) if self.file.is_none() => {
                return Err(PlanError::NoSlurmfile {
                    start: self.cwd.clone(),
                });
            }
            payload => payload?,
        };
        let origin = work::Origin {
            file: self.file.as_ref(),
            entry,
        };
        let name = match (&settings.name, entry) {
            (Some(name), _) => name.clone(),
            (None, Some(entry)) => {
                JobName::parse(entry).map_err(|source| PlanError::EntryName {
                    entry: entry.to_string(),
                    source,
                })?
            }
            (None, None) => default_name(&payload),
        };
        let mut spec = spec_from(name, payload, &settings);
        work::resolve(&mut spec, &settings, &origin, self.base_dir())?;
        Ok(spec)
    }

    /// The jobs to submit for `names`: with `only`, just those (their `after` jobs are looked up among
    /// earlier submissions); otherwise each with every job it runs after, dependencies first.
    pub fn graph(&self, names: &[String], only: bool) -> Result<Vec<JobSpec>, PlanError> {
        let mut selected = self.jobs(names)?;
        if only {
            // Among the named jobs, those run after go first (the others come from earlier runs).
            let mut ordered: Vec<JobSpec> = Vec::with_capacity(selected.len());
            while !selected.is_empty() {
                let ready = selected
                    .iter()
                    .position(|spec| {
                        spec.after.iter().all(|a| {
                            !selected
                                .iter()
                                .any(|other| other.entry.as_ref() == Some(&a.job))
                        })
                    })
                    .ok_or_else(|| {
                        PlanError::Refused(
                            "the jobs named run after each other in a cycle".to_string(),
                        )
                    })?;
                ordered.push(selected.remove(ready));
            }
            return Ok(ordered);
        }
        let entries = self.file_table("jobs");
        let defined: Vec<String> = entries.keys().cloned().collect();
        let roots: Vec<String> = selected
            .iter()
            .filter_map(|spec| spec.entry.as_ref().map(|e| e.to_string()))
            .collect();
        if roots.len() < selected.len() {
            // `[job]` alone, or a command from the command line: nothing to run after.
            if let Some(spec) = selected.iter().find(|s| !s.after.is_empty()) {
                return Err(PlanError::Refused(format!(
                    "job {} runs after other jobs, which only a [jobs.<name>] entry can do",
                    spec.name
                )));
            }
            return Ok(selected);
        }
        let after_of = |name: &str| -> Result<Vec<String>, PlanError> {
            let spec = self.job(Some(name), &entries)?;
            Ok(spec.after.iter().map(|a| a.job.to_string()).collect())
        };
        let order = work::order(&roots, &after_of, &defined, self.file.as_ref())?;
        order
            .iter()
            .map(|name| self.job(Some(name), &entries))
            .collect()
    }

    fn file_table(&self, key: &str) -> toml::Table {
        self.file
            .as_ref()
            .map(|f| layer(&f.table, key))
            .unwrap_or_default()
    }

    /// Read a merged table into its settings type.
    fn read<T: serde::de::DeserializeOwned>(&self, table: toml::Table) -> Result<T, PlanError> {
        toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| {
                PlanError::Config(config::ConfigError::Invalid {
                    path: self
                        .file
                        .as_ref()
                        .map_or_else(|| PathBuf::from("(flags)"), |f| f.path.clone()),
                    message: e.message().to_string(),
                })
            })
    }
}

/// `table[key]` if it is a table, else empty.
fn layer(table: &toml::Table, key: &str) -> toml::Table {
    match table.get(key) {
        Some(toml::Value::Table(t)) => t.clone(),
        _ => toml::Table::new(),
    }
}

/// The flags as `{ cluster = {...}, job = {...} }`, each value validated first.
fn top_layer(flags: &Flags, job: &JobFlags, cwd: &Path) -> Result<toml::Table, PlanError> {
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

fn payload(settings: &JobSettings, base: &Path) -> Result<Payload, PlanError> {
    match (&settings.command, &settings.script, &settings.script_file) {
        (Some(argv), None, None) if !argv.is_empty() => Ok(Payload::Command(
            argv.iter().map(|a| a.clone().into_string()).collect(),
        )),
        (None, Some(body), None) => Ok(Payload::Script(body.clone().into_string())),
        (None, None, Some(path)) => {
            let path = resolve_local_path(path, base);
            let body = std::fs::read_to_string(&path)
                .map_err(|source| PlanError::ScriptFile { path, source })?;
            crate::types::names::script_text(&body)?;
            Ok(Payload::Script(body))
        }
        (None, None, None) | (Some(_), None, None) => refuse!(
            "the job has nothing to run: set `command`, `script` or `script_file`, or give a command after `--`"
        ),
        _ => refuse!("set only one of `command`, `script` and `script_file` for a job"),
    }
}

/// A name from the command's program (`/usr/bin/python3` → `python3`), or `job`.
fn default_name(payload: &Payload) -> JobName {
    let from_command = match payload {
        Payload::Command(argv) => argv
            .first()
            .and_then(|p| Path::new(p).file_name())
            .map(|n| n.to_string_lossy().into_owned()),
        Payload::Script(_) => None,
    };
    from_command
        .and_then(|n| JobName::parse(&n).ok())
        .unwrap_or_else(|| JobName::parse("job").expect("valid"))
}

fn spec_from(name: JobName, payload: Payload, settings: &JobSettings) -> JobSpec {
    let settings = settings.clone();
    let mut spec = JobSpec::new(name, payload);
    spec.working_dir = settings.working_dir;
    spec.environment = settings
        .environment
        .unwrap_or_default()
        .into_iter()
        .map(|(name, value)| (name.into_string(), value.into_string()))
        .collect();
    spec.modules = settings
        .modules
        .unwrap_or_default()
        .into_iter()
        .map(|m| m.into_string())
        .collect();
    spec.partition = settings.partition;
    spec.account = settings.account;
    spec.qos = settings.qos;
    spec.reservation = settings.reservation;
    spec.time_limit = settings.time;
    spec.nodes = settings.nodes;
    spec.ntasks = settings.ntasks;
    spec.ntasks_per_node = settings.ntasks_per_node;
    spec.cpus_per_task = settings.cpus_per_task;
    spec.memory = settings.mem;
    spec.mem_per_cpu = settings.mem_per_cpu;
    spec.gpus = settings.gpus;
    spec.gres = settings.gres;
    spec.constraint = settings.constraint;
    spec.exclusive = settings.exclusive.unwrap_or(false);
    spec.array = settings.array;
    spec.dependencies = settings.dependency.map(|d| d.0).unwrap_or_default();
    spec.output = settings.output;
    spec.error = settings.error;
    spec.extra_directives = settings
        .extra_directives
        .unwrap_or_default()
        .into_iter()
        .map(|d| d.into_string())
        .collect();
    spec.container = settings.container;
    spec
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(text: Option<&str>, job: JobFlags) -> Result<Plan, PlanError> {
        let dir = tempfile::tempdir().unwrap();
        if let Some(text) = text {
            std::fs::write(dir.path().join("Slurmfile.toml"), text).unwrap();
        }
        let flags = Flags {
            data_dir: Some(dir.path().join("data")),
            ..Flags::default()
        };
        Plan::resolve(&flags, &job, dir.path())
    }

    fn one(text: Option<&str>, job: JobFlags) -> Result<JobSpec, PlanError> {
        Ok(plan(text, job)?.jobs(&[])?.remove(0))
    }

    #[test]
    fn named_job_merges_over_defaults_and_flags_over_both() {
        let text = "[job]\npartition = \"debug\"\ntime = \"10m\"\nenvironment = { A = \"1\" }\n\n[jobs.train]\ncommand = [\"python\", \"train.py\"]\ntime = \"2h\"\nenvironment = { B = \"2\" }\n";
        let spec = one(Some(text), JobFlags::default()).unwrap();
        assert_eq!(spec.name.as_str(), "train");
        assert_eq!(spec.partition.unwrap().as_str(), "debug");
        assert_eq!(spec.time_limit.unwrap().seconds(), 7200);
        assert_eq!(spec.environment.len(), 2);
        let flags = JobFlags {
            time: Some("5m".into()),
            command: vec!["hostname".into()],
            ..JobFlags::default()
        };
        let spec = one(Some(text), flags).unwrap();
        assert_eq!(
            spec.time_limit.unwrap().seconds(),
            300,
            "a flag beats [jobs.train]"
        );
        assert_eq!(spec.payload, Payload::Command(vec!["hostname".into()]));
        let err = plan(Some(text), JobFlags::default())
            .unwrap()
            .jobs(&["nope".into()])
            .unwrap_err();
        assert!(
            err.to_string().contains("defined jobs are [\"train\"]"),
            "{err}"
        );
    }

    #[test]
    fn a_command_flag_replaces_a_script_from_the_slurmfile() {
        let flags = JobFlags {
            command: vec!["true".into()],
            ..JobFlags::default()
        };
        let spec = one(Some("[job]\nscript = \"echo hi\"\n"), flags).unwrap();
        assert_eq!(spec.payload, Payload::Command(vec!["true".into()]));
    }

    #[test]
    fn hostile_names_from_flags_are_refused() {
        for hostile in ["x; rm -rf ~", "a\nb", "$(id)"] {
            let flags = JobFlags {
                name: Some(hostile.into()),
                command: vec!["true".into()],
                ..JobFlags::default()
            };
            let err = one(None, flags).unwrap_err();
            assert!(err.to_string().contains("invalid job name"), "{err}");
        }
        let flags = JobFlags {
            partition: Some("debug;id".into()),
            command: vec!["true".into()],
            ..JobFlags::default()
        };
        assert!(one(None, flags).is_err());
    }

    #[test]
    fn payload_needs_exactly_one_source() {
        // Without a Slurmfile, what is missing is the Slurmfile (or a command).
        assert!(matches!(
            one(None, JobFlags::default()).unwrap_err(),
            PlanError::NoSlurmfile { .. }
        ));
        assert!(
            one(Some("[job]\npartition = \"debug\"\n"), JobFlags::default())
                .unwrap_err()
                .to_string()
                .contains("nothing to run")
        );
        let err = one(
            Some("[job]\ncommand = [\"a\"]\nscript = \"b\"\n"),
            JobFlags::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("only one"), "{err}");
        let flags = JobFlags {
            command: vec!["/usr/bin/hostname".into()],
            ..JobFlags::default()
        };
        assert_eq!(one(None, flags).unwrap().name.as_str(), "hostname");
    }

    #[test]
    fn several_jobs_come_back_in_the_order_asked() {
        let text = "[job]\ncommand = [\"true\"]\n[jobs.a]\n[jobs.b]\npartition = \"p\"\n";
        let plan = plan(Some(text), JobFlags::default()).unwrap();
        let specs = plan.jobs(&["b".into(), "a".into()]).unwrap();
        let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["b", "a"]);
        assert!(
            plan.jobs(&[])
                .unwrap_err()
                .to_string()
                .contains("several jobs")
        );
    }

    /// Mistakes in `inputs` and `after` that only show once the files are looked at, refused with
    /// the entry's line.
    #[test]
    fn inputs_and_dependencies_that_cannot_work_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("data")).unwrap();
        std::fs::write(dir.path().join("data/x.csv"), "x").unwrap();
        std::fs::write(dir.path().join("a.csv"), "a").unwrap();
        let cases = [
            (
                "inputs = [{ from = \"a.csv\", to = \"data\" }, \"data/*.csv\"]",
                "needs it to be a directory",
            ),
            (
                "inputs = [{ from = \"a.csv\", to = \"job.json\" }]",
                "slurmkit writes in every job directory",
            ),
            ("after = [\"prep-a\", \"prep_a\"]", "rename one"),
        ];
        for (body, message) in cases {
            let text = format!(
                "[job]\ncommand = [\"true\"]\n[jobs.prep-a]\n[jobs.prep_a]\n[jobs.x]\n{body}\n"
            );
            std::fs::write(dir.path().join("Slurmfile.toml"), text).unwrap();
            let flags = Flags {
                data_dir: Some(dir.path().join("data-dir")),
                ..Flags::default()
            };
            let plan = Plan::resolve(&flags, &JobFlags::default(), dir.path()).unwrap();
            let error = plan.jobs(&["x".into()]).unwrap_err().to_string();
            assert!(error.contains(message), "{body}: {error}");
            assert!(error.contains("Slurmfile.toml:6:"), "{body}: {error}");
        }
    }
}
