//! Authentication: what to authenticate with, how it went, and why it failed. The exchange itself, in
//! OpenSSH's order, is [`super::authenticator`].
//!
//! In OpenSSH's order:
//!
//! 1. `publickey`: each identity file's certificates (its implicit `<key>-cert.pub` and any
//!    `CertificateFile`), then the key itself; then the agent's identities unless `IdentitiesOnly`.
//! 2. `keyboard-interactive`: every round's prompts shown with the server's text, prefixed with
//!    `(user@host)` so a jump hop's questions can be told from the target's, `echo` respected; up to
//!    [`PROMPT_TRIES`] times while the server allows it.
//! 3. `password`: likewise up to [`PROMPT_TRIES`] times.
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
    /// Ask one question. `echo = false` for secrets. `Err` when there is no terminal to ask on, of kind
    /// `Interrupted` when the user pressed Ctrl-C.
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

/// How many times a password or keyboard-interactive questions are asked before giving up, as OpenSSH's
/// NumberOfPasswordPrompts (3) does; the server may allow fewer.
pub const PROMPT_TRIES: usize = 3;

/// Which method an attempt used, for the hint after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    None,
    /// A key or certificate, from a file or the agent.
    Key,
    KeyboardInteractive,
    Password,
}

/// How an attempt went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Accepted,
    /// Accepted, and the server requires another method too.
    Partial,
    Refused,
    /// The server closed the connection instead of answering.
    Closed,
    /// Not tried, or could not finish (no terminal, unreadable key, ...): why.
    NotTried(String),
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Accepted => f.write_str("accepted"),
            Outcome::Partial => f.write_str("accepted, but the server requires another method too"),
            Outcome::Refused => f.write_str("refused"),
            Outcome::Closed => f.write_str("no answer: the server closed the connection"),
            Outcome::NotTried(why) => f.write_str(why),
        }
    }
}

/// One authentication attempt and how it went, for the final report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub kind: Method,
    /// What was tried, e.g. `key /home/a/.ssh/id_ed25519` or `keyboard-interactive`.
    pub method: String,
    pub outcome: Outcome,
    /// The questions the user answered in this attempt (the server's prompts, never the answers).
    pub answered: Vec<String>,
}

impl Attempt {
    pub fn new(kind: Method, method: impl Into<String>, outcome: Outcome) -> Self {
        Attempt {
            kind,
            method: method.into(),
            outcome,
            answered: Vec::new(),
        }
    }

    /// An attempt whose questions were answered on the terminal.
    pub fn answered(mut self, questions: Vec<String>) -> Self {
        self.answered = questions;
        self
    }

    fn refused_answers(&self) -> bool {
        !self.answered.is_empty() && matches!(self.outcome, Outcome::Refused)
    }
}

impl fmt::Display for Attempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", escape_controls(&self.method))?;
        if self.kind == Method::KeyboardInteractive
            && !self.answered.is_empty()
            && self.outcome != Outcome::Accepted
        {
            write!(f, " (answered {})", questions(&self.answered))?;
        }
        write!(f, ": {}", self.outcome)
    }
}

