//! The fallback ssh_config reader, for machines without `ssh`: evaluates a config file for one host as
//! `ssh -G` would print it, for the keys slurmkit uses (see [`super::config`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::tokens::{Tokens, expand_home};

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
