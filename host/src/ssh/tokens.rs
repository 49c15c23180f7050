//! ssh_config's `%` tokens, `~` and `${VAR}` in file names, expanded as the OpenSSH client does.

use std::path::PathBuf;

pub(super) fn expand_home(path: &str) -> PathBuf {
    match (path.strip_prefix("~/"), crate::local_user::home()) {
        (Some(rest), Some(home)) => home.join(rest),
        _ => PathBuf::from(path),
    }
}

/// What ssh_config(5)'s `%` tokens stand for, for one host.
pub(super) struct Tokens {
    /// The host as given (`%n`).
    pub(super) host: String,
    /// The final HostName (`%h`).
    pub(super) hostname: String,
    pub(super) port: String,
    pub(super) remote_user: String,
    pub(super) local_user: String,
    pub(super) host_key_alias: Option<String>,
}

impl Tokens {
    /// Expand a leading `~/`, `%` tokens and `${VAR}` environment references in a file name.
    /// `%C` (a hash of the connection) is left as is.
    pub(super) fn expand(&self, value: &str) -> String {
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
