//! ~/.ssh/config: what OpenSSH would use for a host alias.
//!
//! Where `ssh` is installed, `ssh -G` is the truth: it evaluates Match blocks, tokens and Includes exactly.
//! Its output lists defaults too, so settings are taken only where they differ from `ssh -G -F /dev/null`
//! (what OpenSSH would use with no config at all). Without `ssh`, [`parse`] reads the file itself and
//! produces what `ssh -G` would print for the keys slurmkit uses (an end-to-end test compares the two):
//! case-sensitive Host blocks with `*`/`?`/`!` patterns, first value wins, IdentityFile and
//! CertificateFile accumulate, Include, quoting and comments as OpenSSH splits them. `Match` blocks
//! need `ssh -G` and are skipped with a warning. Either way, file names get `~`, `%` tokens and
//! `${VAR}` expanded here, as the OpenSSH client does after `ssh -G` prints them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::config_file;
use super::tokens::{Tokens, expand_home};
use crate::error::{Diagnose, exit};
use crate::types::HostKeyPolicy;

#[derive(Debug, thiserror::Error)]
pub enum SshConfigError {
    #[error("cannot read ssh config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid ProxyJump entry {entry:?}: write [user@]host[:port]")]
    BadJump { entry: String },
    #[error(
        "the ProxyJump chain in front of {host} is longer than {MAX_JUMPS} hops; does ssh_config make the hosts jump through each other?"
    )]
    JumpLoop { host: String },
}

impl Diagnose for SshConfigError {
    fn exit_code(&self) -> u8 {
        exit::CONFIG
    }
}

/// OpenSSH has no limit, but a ProxyJump cycle in ssh_config would never end.
pub const MAX_JUMPS: usize = 16;

/// The settings slurmkit uses from ssh_config, for one host. `None`/empty: not configured.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostConfig {
    pub hostname: Option<String>,
    pub user: Option<String>,
    pub port: Option<u16>,
    pub identity_files: Vec<PathBuf>,
    pub certificate_files: Vec<PathBuf>,
    pub identities_only: Option<bool>,
    pub proxy_jump: Option<String>,
    pub user_known_hosts: Vec<PathBuf>,
    pub host_key_policy: Option<HostKeyPolicy>,
    pub host_key_alias: Option<String>,
    pub server_alive_interval: Option<u64>,
    pub connect_timeout: Option<u64>,
    pub hash_known_hosts: bool,
}

/// Resolve `host` through the ssh config: `setting` is the Slurmfile's `ssh_config` (a path, or `none`).
pub fn resolve(
    host: &str,
    setting: Option<&str>,
    base: &Path,
) -> Result<HostConfig, SshConfigError> {
    let path = match setting {
        Some("none") => return Ok(HostConfig::default()),
        Some(path) => Some(crate::config::resolve_local_path(path, base)),
        None => dirs::home_dir().map(|h| h.join(".ssh/config")),
    };
    let Some(path) = path.filter(|p| p.exists()) else {
        return Ok(HostConfig::default());
    };
    let local_user = crate::local_user::name().unwrap_or_default();
    match ssh_g(host, &path, &local_user) {
        Some(config) => Ok(config),
        None => {
            let text = std::fs::read_to_string(&path).map_err(|source| SshConfigError::Read {
                path: path.clone(),
                source,
            })?;
            // OpenSSH resolves a relative Include in a user config against ~/.ssh, whatever file
            // holds it.
            let include_dir = crate::local_user::home()
                .map(|h| h.join(".ssh"))
                .unwrap_or_else(|| path.parent().unwrap_or(Path::new(".")).to_path_buf());
            let map = config_file::parse(&text, host, &local_user, &include_dir);
            Ok(settings_from_map(&map, None, host, &local_user))
        }
    }
}

/// `ssh -G` for `host` with `config`; `None` when `ssh` is missing or rejects the file.
fn ssh_g(host: &str, config: &Path, local_user: &str) -> Option<HostConfig> {
    let configured = ssh_g_map(host, config)?;
    let defaults = ssh_g_map(host, Path::new("/dev/null"))?;
    Some(settings_from_map(
        &configured,
        Some(&defaults),
        host,
        local_user,
    ))
}

