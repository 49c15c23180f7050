//! The Slurmfile's schema. Every table rejects unknown keys; every value validates as it is read.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::types::HostKeyPolicy;
use crate::types::container::Container;
use crate::types::names::{Account, JobName, Partition, Qos, Reservation};
use crate::types::spec::{
    ArraySpec, CommandArgument, Dependencies, DirectiveText, EnvName, EnvValue, ExtraDirective,
    HostName, JobBaseDir, ModuleName, ScriptText, UserName,
};
use crate::types::units::{ByteCount, Memory, NodeCount, ShortDuration, TimeLimit};
use crate::types::work::{InputSetting, RelativeGlob};
use crate::wit::EventKind;

/// The whole file as written: the defaults plus the environments that may override them.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileShape {
    #[allow(dead_code)]
    cluster: Option<ClusterSettings>,
    #[allow(dead_code)]
    job: Option<JobTable>,
    #[allow(dead_code)]
    jobs: Option<BTreeMap<String, JobTable>>,
    #[allow(dead_code)]
    renderer: Option<RendererSettings>,
    #[allow(dead_code)]
    callbacks: Option<Vec<CallbackSettings>>,
    #[allow(dead_code)]
    policy: Option<Vec<PolicySettings>>,
    environments: Option<BTreeMap<String, Settings>>,
}

impl FileShape {
    pub(super) fn environment_names(&self) -> String {
        match &self.environments {
            Some(envs) if !envs.is_empty() => envs.keys().cloned().collect::<Vec<_>>().join(", "),
            _ => "none".to_string(),
        }
    }
}

/// One layer of settings: the file's defaults, or one environment merged over them.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub cluster: Option<ClusterSettings>,
    /// Defaults for every job.
    pub job: Option<JobTable>,
    /// Named jobs; each merges over `[job]`.
    pub jobs: Option<BTreeMap<String, JobTable>>,
    pub renderer: Option<RendererSettings>,
    pub callbacks: Option<Vec<CallbackSettings>>,
    /// Site policies, run in order (after the site layer's) on every job before it is rendered.
    pub policy: Option<Vec<PolicySettings>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// Reach the cluster over SSH (the default).
    Ssh,
    /// Run `sbatch` and friends on this machine.
    Local,
}

/// `[cluster]`: where and how to reach Slurm.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSettings {
    /// Host name, address, or an alias from ~/.ssh/config.
    pub hostname: Option<HostName>,
    pub port: Option<u16>,
    pub username: Option<UserName>,
    pub backend: Option<BackendKind>,
    pub host_key_policy: Option<HostKeyPolicy>,
    /// Private key to authenticate with (its `-cert.pub` is used too when present).
    pub key_filename: Option<String>,
    /// known_hosts file to use instead of ~/.ssh/known_hosts and /etc/ssh/ssh_known_hosts.
    pub known_hosts: Option<String>,
    /// Where job directories are created on the cluster (default `~/slurm_jobs`).
    pub job_base_dir: Option<JobBaseDir>,
    /// Jump hosts, as OpenSSH's `-J`: `[user@]host[:port][,...]`.
    pub proxy_jump: Option<String>,
    /// An OpenSSH certificate to present with the key.
    pub certificate_file: Option<String>,
    /// Use only the configured identity files, not the ssh-agent's other keys.
    pub identities_only: Option<bool>,
    /// Seconds to wait for the TCP connection and the SSH handshake.
    pub connect_timeout: Option<u64>,
    /// Seconds between keepalives (OpenSSH's ServerAliveInterval; 0 disables).
    pub server_alive_interval: Option<u64>,
    /// The ssh_config file to read host aliases from (default ~/.ssh/config), or `"none"`.
    pub ssh_config: Option<String>,
    /// Split arrays of items into arrays of at most this many tasks (the cluster's MaxArraySize
    /// applies too), say to stay under a per-user job limit.
    pub max_array_size: Option<u64>,
}

