//! One resolved plan per invocation, before any I/O: flags, the Slurmfile (with its environment) and
//! ssh_config, merged in one place.
//!
//! As ripgrep turns low-level arguments into high-level ones, the command line becomes [`Flags`] and
//! [`JobFlags`] (plain values, no clap), and those become a top layer merged over the Slurmfile with the
//! same [`config::merge`] that puts environments over the file and `[jobs.<name>]` over `[job]`. Where
//! the cluster is and how to reach it ([`Plan::target`]) applies one precedence, flag > Slurmfile >
//! ssh_config > default, to the target and to every jump hop ([`super::hops`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::config::{self, ClusterSettings, JobSettings, Slurmfile, resolve_local_path};
use crate::types::names::JobName;
use crate::types::spec::{JobSpec, Payload};

use super::error::{PlanError, refuse};
use super::flags::{Flags, JobFlags, top_layer};
use super::remote::Target;
use super::work;

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
        // Each job is resolved once (its inputs are globbed then, which for thousands of files shows).
        let resolved: std::cell::RefCell<BTreeMap<String, JobSpec>> = std::cell::RefCell::new(
            selected
                .into_iter()
                .filter_map(|spec| Some((spec.entry.as_ref()?.to_string(), spec)))
                .collect(),
        );
        let spec_of = |name: &str| -> Result<JobSpec, PlanError> {
            if let Some(spec) = resolved.borrow().get(name) {
                return Ok(spec.clone());
            }
            let spec = self.job(Some(name), &entries)?;
            resolved.borrow_mut().insert(name.to_string(), spec.clone());
            Ok(spec)
        };
        let after_of = |name: &str| -> Result<Vec<String>, PlanError> {
            let spec = spec_of(name)?;
            Ok(spec.after.iter().map(|a| a.job.to_string()).collect())
        };
        let order = work::order(&roots, &after_of, &defined, self.file.as_ref())?;
        order.iter().map(|name| spec_of(name)).collect()
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