/// Raw `ssh -G` output as key → values (multi-valued keys keep every line).
pub fn ssh_g_map(host: &str, config: &Path) -> Option<BTreeMap<String, Vec<String>>> {
    let output = Command::new("ssh")
        .arg("-G")
        .arg("-F")
        .arg(config)
        .arg("--")
        .arg(host)
        .stdin(std::process::Stdio::null())
        .output()
        .ok()?;
    if !output.status.success() {
        tracing::warn!(
            "`ssh -G -F {}` failed ({}); reading the file without it",
            config.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
        return None;
    }
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        if let Some((key, value)) = line.split_once(' ') {
            map.entry(key.to_ascii_lowercase())
                .or_default()
                .push(value.to_string());
        }
    }
    Some(map)
}

/// The settings slurmkit uses, from a map shaped like `ssh -G` output. With `defaults` (what
/// `ssh -G -F /dev/null` prints), only values that differ from OpenSSH's own defaults count as
/// configured. IdentityFile and CertificateFile are printed unexpanded, so their `~`, `%` tokens and
/// `${VAR}`s are expanded here, for both sources alike.
pub(super) fn settings_from_map(
    map: &BTreeMap<String, Vec<String>>,
    defaults: Option<&BTreeMap<String, Vec<String>>>,
    host: &str,
    local_user: &str,
) -> HostConfig {
    let all = |key: &str| map.get(key).cloned().unwrap_or_default();
    let configured = |key: &str| -> Option<Vec<String>> {
        let values = map.get(key)?;
        match defaults {
            Some(defaults) if defaults.get(key) == Some(values) => None,
            _ => Some(values.clone()),
        }
    };
    let one = |key: &str| configured(key).and_then(|v| v.into_iter().next());
    let yes = |key: &str| one(key).map(|v| v.eq_ignore_ascii_case("yes"));
    let number = |key: &str| one(key).and_then(|v| v.parse::<u64>().ok());
    let tokens = Tokens {
        host: host.to_string(),
        hostname: all("hostname")
            .into_iter()
            .next()
            .unwrap_or_else(|| host.to_ascii_lowercase()),
        port: all("port")
            .into_iter()
            .next()
            .unwrap_or_else(|| "22".into()),
        remote_user: all("user")
            .into_iter()
            .next()
            .unwrap_or_else(|| local_user.to_string()),
        local_user: local_user.to_string(),
        host_key_alias: all("hostkeyalias").into_iter().next(),
    };
    let files = |key: &str| -> Vec<PathBuf> {
        configured(key)
            .unwrap_or_default()
            .iter()
            .filter(|v| v.as_str() != "none")
            .map(|v| PathBuf::from(tokens.expand(v)))
            .collect()
    };
    HostConfig {
        hostname: one("hostname").filter(|h| !h.eq_ignore_ascii_case(host)),
        user: one("user"),
        port: one("port").and_then(|p| p.parse().ok()),
        identity_files: files("identityfile"),
        certificate_files: files("certificatefile"),
        identities_only: yes("identitiesonly"),
        proxy_jump: one("proxyjump").filter(|j| j != "none"),
        user_known_hosts: configured("userknownhostsfile")
            .unwrap_or_default()
            .iter()
            .flat_map(|v| v.split_whitespace())
            .filter(|v| *v != "none")
            .map(expand_home)
            .collect(),
        host_key_policy: one("stricthostkeychecking").and_then(|v| match v.as_str() {
            "yes" | "true" => Some(HostKeyPolicy::Reject),
            "accept-new" => Some(HostKeyPolicy::Auto),
            "no" | "off" | "false" => Some(HostKeyPolicy::Warn),
            _ => None,
        }),
        host_key_alias: one("hostkeyalias"),
        server_alive_interval: number("serveraliveinterval"),
        connect_timeout: number("connecttimeout"),
        hash_known_hosts: yes("hashknownhosts").unwrap_or(false),
    }
}

/// One entry of a ProxyJump spec: `[user@]host[:port]`, `[user@][v6addr]:port`, optionally `ssh://`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JumpEntry {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
}

/// The entries of a ProxyJump spec (`[user@]host[:port][,...]`), in order.
pub fn parse_jump_spec(spec: &str) -> Result<Vec<JumpEntry>, SshConfigError> {
    spec.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(|entry| {
            let entry = entry.strip_prefix("ssh://").unwrap_or(entry);
            let bad = || SshConfigError::BadJump {
                entry: entry.to_string(),
            };
            let (user, host_port) = match entry.rsplit_once('@') {
                Some((user, rest)) => (Some(user.to_string()), rest),
                None => (None, entry),
            };
            let (host, port) = if let Some(rest) = host_port.strip_prefix('[') {
                let (host, after) = rest.split_once(']').ok_or_else(bad)?;
                let port = after
                    .strip_prefix(':')
                    .map(|p| p.parse::<u16>().map_err(|_| bad()))
                    .transpose()?;
                (host.to_string(), port)
            } else {
                match host_port.rsplit_once(':') {
                    Some((host, port)) => (
                        host.to_string(),
                        Some(port.parse::<u16>().map_err(|_| bad())?),
                    ),
                    None => (host_port.to_string(), None),
                }
            };
            if host.is_empty() || host.starts_with('-') {
                return Err(bad());
            }
            Ok(JumpEntry { user, host, port })
        })
        .collect()
}