/// `[job]` and `[jobs.<name>]`: the job vocabulary, every key optional so layers can merge.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSettings {
    pub name: Option<JobName>,
    /// Program and arguments, run without a shell.
    pub command: Option<Vec<CommandArgument>>,
    /// A bash script body.
    pub script: Option<ScriptText>,
    /// A file holding the script body, relative to the Slurmfile.
    pub script_file: Option<String>,
    pub working_dir: Option<DirectiveText>,
    pub environment: Option<BTreeMap<EnvName, EnvValue>>,
    pub modules: Option<Vec<ModuleName>>,
    pub partition: Option<Partition>,
    pub account: Option<Account>,
    pub qos: Option<Qos>,
    pub reservation: Option<Reservation>,
    pub time: Option<TimeLimit>,
    pub nodes: Option<NodeCount>,
    pub ntasks: Option<u32>,
    pub ntasks_per_node: Option<u32>,
    pub cpus_per_task: Option<u32>,
    #[serde(alias = "memory")]
    pub mem: Option<Memory>,
    pub mem_per_cpu: Option<Memory>,
    pub gpus: Option<DirectiveText>,
    pub gres: Option<DirectiveText>,
    pub constraint: Option<DirectiveText>,
    pub exclusive: Option<bool>,
    pub array: Option<ArraySpec>,
    pub dependency: Option<Dependencies>,
    pub output: Option<DirectiveText>,
    pub error: Option<DirectiveText>,
    /// Extra `#SBATCH` options, one per entry: `"--mail-type=END"`.
    pub extra_directives: Option<Vec<ExtraDirective>>,
    /// Files to stage into the job directory: globs relative to the Slurmfile, or `{ from, to }`.
    pub inputs: Option<Vec<InputSetting>>,
    /// Globs (relative to the job directory) of what `slurmkit fetch` copies back.
    pub outputs: Option<Vec<RelativeGlob>>,
    /// The JSON object the job reads from `$SLURMKIT_ARGS`.
    pub args: Option<toml::Table>,
    /// One table per array task: task `i` reads item `i` as its args.
    pub items: Option<Vec<toml::Value>>,
    /// A JSON Lines file (relative to the Slurmfile), one object per array task.
    pub items_file: Option<String>,
    /// How many tasks of the array run at once (sbatch's `--array=...%N`).
    pub max_concurrent: Option<std::num::NonZeroU32>,
    /// Jobs of this Slurmfile to run after once they succeeded (`afterok`).
    pub after: Option<Vec<JobName>>,
    /// ... once they ended, however (`afterany`).
    pub after_any: Option<Vec<JobName>>,
    /// ... once they failed (`afternotok`).
    pub after_not_ok: Option<Vec<JobName>>,
    /// The container the payload runs in: `{ image, runtime, mounts, workdir }`.
    pub container: Option<Container>,
}

/// One `[job]` or `[jobs.<name>]` table as written: it says at most one thing to run, so a mistake is
/// reported with its file and line even where a layer above would replace it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(try_from = "JobSettings")]
pub struct JobTable(pub JobSettings);

impl TryFrom<JobSettings> for JobTable {
    type Error = &'static str;

    fn try_from(settings: JobSettings) -> Result<Self, Self::Error> {
        let said = [
            settings.command.is_some(),
            settings.script.is_some(),
            settings.script_file.is_some(),
        ];
        if said.iter().filter(|s| **s).count() > 1 {
            return Err("set only one of `command`, `script` and `script_file` for a job");
        }
        Ok(JobTable(settings))
    }
}

/// `[renderer]`: a site renderer to use instead of the built-in one.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RendererSettings {
    /// Path to the `.wasm` component, relative to the Slurmfile.
    pub plugin: String,
    /// Expected sha256 of the file; a mismatch refuses to load it.
    pub sha256: Option<String>,
    pub config: Option<toml::Table>,
    pub grants: Option<Grants>,
    pub limits: Option<LimitSettings>,
}

