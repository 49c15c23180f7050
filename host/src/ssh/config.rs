//! ~/.ssh/config: what OpenSSH would use for a host alias.
//!
//! Where `ssh` is installed, `ssh -G` is the truth: it evaluates Match blocks, tokens and Includes exactly.
//! Its output lists defaults too, so settings are taken only where they differ from `ssh -G -F /dev/null`
//! (what OpenSSH would use with no config at all). Without `ssh`, [`parse`] reads the file itself: Host
//! blocks with `*`/`?`/`!` patterns, first value wins, IdentityFile/CertificateFile accumulate, Include,
//! `%h %p %r %u %d %%` tokens. `Match` blocks need `ssh -G` and are skipped with a warning.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::HostKeyPolicy;
use super::auth::{AuthPlan, Identity};
use super::session::Hop;

#[derive(Debug, thiserror::Error)]
pub enum SshConfigError {
    #[error("cannot read ssh config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid ProxyJump entry {entry:?}: write [user@]host[:port]")]
    BadJump { entry: String },
}

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
    match ssh_g(host, &path) {
        Some(config) => Ok(config),
        None => {
            let text = std::fs::read_to_string(&path).map_err(|source| SshConfigError::Read {
                path: path.clone(),
                source,
            })?;
            let local_user = std::env::var("USER").unwrap_or_default();
            Ok(settings_from_map(
                &parse(
                    &text,
                    host,
                    &local_user,
                    path.parent().unwrap_or(Path::new(".")),
                ),
                host,
            ))
        }
    }
}

/// `ssh -G` for `host` with `config`, minus what OpenSSH would use with no config at all.
/// `None` when `ssh` is missing or rejects the file.
fn ssh_g(host: &str, config: &Path) -> Option<HostConfig> {
    let configured = ssh_g_map(host, config)?;
    let defaults = ssh_g_map(host, Path::new("/dev/null"))?;
    let explicit: BTreeMap<String, Vec<String>> = configured
        .into_iter()
        .filter(|(k, v)| defaults.get(k) != Some(v))
        .collect();
    Some(settings_from_map(&explicit, host))
}

