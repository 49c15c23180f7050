//! The cluster's hops: the target and every jump host in front of it, each resolved with one
//! precedence, [`resolve_hop`]: what the user set (flags over the Slurmfile) > that host's ssh_config >
//! a fallback (OpenSSH's defaults for the target; the target's own values for a jump host).
//!
//! As with OpenSSH, where each hop is a nested `ssh -W`, the first jump host's own ProxyJump (from
//! ssh_config) puts more hops in front of it, recursively. What the user set explicitly (host-key policy,
//! known_hosts) applies to every hop and wins over each hop's own ssh_config, exactly as for the target:
//! a `~/.ssh/config` with `StrictHostKeyChecking accept-new` must not weaken `--host-key-policy reject`
//! for a jump host.

use std::path::{Path, PathBuf};

use super::error::{PlanError, refuse};
use super::remote::{Backend, Target};
use crate::config::{BackendKind, ClusterSettings, resolve_local_path};
use crate::ssh::auth::{AuthPlan, Identity};
use crate::ssh::config::{
    self as ssh_config, HostConfig, MAX_JUMPS, SshConfigError, default_known_hosts,
};
use crate::ssh::{Hop, Transport};
use crate::types::HostKeyPolicy;

/// One hop's settings as one layer gives them; `None` where the layer says nothing.
#[derive(Debug, Clone, Default)]
struct HopLayer {
    user: Option<String>,
    port: Option<u16>,
    policy: Option<HostKeyPolicy>,
    /// known_hosts files, and the one `auto` records into.
    known_hosts: Option<(Vec<PathBuf>, PathBuf)>,
    identities: Option<Vec<Identity>>,
    identities_only: Option<bool>,
    hash_known_hosts: Option<bool>,
}

impl HopLayer {
    /// What a host's ssh_config says. `certificates` go with its identity files (for the target, the
    /// Slurmfile's `certificate_file` too).
    fn from_ssh(config: &HostConfig, certificates: &[PathBuf]) -> HopLayer {
        let mut certs = certificates.to_vec();
        certs.extend(config.certificate_files.iter().cloned());
        HopLayer {
            user: config.user.clone(),
            port: config.port,
            policy: config.host_key_policy,
            known_hosts: (!config.user_known_hosts.is_empty()).then(|| {
                let mut files = config.user_known_hosts.clone();
                files.extend(default_known_hosts(None));
                (files, config.user_known_hosts[0].clone())
            }),
            identities: (!config.identity_files.is_empty()).then(|| {
                config
                    .identity_files
                    .iter()
                    .filter(|p| p.exists())
                    .map(|p| Identity::new(p.clone(), &certs, true))
                    .collect()
            }),
            identities_only: config.identities_only,
            hash_known_hosts: config.hash_known_hosts.then_some(true),
        }
    }

    /// A resolved hop's values, as the fallback for the hops in front of it.
    fn inherited_from(hop: &Hop) -> HopLayer {
        HopLayer {
            user: Some(hop.auth.user.clone()),
            port: Some(22),
            policy: Some(HostKeyPolicy::DEFAULT),
            known_hosts: Some((hop.known_hosts.clone(), hop.record_to.clone())),
            identities: Some(hop.auth.identities.clone()),
            identities_only: Some(hop.auth.identities_only),
            hash_known_hosts: Some(hop.hash_known_hosts),
        }
    }
}