/// Default known_hosts files, as OpenSSH reads them (user files first: that is where `auto` records).
pub fn default_known_hosts(home: Option<PathBuf>) -> Vec<PathBuf> {
    let mut files = Vec::new();
    if let Some(home) = home {
        files.push(home.join(".ssh/known_hosts"));
        files.push(home.join(".ssh/known_hosts2"));
    }
    files.push(PathBuf::from("/etc/ssh/ssh_known_hosts"));
    files.push(PathBuf::from("/etc/ssh/ssh_known_hosts2"));
    files
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ssh::config_file::parse;

    fn eval(text: &str, host: &str) -> BTreeMap<String, Vec<String>> {
        parse(text, host, "me", Path::new("/nonexistent"))
    }

    #[test]
    fn first_value_wins_and_identity_files_accumulate() {
        let text = "Host daint\n  HostName daint.alps.cscs.ch\n  IdentityFile ~/.ssh/cscs-key\n\nHost *\n  User fallback\n  HostName ignored\n  IdentityFile ~/.ssh/id_ed25519\n  Port 2222\n";
        let map = eval(text, "daint");
        assert_eq!(map["hostname"], vec!["daint.alps.cscs.ch"]);
        assert_eq!(map["user"], vec!["fallback"]);
        assert_eq!(map["port"], vec!["2222"]);
        assert_eq!(map["identityfile"].len(), 2);
    }

    #[test]
    fn negation_and_equals_syntax() {
        let text = "Host *.cscs.ch !ela.cscs.ch\n  User=alice\nHost ela.cscs.ch\n  User = bob\n";
        assert_eq!(eval(text, "daint.cscs.ch")["user"], vec!["alice"]);
        assert_eq!(eval(text, "ela.cscs.ch")["user"], vec!["bob"]);
    }

    #[test]
    fn tokens_expand_in_identity_files_like_the_client_does() {
        let text = "Host x\n  HostName %h.Example.org\n  IdentityFile /keys/%r@%h-%p\n  User u\n  Port 2200\n";
        let map = eval(text, "x");
        // As `ssh -G` prints them: HostName expanded and lowercased, IdentityFile as written.
        assert_eq!(map["hostname"], vec!["x.example.org"]);
        assert_eq!(map["identityfile"], vec!["/keys/%r@%h-%p"]);
        let config = settings_from_map(&map, None, "x", "me");
        assert_eq!(
            config.identity_files,
            vec![PathBuf::from("/keys/u@x.example.org-2200")]
        );
    }

    #[test]
    fn known_hosts_files_are_one_setting_and_not_accumulated() {
        let text = "Host x\n  UserKnownHostsFile /a /b\nHost *\n  UserKnownHostsFile /c\n  ProxyJump none\n  ServerAliveInterval 1m30s\n  StrictHostKeyChecking no\n";
        let map = eval(text, "x");
        assert_eq!(map["userknownhostsfile"], vec!["/a /b"]);
        assert!(!map.contains_key("proxyjump"));
        assert_eq!(map["serveraliveinterval"], vec!["90"]);
        assert_eq!(map["stricthostkeychecking"], vec!["false"]);
        let config = settings_from_map(&map, None, "x", "me");
        assert_eq!(
            config.user_known_hosts,
            vec![PathBuf::from("/a"), PathBuf::from("/b")]
        );
        assert_eq!(config.host_key_policy, Some(HostKeyPolicy::Warn));
    }

    #[test]
    fn jump_specs() {
        let entries = parse_jump_spec("alice@ela.cscs.ch:2222,bastion,[::1]:22").unwrap();
        assert_eq!(
            entries,
            vec![
                JumpEntry {
                    user: Some("alice".into()),
                    host: "ela.cscs.ch".into(),
                    port: Some(2222)
                },
                JumpEntry {
                    user: None,
                    host: "bastion".into(),
                    port: None
                },
                JumpEntry {
                    user: None,
                    host: "::1".into(),
                    port: Some(22)
                },
            ]
        );
        assert!(parse_jump_spec("host:notaport").is_err());
        assert!(parse_jump_spec("-oProxyCommand=x").is_err());
    }
}