/// What `[renderer]` and `[[callbacks]]` say about their plugin file.
#[derive(Debug, Clone, Copy)]
pub struct PluginSettings<'a> {
    /// Path to the `.wasm` component, relative to the Slurmfile.
    pub plugin: &'a str,
    /// Expected sha256 of the file; a mismatch refuses to load it.
    pub sha256: Option<&'a str>,
    pub config: Option<&'a toml::Table>,
    pub grants: Option<&'a Grants>,
    pub limits: Option<&'a LimitSettings>,
}

/// The plugin file, pin, config, grants and limits every plugin entry has, in the one shape the loader
/// takes.
macro_rules! plugin_settings {
    ($($entry:ty),+) => {$(
        impl $entry {
            pub fn plugin(&self) -> PluginSettings<'_> {
                PluginSettings {
                    plugin: &self.plugin,
                    sha256: self.sha256.as_deref(),
                    config: self.config.as_ref(),
                    grants: self.grants.as_ref(),
                    limits: self.limits.as_ref(),
                }
            }
        }
    )+};
}

plugin_settings!(RendererSettings, CallbackSettings, PolicySettings);

/// `[[policy]]`: one site policy plugin (the `policy` world).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySettings {
    /// Path to the `.wasm` component, relative to the file that names it.
    pub plugin: String,
    /// A name for messages and the journal (default: the file's stem).
    pub name: Option<String>,
    pub sha256: Option<String>,
    pub config: Option<toml::Table>,
    pub grants: Option<Grants>,
    pub limits: Option<LimitSettings>,
}

/// The site layer (`/etc/slurmkit/Slurmfile.toml`): what every user's jobs go through.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteSettings {
    pub policy: Option<Vec<PolicySettings>>,
}

/// `[[callbacks]]`: one lifecycle callback plugin.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallbackSettings {
    /// Path to the `.wasm` component, relative to the Slurmfile.
    pub plugin: String,
    /// A name for logs and the journal (default: the file's stem).
    pub name: Option<String>,
    pub sha256: Option<String>,
    /// Events to deliver (default: all the plugin subscribes to).
    pub events: Option<Vec<EventKind>>,
    pub config: Option<toml::Table>,
    pub grants: Option<Grants>,
    pub limits: Option<LimitSettings>,
    /// Where it runs: here (default), or on the compute node, where it gets `run-begin` and `run-end`
    /// as they happen, with its grants relative to the job directory.
    #[serde(default)]
    pub on: CallbackSide,
}

/// Where a callback runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CallbackSide {
    #[default]
    Client,
    Node,
}

/// Capabilities granted to a plugin. Nothing is granted unless listed.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Grants {
    /// Environment variables passed through by name.
    #[serde(default)]
    pub env: Vec<String>,
    /// Directories opened read-only, relative to the Slurmfile.
    #[serde(default)]
    pub read: Vec<String>,
    /// Directories opened read-write, relative to the Slurmfile.
    #[serde(default)]
    pub write: Vec<String>,
    /// The real wall clock (otherwise the plugin sees a fixed time).
    #[serde(default)]
    pub clock: bool,
}

/// `limits = { memory = "64M", timeout = "2s", output = "64K" }`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitSettings {
    /// Total linear memory of the plugin.
    pub memory: Option<Memory>,
    /// Wall time per call.
    pub timeout: Option<ShortDuration>,
    /// Bytes of log and stdout/stderr output per call.
    pub output: Option<ByteCount>,
    /// Wall time to compile the component, once (default 5 minutes).
    pub compile_time: Option<ShortDuration>,
    /// Address space of the process compiling it (default 4G).
    pub compile_memory: Option<Memory>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callback_events_are_checked_by_name() {
        let ok: CallbackSettings = toml::from_str(
            "plugin = \"x.wasm\"\nevents = [\"submitted\", \"completed\", \"failed\"]",
        )
        .unwrap();
        assert_eq!(ok.events.unwrap().len(), 3);
        let err =
            toml::from_str::<CallbackSettings>("plugin = \"x.wasm\"\nevents = [\"submited\"]")
                .unwrap_err();
        assert!(err.to_string().contains("submited"), "{err}");
    }
}