/// The one precedence: `explicit` > `ssh` > `fallback`, field by field.
fn resolve_hop(
    name: &str,
    config: &HostConfig,
    explicit: &HopLayer,
    ssh: &HopLayer,
    fallback: &HopLayer,
) -> Result<Hop, PlanError> {
    let layers = [explicit, ssh, fallback];
    let Some(user) = first(layers, |l| l.user.clone()) else {
        refuse!("no user name: set `username` in [cluster] or pass --username");
    };
    let (known_hosts, record_to) = first(layers, |l| l.known_hosts.clone()).unwrap_or_else(|| {
        let files = default_known_hosts(dirs::home_dir());
        (files.clone(), files[0].clone())
    });
    Ok(Hop {
        address: config.hostname.clone().unwrap_or_else(|| name.to_string()),
        port: first(layers, |l| l.port).unwrap_or(22),
        display_name: name.to_string(),
        host_key_alias: config.host_key_alias.clone(),
        known_hosts,
        record_to,
        hash_known_hosts: first(layers, |l| l.hash_known_hosts).unwrap_or(false),
        policy: first(layers, |l| l.policy).unwrap_or(HostKeyPolicy::DEFAULT),
        auth: AuthPlan {
            user,
            identities: first(layers, |l| l.identities.clone()).unwrap_or_default(),
            identities_only: first(layers, |l| l.identities_only).unwrap_or(false),
            agent_socket: std::env::var_os("SSH_AUTH_SOCK").map(PathBuf::from),
        },
    })
}

/// The first layer, in precedence order, that sets a value.
fn first<T>(layers: [&HopLayer; 3], value: impl Fn(&HopLayer) -> Option<T>) -> Option<T> {
    layers.into_iter().find_map(value)
}

/// The cluster to reach, from `[cluster]` with the flags merged over it.
pub(super) fn target(settings: &ClusterSettings, base: &Path) -> Result<Target, PlanError> {
    let job_base_dir = settings
        .job_base_dir
        .as_ref()
        .map_or("~/slurm_jobs", |d| d.as_str())
        .to_string();
    if settings.backend == Some(BackendKind::Local) {
        return Ok(Target {
            key: "local".into(),
            backend: Backend::Local,
            job_base_dir,
            max_array_size: settings.max_array_size,
        });
    }
    let Some(host) = settings.hostname.as_ref().map(|h| h.as_str().to_string()) else {
        refuse!(
            "no cluster to connect to: set `hostname` in the Slurmfile's [cluster] table, or pass --hostname (or use backend = \"local\")"
        );
    };
    let ssh_setting = settings.ssh_config.as_deref();
    let config = ssh_config::resolve(&host, ssh_setting, base)?;
    let certificates: Vec<PathBuf> = settings
        .certificate_file
        .iter()
        .map(|c| resolve_local_path(c, base))
        .collect();
    let known_hosts = settings.known_hosts.as_ref().map(|path| {
        let path = resolve_local_path(path, base);
        (vec![path.clone()], path)
    });
    let explicit = HopLayer {
        user: settings.username.as_ref().map(|u| u.as_str().to_string()),
        port: settings.port,
        policy: settings.host_key_policy,
        known_hosts: known_hosts.clone(),
        identities: settings.key_filename.as_ref().map(|key| {
            let mut certs = certificates.clone();
            certs.extend(config.certificate_files.iter().cloned());
            vec![Identity::new(resolve_local_path(key, base), &certs, true)]
        }),
        identities_only: settings.identities_only,
        hash_known_hosts: None,
    };
    let home = dirs::home_dir();
    let defaults = HopLayer {
        user: crate::local_user::name(),
        port: Some(22),
        policy: Some(HostKeyPolicy::DEFAULT),
        known_hosts: {
            let files = default_known_hosts(home.clone());
            Some((files.clone(), files[0].clone()))
        },
        identities: Some(
            home.as_ref()
                .map(|h| Identity::defaults(&h.join(".ssh")))
                .unwrap_or_default(),
        ),
        identities_only: Some(false),
        hash_known_hosts: Some(false),
    };
    let target = resolve_hop(
        &host,
        &config,
        &explicit,
        &HopLayer::from_ssh(&config, &certificates),
        &defaults,
    )?;
    // What the user set for the target applies to every jump host too.
    let for_jumps = HopLayer {
        policy: settings.host_key_policy,
        known_hosts,
        ..HopLayer::default()
    };
    let jumps = match settings.proxy_jump.clone().or(config.proxy_jump.clone()) {
        Some(spec) if spec != "none" => {
            jump_hops(&spec, &target, &for_jumps, ssh_setting, base, 0)?
        }
        _ => Vec::new(),
    };
    let mut transport = Transport::default();
    if let Some(seconds) = settings.connect_timeout.or(config.connect_timeout) {
        transport.connect_timeout = std::time::Duration::from_secs(seconds);
    }
    match settings
        .server_alive_interval
        .or(config.server_alive_interval)
    {
        Some(0) => transport.keepalive = None,
        Some(seconds) => transport.keepalive = Some(std::time::Duration::from_secs(seconds)),
        None => {}
    }
    Ok(Target {
        key: format!(
            "ssh://{}@{}:{}",
            target.auth.user, target.address, target.port
        ),
        backend: Backend::Ssh {
            jumps,
            target: Box::new(target),
            transport,
        },
        job_base_dir,
        max_array_size: settings.max_array_size,
    })
}

