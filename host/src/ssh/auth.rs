//! Authentication: what to authenticate with, how it went, and why it failed. The exchange itself, in
//! OpenSSH's order, is [`super::authenticator`].
//!
//! In OpenSSH's order:
//!
//! 1. `publickey`: each identity file's certificates (its implicit `<key>-cert.pub` and any
//!    `CertificateFile`), then the key itself; then the agent's identities unless `IdentitiesOnly`.
//! 2. `keyboard-interactive`: every round's prompts shown with the server's text, `echo` respected.
//! 3. `password`: prompted once.
//!
//! Secrets come only from the terminal (never argv, environment or logs). Attempts are counted so we stop
//! before the server's MaxAuthTries and can say exactly which keys were tried when nothing worked.

use std::fmt;
use std::path::{Path, PathBuf};

use super::known_hosts::unix_now;
use crate::error::{Diagnose, exit};
use crate::types::shell::quote;
use crate::types::text::escape_controls;

/// sshd's default MaxAuthTries is 6; each key offered counts. We stop offering keys one short of it so
/// keyboard-interactive or password still has a try, and so the user sees our list, not sshd's
/// "Too many authentication failures".
pub const MAX_KEY_ATTEMPTS: usize = 5;

/// Asks the user things on the terminal. Implemented by the CLI; tests script it.
pub trait Prompter: Send + Sync {
    /// Show the server's pre-authentication banner.
    fn banner(&self, text: &str);
    /// Show a keyboard-interactive round's name and instructions.
    fn instructions(&self, text: &str);
    /// Ask one question. `echo = false` for secrets. `Err` when there is no terminal to ask on.
    fn ask(&self, prompt: &str, echo: bool) -> std::io::Result<String>;
}

/// A prompter for non-interactive use: it shows nothing and cannot answer.
pub struct NoPrompt;

impl Prompter for NoPrompt {
    fn banner(&self, _text: &str) {}
    fn instructions(&self, _text: &str) {}
    fn ask(&self, _prompt: &str, _echo: bool) -> std::io::Result<String> {
        Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "no terminal to prompt on",
        ))
    }
}

/// A private key file and the certificates that go with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub key: PathBuf,
    /// Certificates to present with this key, most specific first.
    pub certificates: Vec<PathBuf>,
    /// Was this identity configured explicitly (not one of the default `~/.ssh/id_*` files)?
    pub explicit: bool,
}

impl Identity {
    /// An identity file with its implicit `<key>-cert.pub` (if present) and any extra certificate files.
    pub fn new(key: PathBuf, extra_certificates: &[PathBuf], explicit: bool) -> Self {
        let mut certificates: Vec<PathBuf> = extra_certificates
            .iter()
            .filter(|p| p.exists())
            .cloned()
            .collect();
        let implicit = PathBuf::from(format!("{}-cert.pub", key.display()));
        if implicit.exists() && !certificates.contains(&implicit) {
            certificates.push(implicit);
        }
        Identity {
            key,
            certificates,
            explicit,
        }
    }

    /// OpenSSH's default identity files that exist.
    pub fn defaults(ssh_dir: &Path) -> Vec<Identity> {
        [
            "id_ed25519",
            "id_ecdsa",
            "id_ecdsa_sk",
            "id_ed25519_sk",
            "id_rsa",
        ]
        .iter()
        .map(|name| ssh_dir.join(name))
        .filter(|path| path.exists())
        .map(|path| Identity::new(path, &[], false))
        .collect()
    }
}

/// What to authenticate with.
#[derive(Debug, Clone)]
pub struct AuthPlan {
    pub user: String,
    pub identities: Vec<Identity>,
    /// Only the identity files, not the agent's other keys.
    pub identities_only: bool,
    /// Where the agent listens (`SSH_AUTH_SOCK`), if anywhere.
    pub agent_socket: Option<PathBuf>,
}

/// One authentication attempt and how it went, for the final report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub method: String,
    pub outcome: String,
}

impl fmt::Display for Attempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.method, self.outcome)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("{}", expired_text(path, *expired_at))]
    CertificateExpired { path: PathBuf, expired_at: u64 },
    #[error("cannot use {path}: {reason}")]
    BadIdentity { path: PathBuf, reason: String },
    #[error("{}", failed_text(user, host, attempts, remaining))]
    Failed {
        user: String,
        host: String,
        attempts: Vec<Attempt>,
        remaining: Vec<String>,
    },
    #[error("the connection to {host} closed during authentication after {} attempt(s) (the server's MaxAuthTries may be lower than {MAX_KEY_ATTEMPTS}); tried:\n{}", attempts.len(), list(attempts))]
    Disconnected {
        host: String,
        attempts: Vec<Attempt>,
    },
    #[error(transparent)]
    Ssh(#[from] russh::Error),
}

