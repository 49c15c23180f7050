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
    #[error(
        "the ProxyJump chain in front of {host} is longer than {MAX_JUMPS} hops; does ssh_config make the hosts jump through each other?"
    )]
    JumpLoop { host: String },
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
            let map = parse(&text, host, &local_user, &include_dir);
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
fn settings_from_map(
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

fn expand_home(path: &str) -> PathBuf {
    match (path.strip_prefix("~/"), crate::local_user::home()) {
        (Some(rest), Some(home)) => home.join(rest),
        _ => PathBuf::from(path),
    }
}

/// What ssh_config(5)'s `%` tokens stand for, for one host.
struct Tokens {
    /// The host as given (`%n`).
    host: String,
    /// The final HostName (`%h`).
    hostname: String,
    port: String,
    remote_user: String,
    local_user: String,
    host_key_alias: Option<String>,
}

impl Tokens {
    /// Expand a leading `~/`, `%` tokens and `${VAR}` environment references in a file name.
    /// `%C` (a hash of the connection) is left as is.
    fn expand(&self, value: &str) -> String {
        let home = crate::local_user::home()
            .map(|h| h.display().to_string())
            .unwrap_or_default();
        let mut out = String::new();
        let mut chars = value.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '%' => match chars.next() {
                    Some('h') => out.push_str(&self.hostname),
                    Some('n') => out.push_str(&self.host),
                    Some('p') => out.push_str(&self.port),
                    Some('r') => out.push_str(&self.remote_user),
                    Some('u') => out.push_str(&self.local_user),
                    Some('d') => out.push_str(&home),
                    Some('i') => out.push_str(
                        &crate::local_user::uid()
                            .map(|u| u.to_string())
                            .unwrap_or_default(),
                    ),
                    Some('k') => out.push_str(self.host_key_alias.as_deref().unwrap_or(&self.host)),
                    Some('l') => out.push_str(&local_hostname()),
                    Some('L') => {
                        out.push_str(local_hostname().split('.').next().unwrap_or_default())
                    }
                    Some('%') => out.push('%'),
                    Some(other) => {
                        out.push('%');
                        out.push(other);
                    }
                    None => out.push('%'),
                },
                '$' if chars.peek() == Some(&'{') => {
                    chars.next();
                    let name: String = chars.by_ref().take_while(|c| *c != '}').collect();
                    out.push_str(&std::env::var(&name).unwrap_or_default());
                }
                c => out.push(c),
            }
        }
        match out.strip_prefix("~/") {
            Some(rest) => format!("{home}/{rest}"),
            None => out,
        }
    }
}

fn local_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

/// Keywords whose every occurrence adds a value (deduplicated) instead of the first one winning.
const ACCUMULATE: [&str; 2] = ["identityfile", "certificatefile"];