/// Raw `ssh -G` output as key → values (multi-valued keys keep every line).
pub fn ssh_g_map(host: &str, config: &Path) -> Option<BTreeMap<String, Vec<String>>> {
    let output = Command::new("ssh")
        .arg("-G")
        .arg("-F")
        .arg(config)
        .arg("--")
        .arg(host)
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

fn settings_from_map(map: &BTreeMap<String, Vec<String>>, host: &str) -> HostConfig {
    let one = |key: &str| map.get(key).and_then(|v| v.first()).cloned();
    let yes = |key: &str| one(key).map(|v| v.eq_ignore_ascii_case("yes"));
    let number = |key: &str| one(key).and_then(|v| v.parse::<u64>().ok());
    let paths = |key: &str| -> Vec<PathBuf> {
        map.get(key)
            .into_iter()
            .flatten()
            .flat_map(|v| v.split_whitespace())
            .filter(|v| *v != "none")
            .map(expand_home)
            .collect()
    };
    HostConfig {
        hostname: one("hostname").filter(|h| h != host),
        user: one("user"),
        port: one("port").and_then(|p| p.parse().ok()),
        identity_files: paths("identityfile"),
        certificate_files: paths("certificatefile"),
        identities_only: yes("identitiesonly"),
        proxy_jump: one("proxyjump").filter(|j| j != "none"),
        user_known_hosts: paths("userknownhostsfile"),
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

fn expand_home(path: &str) -> PathBuf {
    match (path.strip_prefix("~/"), dirs::home_dir()) {
        (Some(rest), Some(home)) => home.join(rest),
        _ => PathBuf::from(path),
    }
}

/// Keys whose values accumulate instead of first-wins.
const ACCUMULATE: [&str; 3] = ["identityfile", "certificatefile", "userknownhostsfile"];

/// Evaluate an ssh_config text for `host` the way OpenSSH does (without `Match`): key → values, keys
/// lowercased, values in the form `ssh -G` prints them for the keys slurmkit uses.
pub fn parse(
    text: &str,
    host: &str,
    local_user: &str,
    config_dir: &Path,
) -> BTreeMap<String, Vec<String>> {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    apply(text, host, config_dir, &mut map, 0);
    // Tokens refer to the final values, so expand after every line is read.
    let hostname = map
        .get("hostname")
        .and_then(|v| v.first())
        .cloned()
        .unwrap_or_else(|| host.to_string());
    let hostname = hostname.replace("%h", host).replace("%%", "%");
    map.insert("hostname".into(), vec![hostname.clone()]);
    let port = map
        .get("port")
        .and_then(|v| v.first())
        .cloned()
        .unwrap_or_else(|| "22".into());
    let user = map
        .get("user")
        .and_then(|v| v.first())
        .cloned()
        .unwrap_or_else(|| local_user.to_string());
    let home = dirs::home_dir()
        .map(|h| h.display().to_string())
        .unwrap_or_default();
    let expand = |value: &str| {
        let mut out = String::new();
        let mut chars = value.chars();
        while let Some(c) = chars.next() {
            if c != '%' {
                out.push(c);
                continue;
            }
            match chars.next() {
                Some('h') => out.push_str(&hostname),
                Some('n') => out.push_str(host),
                Some('p') => out.push_str(&port),
                Some('r') => out.push_str(&user),
                Some('u') => out.push_str(local_user),
                Some('d') => out.push_str(&home),
                Some('%') => out.push('%'),
                Some(other) => {
                    out.push('%');
                    out.push(other);
                }
                None => out.push('%'),
            }
        }
        if let Some(rest) = out.strip_prefix("~/") {
            format!("{home}/{rest}")
        } else {
            out
        }
    };
    for key in [
        "identityfile",
        "certificatefile",
        "userknownhostsfile",
        "hostkeyalias",
        "proxyjump",
    ] {
        if let Some(values) = map.get_mut(key) {
            for value in values.iter_mut() {
                *value = value
                    .split_whitespace()
                    .map(&expand)
                    .collect::<Vec<_>>()
                    .join(" ");
            }
        }
    }
    for (key, values) in map.iter_mut() {
        if matches!(
            key.as_str(),
            "stricthostkeychecking" | "identitiesonly" | "hashknownhosts"
        ) {
            for value in values.iter_mut() {
                *value = match value.to_ascii_lowercase().as_str() {
                    "yes" | "true" => "yes".into(),
                    "no" | "false" => {
                        if key == "stricthostkeychecking" {
                            "false".into()
                        } else {
                            "no".into()
                        }
                    }
                    "off" => "false".into(),
                    "accept-new" => "accept-new".into(),
                    "ask" => "ask".into(),
                    other => other.to_string(),
                };
            }
        }
    }
    map
}

fn apply(
    text: &str,
    host: &str,
    config_dir: &Path,
    map: &mut BTreeMap<String, Vec<String>>,
    depth: usize,
) {
    let mut active = true;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, rest) = split_keyword(line);
        let key = key.to_ascii_lowercase();
        let args = split_args(rest);
        match key.as_str() {
            "host" => active = host_matches(host, &args),
            "match" => {
                tracing::warn!(
                    "ssh config `Match` blocks are skipped without `ssh -G` (install openssh-client)"
                );
                active = false;
            }
            "include" if active && depth < 16 => {
                for pattern in &args {
                    let path = expand_home(pattern);
                    let path = if path.is_absolute() {
                        path
                    } else {
                        config_dir.join(path)
                    };
                    for file in glob_files(&path) {
                        if let Ok(included) = std::fs::read_to_string(&file) {
                            apply(&included, host, config_dir, map, depth + 1);
                        }
                    }
                }
            }
            _ if active && !args.is_empty() => {
                let value = args.join(" ");
                if ACCUMULATE.contains(&key.as_str()) {
                    let values = map.entry(key).or_default();
                    if !values.contains(&value) {
                        values.push(value);
                    }
                } else {
                    map.entry(key).or_insert_with(|| vec![value]);
                }
            }
            _ => {}
        }
    }
}

/// `Keyword value`, `Keyword=value` or `Keyword = value`.
fn split_keyword(line: &str) -> (&str, &str) {
    let end = line
        .find(|c: char| c.is_whitespace() || c == '=')
        .unwrap_or(line.len());
    let (key, rest) = line.split_at(end);
    let rest = rest.trim_start();
    let rest = rest.strip_prefix('=').unwrap_or(rest).trim_start();
    (key, rest)
}

/// Arguments, honouring double quotes.
fn split_args(rest: &str) -> Vec<String> {
    let mut args = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in rest.chars() {
        match c {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                if !current.is_empty() {
                    args.push(std::mem::take(&mut current));
                }
            }
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        args.push(current);
    }
    args
}

fn host_matches(host: &str, patterns: &[String]) -> bool {
    let host = host.to_ascii_lowercase();
    let mut matched = false;
    for pattern in patterns {
        let pattern = pattern.to_ascii_lowercase();
        if let Some(negated) = pattern.strip_prefix('!') {
            if glob(negated, &host) {
                return false;
            }
        } else if glob(&pattern, &host) {
            matched = true;
        }
    }
    matched
}

fn glob(pattern: &str, text: &str) -> bool {
    fn go(p: &[char], t: &[char]) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some(('*', rest)) => (0..=t.len()).any(|i| go(rest, &t[i..])),
            Some(('?', rest)) => !t.is_empty() && go(rest, &t[1..]),
            Some((c, rest)) => t.first() == Some(c) && go(rest, &t[1..]),
        }
    }
    go(
        &pattern.chars().collect::<Vec<_>>(),
        &text.chars().collect::<Vec<_>>(),
    )
}

