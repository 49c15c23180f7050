//! The Slurmfile's schema. Every table rejects unknown keys; every value validates as it is read.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use crate::job::spec::{
    ArraySpec, Dependencies, DirectiveText, EnvName, ExtraDirective, Memory, ModuleName, NodeCount,
    TimeLimit,
};
use crate::plugin::EventKind;
use crate::slurm::validate::{Account, JobName, Partition, Qos, Reservation};
use crate::ssh::HostKeyPolicy;

/// The whole file as written: the defaults plus the environments that may override them.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileShape {
    #[allow(dead_code)]
    cluster: Option<ClusterSettings>,
    #[allow(dead_code)]
    job: Option<JobSettings>,
    #[allow(dead_code)]
    jobs: Option<BTreeMap<String, JobSettings>>,
    #[allow(dead_code)]
    renderer: Option<RendererSettings>,
    #[allow(dead_code)]
    callbacks: Option<Vec<CallbackSettings>>,
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
    pub job: Option<JobSettings>,
    /// Named jobs; each merges over `[job]`.
    pub jobs: Option<BTreeMap<String, JobSettings>>,
    pub renderer: Option<RendererSettings>,
    pub callbacks: Option<Vec<CallbackSettings>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
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
    pub hostname: Option<String>,
    pub port: Option<u16>,
    pub username: Option<String>,
    pub backend: Option<BackendKind>,
    pub host_key_policy: Option<HostKeyPolicy>,
    /// Private key to authenticate with (its `-cert.pub` is used too when present).
    pub key_filename: Option<String>,
    /// known_hosts file to use instead of ~/.ssh/known_hosts and /etc/ssh/ssh_known_hosts.
    pub known_hosts: Option<String>,
    /// Where job directories are created on the cluster (default `~/slurm_jobs`).
    pub job_base_dir: Option<String>,
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
}

/// `[job]` and `[jobs.<name>]`: the job vocabulary, every key optional so layers can merge.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSettings {
    pub name: Option<JobName>,
    /// Program and arguments, run without a shell.
    pub command: Option<Vec<String>>,
    /// A bash script body.
    pub script: Option<String>,
    /// A file holding the script body, relative to the Slurmfile.
    pub script_file: Option<String>,
    pub working_dir: Option<DirectiveText>,
    pub environment: Option<BTreeMap<EnvName, String>>,
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
}

/// Capabilities granted to a plugin. Nothing is granted unless listed.
#[derive(Debug, Clone, Default, Deserialize)]
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
    pub timeout: Option<Seconds>,
    /// Bytes of log and stdout/stderr output per call.
    pub output: Option<ByteCount>,
}

/// A duration written as seconds (`2`, `0.5`) or with a unit (`500ms`, `2s`, `1m`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seconds(pub Duration);

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(u64),
            Float(f64),
            Text(String),
        }
        let err = |v: &str| {
            serde::de::Error::custom(format!(
                "invalid duration {v:?}: write seconds (2, 0.5) or a number with a unit (500ms, 2s, 1m)"
            ))
        };
        let duration = match Raw::deserialize(d)? {
            Raw::Int(s) => Duration::from_secs(s),
            Raw::Float(s) if s > 0.0 => {
                Duration::try_from_secs_f64(s).map_err(|_| err(&s.to_string()))?
            }
            Raw::Float(s) => return Err(err(&s.to_string())),
            Raw::Text(text) => {
                let (digits, unit) = text.trim().split_at(
                    text.trim()
                        .find(|c: char| !c.is_ascii_digit())
                        .unwrap_or(text.trim().len()),
                );
                let n: u64 = digits.parse().map_err(|_| err(&text))?;
                match unit {
                    "ms" => Duration::from_millis(n),
                    "" | "s" => Duration::from_secs(n),
                    "m" => Duration::from_secs(n.checked_mul(60).ok_or_else(|| err(&text))?),
                    _ => return Err(err(&text)),
                }
            }
        };
        if duration.is_zero() {
            return Err(serde::de::Error::custom(
                "a duration of zero is not a limit",
            ));
        }
        if duration > Duration::from_secs(86_400) {
            return Err(serde::de::Error::custom(
                "a plugin call may take at most a day",
            ));
        }
        Ok(Seconds(duration))
    }
}

/// A byte count written as a number or with a unit (`64K`, `1M`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteCount(pub u64);

impl<'de> Deserialize<'de> for ByteCount {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bytes(u64),
            Text(String),
        }
        let text = match Raw::deserialize(d)? {
            Raw::Bytes(n) => return Ok(ByteCount(n)),
            Raw::Text(text) => text,
        };
        crate::job::spec::parse_binary_size(&text, 1)
            .map(ByteCount)
            .ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "invalid size {text:?}: write bytes (65536) or a number with a unit (64K, 1M)"
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_parse_units() {
        let limits: LimitSettings =
            toml::from_str("memory = \"32M\"\ntimeout = \"500ms\"\noutput = \"64K\"").unwrap();
        assert_eq!(limits.memory.unwrap().mebibytes(), 32);
        assert_eq!(limits.timeout.unwrap().0, Duration::from_millis(500));
        assert_eq!(limits.output.unwrap().0, 65536);
        let limits: LimitSettings = toml::from_str("timeout = 2.5").unwrap();
        assert_eq!(limits.timeout.unwrap().0, Duration::from_millis(2500));
        assert!(toml::from_str::<LimitSettings>("timeout = \"2h\"").is_err());
        assert!(toml::from_str::<LimitSettings>("timeout = 0").is_err());
        assert!(toml::from_str::<LimitSettings>("timeout = 1e300").is_err());
        assert!(toml::from_str::<LimitSettings>("timeout = 86401").is_err());
        assert!(toml::from_str::<LimitSettings>("timeout = \"99999999999999999999m\"").is_err());
    }

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