/// Evaluate an ssh_config text for `host` the way OpenSSH does, without `Match`: key → values, keys
/// lowercased, values exactly as `ssh -G -F <file> <host>` prints them for the keys slurmkit uses
/// (IdentityFile and CertificateFile unexpanded, HostName and UserKnownHostsFile expanded, HostName
/// and HostKeyAlias lowercased, yes/no and times normalized). Only configured keys appear, plus
/// `hostname`. Relative `Include`s are resolved against `include_dir` (OpenSSH: `~/.ssh`).
pub fn parse(
    text: &str,
    host: &str,
    local_user: &str,
    include_dir: &Path,
) -> BTreeMap<String, Vec<String>> {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    apply(text, host, include_dir, &mut map, 0);
    // HostName takes only %h (the host as given); OpenSSH lowercases the result.
    let hostname = map
        .get("hostname")
        .and_then(|v| v.first())
        .map(|h| expand_percent(h, &[('h', host)]))
        .unwrap_or_else(|| host.to_string())
        .to_ascii_lowercase();
    map.insert("hostname".into(), vec![hostname.clone()]);
    if let Some(alias) = map.get_mut("hostkeyalias") {
        alias[0] = alias[0].to_ascii_lowercase();
    }
    if map
        .get("proxyjump")
        .is_some_and(|j| j[0].eq_ignore_ascii_case("none"))
    {
        map.remove("proxyjump");
    }
    let tokens = Tokens {
        host: host.to_string(),
        hostname,
        port: map
            .get("port")
            .map(|p| p[0].clone())
            .unwrap_or_else(|| "22".into()),
        remote_user: map
            .get("user")
            .map(|u| u[0].clone())
            .unwrap_or_else(|| local_user.to_string()),
        local_user: local_user.to_string(),
        host_key_alias: map.get("hostkeyalias").map(|a| a[0].clone()),
    };
    if let Some(files) = map.get_mut("userknownhostsfile")
        && (files.len() != 1 || files[0] != "none")
    {
        *files = vec![
            files
                .iter()
                .map(|f| tokens.expand(f))
                .collect::<Vec<_>>()
                .join(" "),
        ];
    }
    for (key, values) in map.iter_mut() {
        let value = &mut values[0];
        match key.as_str() {
            "stricthostkeychecking" => {
                *value = match value.to_ascii_lowercase().as_str() {
                    "yes" | "true" => "true".into(),
                    "no" | "false" | "off" => "false".into(),
                    other => other.to_string(),
                }
            }
            "identitiesonly" | "hashknownhosts" => {
                *value = match value.to_ascii_lowercase().as_str() {
                    "yes" | "true" => "yes".into(),
                    "no" | "false" => "no".into(),
                    other => other.to_string(),
                }
            }
            "serveraliveinterval" | "connecttimeout" => {
                if let Some(seconds) = seconds(value) {
                    *value = seconds.to_string();
                }
            }
            _ => {}
        }
    }
    map
}

/// OpenSSH's time format: `90`, `1m30s`, `2h`, `1w` (units s, m, h, d, w, either case).
fn seconds(text: &str) -> Option<u64> {
    let mut total = 0u64;
    let mut number = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c.to_ascii_lowercase() {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 604_800,
            _ => return None,
        };
        total += number.parse::<u64>().ok()? * unit;
        number.clear();
    }
    if !number.is_empty() {
        total += number.parse::<u64>().ok()?;
    }
    Some(total)
}

/// Replace `%c` for each `(c, value)` and `%%` with `%`; other tokens stay.
fn expand_percent(text: &str, tokens: &[(char, &str)]) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => out.push('%'),
            Some(t) => match tokens.iter().find(|(k, _)| *k == t) {
                Some((_, value)) => out.push_str(value),
                None => {
                    out.push('%');
                    out.push(t);
                }
            },
            None => out.push('%'),
        }
    }
    out
}