/// `"Verification code:"` or `"Password:", "Verification code:"`, quoted and escaped.
fn questions(prompts: &[String]) -> String {
    let mut unique: Vec<String> = Vec::new();
    for prompt in prompts {
        let text = format!("{:?}", prompt.trim());
        if !unique.contains(&text) {
            unique.push(text);
        }
    }
    unique.join(", ")
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
    #[error("{}", disconnected_text(host, attempts, *at_prompt))]
    Disconnected {
        host: String,
        attempts: Vec<Attempt>,
        /// How long the last question had been on the screen when the server closed, if it closed
        /// while one was asked (its LoginGraceTime ran out).
        at_prompt: Option<std::time::Duration>,
    },
    /// Ctrl-C at a question.
    #[error("interrupted at the login prompt for {user}@{host}")]
    Interrupted { user: String, host: String },
    #[error(transparent)]
    Ssh(#[from] russh::Error),
}

impl Diagnose for AuthError {
    fn exit_code(&self) -> u8 {
        match self {
            AuthError::Interrupted { .. } => exit::INTERRUPTED,
            _ => exit::AUTH,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            AuthError::CertificateExpired { path, .. } => Some(format!(
                "renew the certificate with your site's tool (e.g. CSCS: `cscs-key sign`, or ask your admins to re-sign {}) and run the command again; `ssh-keygen -L -f {}` shows its validity",
                escape_controls(&path.display().to_string()),
                quote(&path.display().to_string())
            )),
            AuthError::Failed { user, host, attempts, .. } => Some(failed_hint(user, host, attempts)),
            AuthError::Disconnected { at_prompt: Some(_), .. } => Some(
                "answer sooner: sshd allows a login only so long (LoginGraceTime, 2 minutes by default); have the code or password ready and run the command again"
                    .into(),
            ),
            AuthError::Disconnected { .. } => Some(
                "set key_filename (and identities_only = true) so only the right key is offered"
                    .into(),
            ),
            _ => None,
        }
    }
}

/// Name what was refused: the answers typed, the keys offered, or the lack of a terminal.
fn failed_hint(user: &str, host: &str, attempts: &[Attempt]) -> String {
    let (user, host) = (escape_controls(user), escape_controls(host));
    let mut parts = Vec::new();
    let refused: Vec<&Attempt> = attempts.iter().filter(|a| a.refused_answers()).collect();
    if let Some(last) = refused.last() {
        let what = match last.kind {
            Method::Password => "the password".to_string(),
            _ => {
                let asked: Vec<String> = refused.iter().flat_map(|a| a.answered.clone()).collect();
                format!("the answers to {}", questions(&asked))
            }
        };
        parts.push(format!(
            "{host} refused {what} ({} tr{}): check what you type (a one-time code is valid for about 30 s and needs the device's clock to be right) and run the command again",
            refused.len(),
            if refused.len() == 1 { "y" } else { "ies" }
        ));
    }
    let unanswered = attempts.iter().any(|a| {
        matches!(a.kind, Method::KeyboardInteractive | Method::Password)
            && matches!(a.outcome, Outcome::NotTried(_))
    });
    if unanswered && refused.is_empty() {
        parts.push(format!(
            "{host} asks questions (a password or a one-time code) that need a terminal: run the command on one"
        ));
    }
    let key_partly_accepted = attempts
        .iter()
        .any(|a| a.kind == Method::Key && a.outcome == Outcome::Partial);
    let keys_refused = attempts
        .iter()
        .any(|a| a.kind == Method::Key && a.outcome == Outcome::Refused);
    if (keys_refused && !key_partly_accepted) || parts.is_empty() {
        parts.push(format!(
            "check that the public key is in ~{user}/.ssh/authorized_keys on {host} (or that its certificate's principals include {user}), \
             that the right key is configured (key_filename / IdentityFile), and run `slurmkit doctor` to see each step"
        ));
    }
    parts.join("; ")
}

fn disconnected_text(
    host: &str,
    attempts: &[Attempt],
    at_prompt: Option<std::time::Duration>,
) -> String {
    let host = escape_controls(host);
    match at_prompt {
        Some(waited) => format!(
            "the connection to {host} closed during authentication while a question was on the screen ({} after it was asked): the time the server allows for logging in (sshd's LoginGraceTime) ran out; tried:\n{}",
            human_duration(waited.as_secs()),
            list(attempts)
        ),
        None => format!(
            "the connection to {host} closed during authentication after {} attempt(s) (the server's MaxAuthTries may be lower than {MAX_KEY_ATTEMPTS}); tried:\n{}",
            attempts.len(),
            list(attempts)
        ),
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
    let (user, host) = (escape_controls(user), escape_controls(host));
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
                Attempt::new(Method::Key, "key /home/a/.ssh/id_ed25519", Outcome::Refused),
                Attempt::new(
                    Method::Password,
                    "password",
                    Outcome::NotTried("no terminal to ask on".into()),
                ),
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
