//! Flags plus Slurmfile (plus ssh_config) resolved into one plan before any I/O.

use std::path::{Path, PathBuf};

use anyhow::Context;

use super::args::{GlobalArgs, JobArgs};
use crate::cluster::{Backend, Target, default_known_hosts};
use crate::config::{BackendKind, ClusterSettings, JobSettings, Slurmfile, resolve_local_path};
use crate::job::spec::{EnvName, ExtraDirective, JobSpec, ModuleName, Payload, TimeLimit};
use crate::slurm::validate::{Account, JobName, Partition, Qos};
use crate::ssh::Hop;
use crate::ssh::auth::{AuthPlan, Identity};
use crate::ssh::session::Transport;

/// A flag, Slurmfile or job spec that cannot become a plan: input for the user to fix (exit code 3).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PlanError(pub String);

macro_rules! refuse {
    ($($arg:tt)*) => {
        return Err(PlanError(format!($($arg)*)).into())
    };
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
    pub fn resolve(global: &GlobalArgs) -> anyhow::Result<Dirs> {
        let data = match &global.data_dir {
            Some(dir) => dir.clone(),
            None => dirs::data_dir()
                .context("no user data directory; pass --data-dir")?
                .join("slurmkit"),
        };
        let cache = match (&global.cache_dir, &global.data_dir) {
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

/// The Slurmfile, if one is found (none is fine when flags say everything).
pub fn load_slurmfile(global: &GlobalArgs) -> anyhow::Result<Option<Slurmfile>> {
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let Some(path) = Slurmfile::discover(global.slurmfile.as_deref(), &cwd)? else {
        if global.environment.is_some() {
            refuse!(
                "--env / SLURM_ENV was given but no Slurmfile was found (looked in {} and its parents)",
                cwd.display()
            );
        }
        return Ok(None);
    };
    Ok(Some(Slurmfile::load(&path, global.environment.as_deref())?))
}

/// The cluster to reach.
pub fn resolve_target(global: &GlobalArgs, file: Option<&Slurmfile>) -> anyhow::Result<Target> {
    let empty = ClusterSettings::default();
    let settings = file
        .and_then(|f| f.settings.cluster.as_ref())
        .unwrap_or(&empty);
    let base = file
        .map(|f| f.dir.clone())
        .unwrap_or_else(|| std::env::current_dir().unwrap_or_default());
    let backend = global
        .backend
        .map(BackendKind::from)
        .or(settings.backend)
        .unwrap_or(BackendKind::Ssh);
    let job_base_dir = settings
        .job_base_dir
        .clone()
        .unwrap_or_else(|| "~/slurm_jobs".to_string());
    if backend == BackendKind::Local {
        return Ok(Target {
            key: "local".into(),
            backend: Backend::Local,
            job_base_dir,
        });
    }
    let Some(host) = global
        .hostname
        .clone()
        .or_else(|| settings.hostname.clone())
    else {
        refuse!(
            "no cluster to connect to: set `hostname` in the Slurmfile's [cluster] table, or pass --hostname (or use backend = \"local\")"
        );
    };
    let ssh_config = crate::ssh::config::resolve(&host, settings.ssh_config.as_deref(), &base)?;
    let user = global
        .username
        .clone()
        .or_else(|| settings.username.clone())
        .or_else(|| ssh_config.user.clone())
        .or_else(crate::local_user::name)
        .ok_or_else(|| {
            PlanError("no user name: set `username` in [cluster] or pass --username".into())
        })?;
    let port = global
        .port
        .or(settings.port)
        .or(ssh_config.port)
        .unwrap_or(22);
    let explicit_policy = global.host_key_policy.or(settings.host_key_policy);
    let policy = explicit_policy
        .or(ssh_config.host_key_policy)
        .unwrap_or(crate::ssh::policy::DEFAULT_POLICY);
    let home = dirs::home_dir();
    let known_hosts = match &settings.known_hosts {
        Some(path) => vec![resolve_local_path(path, &base)],
        None if !ssh_config.user_known_hosts.is_empty() => {
            let mut files = ssh_config.user_known_hosts.clone();
            files.extend(default_known_hosts(None));
            files
        }
        None => default_known_hosts(home.clone()),
    };
    let record_to = known_hosts[0].clone();
    let explicit_key = global.key_file.clone().or_else(|| {
        settings
            .key_filename
            .as_ref()
            .map(|k| resolve_local_path(k, &base))
    });
    let mut certificates: Vec<PathBuf> = settings
        .certificate_file
        .iter()
        .map(|c| resolve_local_path(c, &base))
        .collect();
    certificates.extend(ssh_config.certificate_files.iter().cloned());
    let identities = match explicit_key {
        Some(key) => vec![Identity::new(key, &certificates, true)],
        None if !ssh_config.identity_files.is_empty() => ssh_config
            .identity_files
            .iter()
            .filter(|p| p.exists())
            .map(|p| Identity::new(p.clone(), &certificates, true))
            .collect(),
        None => home
            .as_ref()
            .map(|h| Identity::defaults(&h.join(".ssh")))
            .unwrap_or_default(),
    };
    let identities_only = settings
        .identities_only
        .or(ssh_config.identities_only)
        .unwrap_or(false);
    let auth = AuthPlan {
        user: user.clone(),
        identities,
        identities_only,
        agent_socket: std::env::var_os("SSH_AUTH_SOCK").map(PathBuf::from),
    };
    let address = ssh_config.hostname.clone().unwrap_or_else(|| host.clone());
    let target = Hop {
        address: address.clone(),
        port,
        display_name: host.clone(),
        host_key_alias: ssh_config.host_key_alias.clone(),
        known_hosts: known_hosts.clone(),
        record_to: record_to.clone(),
        hash_known_hosts: ssh_config.hash_known_hosts,
        policy,
        auth,
    };
    let jump_spec = global
        .proxy_jump
        .clone()
        .or_else(|| settings.proxy_jump.clone())
        .or(ssh_config.proxy_jump.clone());
    let jumps = match jump_spec {
        Some(spec) if spec != "none" => {
            let overrides = crate::ssh::config::HopOverrides {
                policy: explicit_policy,
                known_hosts: settings
                    .known_hosts
                    .is_some()
                    .then(|| (known_hosts.clone(), record_to.clone())),
            };
            crate::ssh::config::jump_hops(
                &spec,
                &target,
                &overrides,
                settings.ssh_config.as_deref(),
                &base,
            )?
        }
        _ => Vec::new(),
    };
    let mut transport = Transport::default();
    if let Some(seconds) = settings.connect_timeout.or(ssh_config.connect_timeout) {
        transport.connect_timeout = std::time::Duration::from_secs(seconds);
    }
    match settings
        .server_alive_interval
        .or(ssh_config.server_alive_interval)
    {
        Some(0) => transport.keepalive = None,
        Some(seconds) => transport.keepalive = Some(std::time::Duration::from_secs(seconds)),
        None => {}
    }
    Ok(Target {
        key: format!("ssh://{user}@{address}:{port}"),
        backend: Backend::Ssh {
            jumps,
            target: Box::new(target),
            transport,
        },
        job_base_dir,
    })
}

/// The job to render or submit.
pub fn resolve_job(file: Option<&Slurmfile>, args: &JobArgs) -> anyhow::Result<JobSpec> {
    let defaults = file
        .and_then(|f| f.settings.job.clone())
        .unwrap_or_default();
    let jobs = file
        .and_then(|f| f.settings.jobs.clone())
        .unwrap_or_default();
    let (entry, settings) = match &args.job {
        Some(name) => {
            let Some(job) = jobs.get(name) else {
                let known: Vec<&String> = jobs.keys().collect();
                refuse!(
                    "no job {name:?} in {}: defined jobs are {}",
                    file.map(|f| f.path.display().to_string())
                        .unwrap_or_else(|| "(no Slurmfile)".into()),
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        format!("{known:?}")
                    }
                );
            };
            (Some(name.clone()), merge_job(defaults, job.clone()))
        }
        None if jobs.len() == 1 => {
            let (name, job) = jobs.into_iter().next().expect("one job");
            (Some(name), merge_job(defaults, job))
        }
        None if jobs.is_empty() => (None, defaults),
        None => refuse!(
            "the Slurmfile defines several jobs ({}); name one",
            jobs.keys().cloned().collect::<Vec<_>>().join(", ")
        ),
    };
    let base = file.map(|f| f.dir.clone()).unwrap_or_default();
    let payload = payload(&settings, &args.command, &base)?;
    let name = match (&args.name, &settings.name, &entry) {
        (Some(flag), _, _) => JobName::parse(flag)?,
        (None, Some(name), _) => name.clone(),
        (None, None, Some(entry)) => JobName::parse(entry).with_context(|| {
            format!("the job entry name {entry:?} is not a valid job name; set `name`")
        })?,
        (None, None, None) => default_name(&payload),
    };
    Ok(JobSpec {
        name,
        payload,
        working_dir: settings.working_dir,
        environment: settings
            .environment
            .unwrap_or_default()
            .into_iter()
            .map(|(name, value)| (name.into_string(), value))
            .collect(),
        modules: settings
            .modules
            .unwrap_or_default()
            .into_iter()
            .map(ModuleName::into_string)
            .collect(),
        partition: args
            .partition
            .as_deref()
            .map(Partition::parse)
            .transpose()?
            .or(settings.partition),
        account: args
            .account
            .as_deref()
            .map(Account::parse)
            .transpose()?
            .or(settings.account),
        qos: args
            .qos
            .as_deref()
            .map(Qos::parse)
            .transpose()?
            .or(settings.qos),
        reservation: settings.reservation,
        time_limit: args
            .time
            .as_deref()
            .map(TimeLimit::parse)
            .transpose()?
            .or(settings.time),
        nodes: settings.nodes,
        ntasks: settings.ntasks,
        ntasks_per_node: settings.ntasks_per_node,
        cpus_per_task: settings.cpus_per_task,
        memory: settings.mem,
        mem_per_cpu: settings.mem_per_cpu,
        gpus: settings.gpus,
        gres: settings.gres,
        constraint: settings.constraint,
        exclusive: settings.exclusive.unwrap_or(false),
        array: settings.array,
        dependencies: settings.dependency.map(|d| d.0).unwrap_or_default(),
        output: settings.output,
        error: settings.error,
        extra_directives: settings
            .extra_directives
            .unwrap_or_default()
            .into_iter()
            .map(ExtraDirective::into_string)
            .collect(),
    })
}

fn payload(
    settings: &JobSettings,
    command_override: &[String],
    base: &Path,
) -> anyhow::Result<Payload> {
    if !command_override.is_empty() {
        return Ok(Payload::Command(command_override.to_vec()));
    }
    match (&settings.command, &settings.script, &settings.script_file) {
        (Some(argv), None, None) if !argv.is_empty() => Ok(Payload::Command(argv.clone())),
        (None, Some(body), None) => Ok(Payload::Script(body.clone())),
        (None, None, Some(path)) => {
            let path = resolve_local_path(path, base);
            let body = std::fs::read_to_string(&path).map_err(|e| {
                PlanError(format!("cannot read script_file {}: {e}", path.display()))
            })?;
            Ok(Payload::Script(body))
        }
        (None, None, None) => refuse!(
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

/// `[jobs.<name>]` over `[job]`: each key replaces the default; `environment` merges key by key.
fn merge_job(base: JobSettings, over: JobSettings) -> JobSettings {
    macro_rules! pick {
        ($($field:ident),*) => { JobSettings { $($field: over.$field.or(base.$field),)* environment: merge_env(base.environment, over.environment) } };
    }
    pick!(
        name,
        command,
        script,
        script_file,
        working_dir,
        modules,
        partition,
        account,
        qos,
        reservation,
        time,
        nodes,
        ntasks,
        ntasks_per_node,
        cpus_per_task,
        mem,
        mem_per_cpu,
        gpus,
        gres,
        constraint,
        exclusive,
        array,
        dependency,
        output,
        error,
        extra_directives
    )
}

fn merge_env(
    base: Option<std::collections::BTreeMap<EnvName, String>>,
    over: Option<std::collections::BTreeMap<EnvName, String>>,
) -> Option<std::collections::BTreeMap<EnvName, String>> {
    match (base, over) {
        (Some(mut base), Some(over)) => {
            base.extend(over);
            Some(base)
        }
        (base, over) => over.or(base),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(job: Option<&str>) -> JobArgs {
        JobArgs {
            job: job.map(String::from),
            ..JobArgs::default()
        }
    }

    fn file(text: &str) -> Slurmfile {
        Slurmfile::parse(Path::new("/p/Slurmfile.toml"), text, None).unwrap()
    }

    #[test]
    fn named_job_merges_over_defaults() {
        let f = file(
            "[job]\npartition = \"debug\"\ntime = \"10m\"\nenvironment = { A = \"1\" }\n\n[jobs.train]\ncommand = [\"python\", \"train.py\"]\ntime = \"2h\"\nenvironment = { B = \"2\" }\n",
        );
        let spec = resolve_job(Some(&f), &args(None)).unwrap();
        assert_eq!(spec.name.as_str(), "train");
        assert_eq!(spec.partition.unwrap().as_str(), "debug");
        assert_eq!(spec.time_limit.unwrap().seconds(), 7200);
        assert_eq!(spec.environment.len(), 2);
        assert!(
            resolve_job(Some(&f), &args(Some("nope")))
                .unwrap_err()
                .to_string()
                .contains("defined jobs are [\"train\"]")
        );
    }

    #[test]
    fn hostile_names_from_flags_are_refused() {
        let mut a = args(None);
        a.command = vec!["true".into()];
        for hostile in ["x; rm -rf ~", "a\nb", "$(id)"] {
            a.name = Some(hostile.into());
            let err = resolve_job(None, &a).unwrap_err();
            assert!(err.to_string().contains("invalid job name"), "{err}");
        }
        a.name = None;
        a.partition = Some("debug;id".into());
        assert!(resolve_job(None, &a).is_err());
    }

    #[test]
    fn payload_needs_exactly_one_source() {
        assert!(
            resolve_job(None, &args(None))
                .unwrap_err()
                .to_string()
                .contains("nothing to run")
        );
        let f = file("[job]\ncommand = [\"a\"]\nscript = \"b\"\n");
        assert!(
            resolve_job(Some(&f), &args(None))
                .unwrap_err()
                .to_string()
                .contains("only one")
        );
        let mut a = args(None);
        a.command = vec!["/usr/bin/hostname".into()];
        assert_eq!(resolve_job(None, &a).unwrap().name.as_str(), "hostname");
    }
}