/// Files matching an Include path whose last component may hold `*`/`?`.
fn glob_files(path: &Path) -> Vec<PathBuf> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if !name.contains(['*', '?']) {
        return vec![path.to_path_buf()];
    }
    let Some(dir) = path.parent() else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| glob(&name, &e.file_name().to_string_lossy()))
        .map(|e| e.path())
        .collect();
    files.sort();
    files
}

/// The hops of a ProxyJump spec (`[user@]host[:port][,...]`), each resolved through ssh_config, with
/// its own host-key check (same files and policy as the target) and its own authentication.
pub fn jump_hops(
    spec: &str,
    target: &Hop,
    ssh_config: Option<&str>,
    base: &Path,
) -> Result<Vec<Hop>, SshConfigError> {
    let mut hops = Vec::new();
    for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
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
        let config = resolve(&host, ssh_config, base)?;
        let identities = if config.identity_files.is_empty() {
            target.auth.identities.clone()
        } else {
            config
                .identity_files
                .iter()
                .filter(|p| p.exists())
                .map(|p| Identity::new(p.clone(), &config.certificate_files, true))
                .collect()
        };
        let address = config.hostname.clone().unwrap_or_else(|| host.clone());
        hops.push(Hop {
            address,
            port: port.or(config.port).unwrap_or(22),
            display_name: host.clone(),
            host_key_alias: config.host_key_alias.clone(),
            known_hosts: target.known_hosts.clone(),
            record_to: target.record_to.clone(),
            hash_known_hosts: target.hash_known_hosts,
            policy: target.policy,
            auth: AuthPlan {
                user: user
                    .or(config.user)
                    .unwrap_or_else(|| target.auth.user.clone()),
                identities,
                identities_only: config
                    .identities_only
                    .unwrap_or(target.auth.identities_only),
                agent_socket: target.auth.agent_socket.clone(),
            },
        });
    }
    Ok(hops)
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn tokens_expand() {
        let text = "Host x\n  HostName %h.example.org\n  IdentityFile /keys/%r@%h-%p\n  User u\n  Port 2200\n";
        let map = eval(text, "x");
        assert_eq!(map["hostname"], vec!["x.example.org"]);
        assert_eq!(map["identityfile"], vec!["/keys/u@x.example.org-2200"]);
    }

    #[test]
    fn jump_specs() {
        let target = Hop {
            address: "t".into(),
            port: 22,
            display_name: "t".into(),
            host_key_alias: None,
            known_hosts: vec![],
            record_to: PathBuf::from("/kh"),
            hash_known_hosts: false,
            policy: HostKeyPolicy::Reject,
            auth: AuthPlan {
                user: "me".into(),
                identities: vec![],
                identities_only: false,
                agent_socket: None,
            },
        };
        let hops = jump_hops(
            "alice@ela.cscs.ch:2222,bastion,[::1]:22",
            &target,
            Some("none"),
            Path::new("/"),
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
        assert_eq!(hops[2].address, "::1");
        assert!(jump_hops("host:notaport", &target, Some("none"), Path::new("/")).is_err());
        assert!(jump_hops("-oProxyCommand=x", &target, Some("none"), Path::new("/")).is_err());
    }
}