fn apply(
    text: &str,
    host: &str,
    include_dir: &Path,
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
                        include_dir.join(path)
                    };
                    for file in glob_files(&path) {
                        if let Ok(included) = std::fs::read_to_string(&file) {
                            apply(&included, host, include_dir, map, depth + 1);
                        }
                    }
                }
            }
            _ if active && !args.is_empty() => {
                if ACCUMULATE.contains(&key.as_str()) {
                    let values = map.entry(key).or_default();
                    if !values.contains(&args[0]) {
                        values.push(args[0].clone());
                    }
                } else if key == "proxyjump" {
                    // OpenSSH takes the rest of the line as it is.
                    map.entry(key)
                        .or_insert_with(|| vec![rest.trim().to_string()]);
                } else if key == "userknownhostsfile" {
                    // One occurrence, several files: kept as a list until expanded.
                    map.entry(key).or_insert(args);
                } else {
                    map.entry(key).or_insert_with(|| vec![args.join(" ")]);
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

/// Arguments as OpenSSH's `argv_split` makes them: blanks separate, `"` and `'` quote, `\` escapes,
/// and an unquoted `#` at the start of an argument ends the line.
fn split_args(rest: &str) -> Vec<String> {
    let mut args = Vec::new();
    let mut current = String::new();
    let mut started = false;
    let mut quote: Option<char> = None;
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        match (c, quote) {
            // Only quotes, backslashes and (unquoted) blanks can be escaped; any other `\` is literal.
            ('\\', _) => {
                started = true;
                match chars.clone().next() {
                    Some(next)
                        if next == '"'
                            || next == '\''
                            || next == '\\'
                            || (quote.is_none() && next == ' ') =>
                    {
                        current.push(next);
                        chars.next();
                    }
                    _ => current.push('\\'),
                }
            }
            (q, None) if q == '"' || q == '\'' => {
                quote = Some(q);
                started = true;
            }
            (q, Some(open)) if q == open => quote = None,
            ('#', None) if !started => break,
            (c, None) if c.is_whitespace() => {
                if started {
                    args.push(std::mem::take(&mut current));
                    started = false;
                }
            }
            (c, _) => {
                current.push(c);
                started = true;
            }
        }
    }
    if started {
        args.push(current);
    }
    args
}

/// A `Host` line's patterns against the host as given: case-sensitive, as OpenSSH's `match_pattern`
/// (only the final HostName is lowercased); a negated match excludes the host outright.
fn host_matches(host: &str, patterns: &[String]) -> bool {
    let mut matched = false;
    for pattern in patterns {
        if let Some(negated) = pattern.strip_prefix('!') {
            if glob(negated, host) {
                return false;
            }
        } else if glob(pattern, host) {
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

/// The hops of a ProxyJump spec (`[user@]host[:port][,...]`), each resolved through ssh_config with
/// its own authentication and its own host-key check under its own name.
///
/// As with OpenSSH, where each hop is a nested `ssh -W`, the first hop's own ProxyJump (from
/// ssh_config) puts more hops in front of it, recursively. A hop whose ssh_config names
/// UserKnownHostsFile, StrictHostKeyChecking or HashKnownHosts uses them; otherwise it checks its key
/// like the target does.
pub fn jump_hops(
    spec: &str,
    target: &Hop,
    overrides: &HopOverrides,
    ssh_config: Option<&str>,
    base: &Path,
) -> Result<Vec<Hop>, SshConfigError> {
    jump_hops_nested(spec, target, overrides, ssh_config, base, 0)
}

/// What the user set explicitly (flags, the Slurmfile). It applies to every hop and wins over each hop's
/// own ssh_config, exactly as it does for the target: a `~/.ssh/config` with `StrictHostKeyChecking
/// accept-new` must not weaken `--host-key-policy reject` for a jump host.
#[derive(Debug, Clone, Default)]
pub struct HopOverrides {
    pub policy: Option<HostKeyPolicy>,
    /// known_hosts files, and where `auto` records.
    pub known_hosts: Option<(Vec<PathBuf>, PathBuf)>,
}

/// OpenSSH has no limit, but a ProxyJump cycle in ssh_config would never end.
const MAX_JUMPS: usize = 16;

fn jump_hops_nested(
    spec: &str,
    target: &Hop,
    overrides: &HopOverrides,
    ssh_config: Option<&str>,
    base: &Path,
    depth: usize,
) -> Result<Vec<Hop>, SshConfigError> {
    let mut hops = Vec::new();
    let mut first_jump = None;
    for (index, entry) in spec
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .enumerate()
    {
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
        if index == 0 {
            first_jump = config.proxy_jump.clone();
        }
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
        let (known_hosts, record_to) = if let Some(explicit) = &overrides.known_hosts {
            explicit.clone()
        } else if config.user_known_hosts.is_empty() {
            (target.known_hosts.clone(), target.record_to.clone())
        } else {
            let mut files = config.user_known_hosts.clone();
            files.extend(crate::cluster::default_known_hosts(None));
            (files, config.user_known_hosts[0].clone())
        };
        let address = config.hostname.clone().unwrap_or_else(|| host.clone());
        hops.push(Hop {
            address,
            port: port.or(config.port).unwrap_or(22),
            display_name: host.clone(),
            host_key_alias: config.host_key_alias.clone(),
            known_hosts,
            record_to,
            hash_known_hosts: config.hash_known_hosts || target.hash_known_hosts,
            policy: overrides
                .policy
                .or(config.host_key_policy)
                .unwrap_or(super::policy::DEFAULT_POLICY),
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
    if let (Some(spec), Some(first)) = (first_jump.filter(|j| j != "none"), hops.first()) {
        if depth >= MAX_JUMPS {
            return Err(SshConfigError::JumpLoop {
                host: first.display_name.clone(),
            });
        }
        let mut chain = jump_hops_nested(&spec, first, overrides, ssh_config, base, depth + 1)?;
        chain.append(&mut hops);
        hops = chain;
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
    fn arguments_split_as_openssh_does() {
        assert_eq!(split_args("a \"b c\" 'd e'"), vec!["a", "b c", "d e"]);
        assert_eq!(split_args("2222 # a comment"), vec!["2222"]);
        assert_eq!(split_args("a#b"), vec!["a#b"]);
        assert_eq!(split_args("C:\\dir x\\ y"), vec!["C:\\dir", "x y"]);
    }

    #[test]
    fn times_convert_to_seconds() {
        assert_eq!(seconds("30"), Some(30));
        assert_eq!(seconds("1m30s"), Some(90));
        assert_eq!(seconds("2H"), Some(7200));
        assert_eq!(seconds("soon"), None);
    }

    /// A target with a `reject` policy and one known_hosts file, for the jump tests.
    fn target_hop() -> Hop {
        Hop {
            address: "t".into(),
            port: 22,
            display_name: "t".into(),
            host_key_alias: None,
            known_hosts: vec![PathBuf::from("/kh")],
            record_to: PathBuf::from("/kh"),
            hash_known_hosts: false,
            policy: HostKeyPolicy::Reject,
            auth: AuthPlan {
                user: "me".into(),
                identities: vec![],
                identities_only: false,
                agent_socket: None,
            },
        }
    }

    #[test]
    fn jump_specs() {
        let target = target_hop();
        let hops = jump_hops(
            "alice@ela.cscs.ch:2222,bastion,[::1]:22",
            &target,
            &HopOverrides::default(),
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
        let none = HopOverrides::default();
        assert!(
            jump_hops(
                "host:notaport",
                &target,
                &none,
                Some("none"),
                Path::new("/")
            )
            .is_err()
        );
        assert!(
            jump_hops(
                "-oProxyCommand=x",
                &target,
                &none,
                Some("none"),
                Path::new("/")
            )
            .is_err()
        );
    }

    #[test]
    fn explicit_settings_win_over_a_jump_hosts_own_ssh_config() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config");
        std::fs::write(&config, "Host *\n  StrictHostKeyChecking accept-new\n  UserKnownHostsFile /tmp/other_known_hosts\n").unwrap();
        let target = target_hop();
        let config = config.to_str().unwrap();
        let loose = jump_hops(
            "bastion",
            &target,
            &HopOverrides::default(),
            Some(config),
            dir.path(),
        )
        .unwrap();
        assert_eq!(
            loose[0].policy,
            HostKeyPolicy::Auto,
            "without an explicit policy the hop's own config applies"
        );
        let explicit = HopOverrides {
            policy: Some(HostKeyPolicy::Reject),
            known_hosts: Some((vec![PathBuf::from("/kh")], PathBuf::from("/kh"))),
        };
        let strict = jump_hops("bastion", &target, &explicit, Some(config), dir.path()).unwrap();
        assert_eq!(strict[0].policy, HostKeyPolicy::Reject);
        assert_eq!(strict[0].known_hosts, vec![PathBuf::from("/kh")]);
    }
}