/// The hops of a ProxyJump `spec` in front of `next`, each resolved through its own ssh_config.
fn jump_hops(
    spec: &str,
    next: &Hop,
    explicit: &HopLayer,
    ssh_setting: Option<&str>,
    base: &Path,
    depth: usize,
) -> Result<Vec<Hop>, PlanError> {
    let mut hops = Vec::new();
    let mut first_jump = None;
    let fallback = HopLayer::inherited_from(next);
    for (index, entry) in ssh_config::parse_jump_spec(spec)?.into_iter().enumerate() {
        let config = ssh_config::resolve(&entry.host, ssh_setting, base)?;
        if index == 0 {
            first_jump = config.proxy_jump.clone();
        }
        let explicit = HopLayer {
            user: entry.user.clone(),
            port: entry.port,
            ..explicit.clone()
        };
        let ssh = HopLayer::from_ssh(&config, &[]);
        hops.push(resolve_hop(
            &entry.host,
            &config,
            &explicit,
            &ssh,
            &fallback,
        )?);
    }
    if let (Some(spec), Some(first)) = (first_jump.filter(|j| j != "none"), hops.first()) {
        if depth >= MAX_JUMPS {
            return Err(SshConfigError::JumpLoop {
                host: first.display_name.clone(),
            }
            .into());
        }
        let mut chain = jump_hops(&spec, first, explicit, ssh_setting, base, depth + 1)?;
        chain.append(&mut hops);
        hops = chain;
    }
    Ok(hops)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A target with a `reject` policy and one known_hosts file, for the jump tests.
    fn target_hop() -> Hop {
        Hop {
            address: "t".into(),
            port: 22,
            display_name: "t".into(),
            host_key_alias: None,
            known_hosts: vec![PathBuf::from("/t_known")],
            record_to: PathBuf::from("/t_known"),
            hash_known_hosts: false,
            policy: HostKeyPolicy::Reject,
            auth: AuthPlan {
                user: "me".into(),
                identities: Vec::new(),
                identities_only: false,
                agent_socket: None,
            },
        }
    }

    #[test]
    fn jump_entries_take_their_user_and_port_and_inherit_the_rest() {
        let hops = jump_hops(
            "alice@ela.cscs.ch:2222,bastion,[::1]:22",
            &target_hop(),
            &HopLayer::default(),
            Some("none"),
            Path::new("/"),
            0,
        )
        .unwrap();
        assert_eq!(hops.len(), 3);
        assert_eq!(
            (
                hops[0].auth.user.as_str(),
                hops[0].address.as_str(),
                hops[0].port
            ),
            ("alice", "ela.cscs.ch", 2222)
        );
        assert_eq!((hops[1].auth.user.as_str(), hops[1].port), ("me", 22));
        assert_eq!(hops[1].known_hosts, vec![PathBuf::from("/t_known")]);
        assert_eq!(
            hops[1].policy,
            HostKeyPolicy::DEFAULT,
            "a jump host's policy is not the target's own ssh_config's"
        );
        assert_eq!(hops[2].address, "::1");
    }

    #[test]
    fn explicit_settings_win_over_a_jump_hosts_own_ssh_config() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config");
        std::fs::write(&config, "Host *\n  StrictHostKeyChecking accept-new\n  UserKnownHostsFile /tmp/other_known_hosts\n").unwrap();
        let config = config.to_str().unwrap();
        let loose = jump_hops(
            "bastion",
            &target_hop(),
            &HopLayer::default(),
            Some(config),
            dir.path(),
            0,
        )
        .unwrap();
        assert_eq!(
            loose[0].policy,
            HostKeyPolicy::Auto,
            "without an explicit policy the hop's own config applies"
        );
        assert_eq!(
            loose[0].known_hosts[0],
            PathBuf::from("/tmp/other_known_hosts")
        );
        let explicit = HopLayer {
            policy: Some(HostKeyPolicy::Reject),
            known_hosts: Some((vec![PathBuf::from("/kh")], PathBuf::from("/kh"))),
            ..HopLayer::default()
        };
        let strict = jump_hops(
            "bastion",
            &target_hop(),
            &explicit,
            Some(config),
            dir.path(),
            0,
        )
        .unwrap();
        assert_eq!(strict[0].policy, HostKeyPolicy::Reject);
        assert_eq!(strict[0].known_hosts, vec![PathBuf::from("/kh")]);
    }

    #[test]
    fn a_jump_hosts_own_proxy_jump_puts_hops_in_front_and_a_loop_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config");
        std::fs::write(
            &config,
            "Host bastion\n  ProxyJump outer\nHost outer\n  User o\nHost a\n  ProxyJump b\nHost b\n  ProxyJump a\n",
        )
        .unwrap();
        let config = config.to_str().unwrap();
        let mut target = target_hop();
        target.hash_known_hosts = true;
        target.auth.identities = vec![Identity::new(PathBuf::from("/k"), &[], true)];
        let hops = jump_hops(
            "bastion",
            &target,
            &HopLayer::default(),
            Some(config),
            dir.path(),
            0,
        )
        .unwrap();
        let names: Vec<&str> = hops.iter().map(|h| h.display_name.as_str()).collect();
        assert_eq!(names, ["outer", "bastion"]);
        assert_eq!(hops[0].auth.user, "o");
        assert_eq!(
            hops[1].auth.user, "me",
            "a jump host without a User is the target's"
        );
        assert!(
            hops.iter().all(|h| h.hash_known_hosts),
            "HashKnownHosts of the target carries over"
        );
        assert_eq!(
            hops[1].auth.identities[0].key,
            PathBuf::from("/k"),
            "without its own IdentityFile a jump host offers the target's keys"
        );
        let err = jump_hops(
            "a",
            &target,
            &HopLayer::default(),
            Some(config),
            dir.path(),
            0,
        )
        .unwrap_err();
        assert!(err.to_string().contains("longer than 16 hops"), "{err}");
    }

    #[test]
    fn the_target_takes_flags_over_the_slurmfile_over_ssh_config() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config");
        std::fs::write(&config, "Host alias\n  HostName real.example.org\n  User fromconfig\n  Port 2200\n  StrictHostKeyChecking yes\n").unwrap();
        let settings = ClusterSettings {
            hostname: Some(toml::Value::String("alias".into()).try_into().unwrap()),
            port: Some(2222),
            ssh_config: Some(config.display().to_string()),
            ..ClusterSettings::default()
        };
        let target = target(&settings, dir.path()).unwrap();
        let Backend::Ssh {
            target: hop, jumps, ..
        } = &target.backend
        else {
            panic!("ssh")
        };
        assert!(jumps.is_empty());
        assert_eq!(hop.address, "real.example.org");
        assert_eq!(hop.port, 2222, "the Slurmfile's port beats ssh_config's");
        assert_eq!(
            hop.auth.user, "fromconfig",
            "ssh_config fills what is not set"
        );
        assert_eq!(hop.policy, HostKeyPolicy::Reject);
        assert_eq!(target.key, "ssh://fromconfig@real.example.org:2222");
    }
}