impl Diagnose for AuthError {
    fn exit_code(&self) -> u8 {
        exit::AUTH
    }

    fn hint(&self) -> Option<String> {
        match self {
            AuthError::CertificateExpired { path, .. } => Some(format!(
                "renew the certificate with your site's tool (e.g. CSCS: `cscs-key sign`, or ask your admins to re-sign {}) and run the command again; `ssh-keygen -L -f {}` shows its validity",
                escape_controls(&path.display().to_string()),
                quote(&path.display().to_string())
            )),
            AuthError::Failed { user, host, .. } => {
                let (user, host) = (escape_controls(user), escape_controls(host));
                Some(format!(
                    "check that the public key is in ~{user}/.ssh/authorized_keys on {host} (or that its certificate's principals include {user}), \
                     that the right key is configured (key_filename / IdentityFile), and run `slurmkit doctor` to see each step"
                ))
            }
            AuthError::Disconnected { .. } => Some(
                "set key_filename (and identities_only = true) so only the right key is offered"
                    .into(),
            ),
            _ => None,
        }
    }
}

fn expired_text(path: &Path, expired_at: u64) -> String {
    let ago = unix_now().saturating_sub(expired_at);
    format!(
        "the SSH certificate {} expired {} ago; the server would refuse it",
        path.display(),
        human_duration(ago)
    )
}

fn failed_text(user: &str, host: &str, attempts: &[Attempt], remaining: &[String]) -> String {
    let methods = if remaining.is_empty() {
        "none".to_string()
    } else {
        remaining.join(", ")
    };
    format!(
        "permission denied: could not authenticate as {user} on {host} (server still accepts: {methods}); tried:\n{}",
        list(attempts)
    )
}

fn list(attempts: &[Attempt]) -> String {
    if attempts.is_empty() {
        return "  (nothing: no identity files, no agent keys, and no terminal for a password)"
            .into();
    }
    attempts
        .iter()
        .map(|a| format!("  - {a}"))
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn human_duration(seconds: u64) -> String {
    match seconds {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s if s < 172_800 => format!("{} h", s / 3600),
        s => format!("{} days", s / 86_400),
    }
}

/// Check every certificate before connecting: an expired one configured explicitly is an error,
/// one expiring within the hour a warning. Returns the identities with expired certificates removed.
pub fn precheck_certificates(
    identities: &[Identity],
    now: u64,
) -> Result<Vec<Identity>, AuthError> {
    let mut usable = Vec::new();
    for identity in identities {
        let mut identity = identity.clone();
        let mut kept = Vec::new();
        for path in &identity.certificates {
            let cert = match russh::keys::load_openssh_certificate(path) {
                Ok(cert) => cert,
                Err(e) => {
                    tracing::warn!("skipping certificate {}: {e}", path.display());
                    continue;
                }
            };
            if now >= cert.valid_before() {
                if identity.explicit {
                    return Err(AuthError::CertificateExpired {
                        path: path.clone(),
                        expired_at: cert.valid_before(),
                    });
                }
                tracing::warn!(
                    "skipping the SSH certificate {}: it expired {} ago; renew it (`ssh-keygen -L -f {}` shows its validity)",
                    path.display(),
                    human_duration(now.saturating_sub(cert.valid_before())),
                    path.display()
                );
                continue;
            }
            let left = cert.valid_before() - now;
            if left < 3600 {
                tracing::warn!(
                    "SSH certificate {} expires in {}: renew it soon",
                    path.display(),
                    human_duration(left)
                );
            }
            kept.push(path.clone());
        }
        identity.certificates = kept;
        usable.push(identity);
    }
    Ok(usable)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Diagnose;

    #[test]
    fn failure_lists_every_attempt() {
        let err = AuthError::Failed {
            user: "alice".into(),
            host: "login".into(),
            attempts: vec![
                Attempt {
                    method: "key /home/a/.ssh/id_ed25519".into(),
                    outcome: "refused".into(),
                },
                Attempt {
                    method: "password".into(),
                    outcome: "no terminal to ask on".into(),
                },
            ],
            remaining: vec!["publickey".into(), "password".into()],
        };
        assert_eq!(
            err.to_string(),
            "permission denied: could not authenticate as alice on login (server still accepts: publickey, password); tried:\n  - key /home/a/.ssh/id_ed25519: refused\n  - password: no terminal to ask on"
        );
        assert!(err.hint().unwrap().contains("authorized_keys"));
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human_duration(30), "30 s");
        assert_eq!(human_duration(3000), "50 min");
        assert_eq!(human_duration(86_400), "24 h");
        assert_eq!(human_duration(3 * 86_400), "3 days");
    }
}
