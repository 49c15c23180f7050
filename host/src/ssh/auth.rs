//! Authentication, in OpenSSH's order.
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
use std::sync::Arc;

use russh::MethodKind;
use russh::client::{self, AuthResult, KeyboardInteractiveAuthResponse};
use russh::keys::agent::AgentIdentity;
use russh::keys::agent::client::AgentClient;
use russh::keys::ssh_encoding::Encode;
use russh::keys::ssh_key::private::KeypairData;
use russh::keys::{HashAlg, PrivateKey, PrivateKeyWithHashAlg};

use super::known_hosts::unix_now;
use super::session::ClientHandler;

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

impl AuthError {
    pub fn hint(&self) -> Option<String> {
        match self {
            AuthError::CertificateExpired { path, .. } => Some(format!(
                "renew the certificate with your site's tool (e.g. CSCS: `cscs-key sign`, or ask your admins to re-sign {}) and run the command again; `ssh-keygen -L -f {}` shows its validity",
                path.display(),
                path.display()
            )),
            AuthError::Failed { user, host, .. } => Some(format!(
                "check that the public key is in ~{user}/.ssh/authorized_keys on {host} (or that its certificate's principals include {user}), \
                 that the right key is configured (key_filename / IdentityFile), and run `slurmkit doctor` to see each step"
            )),
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

/// Signs with a key held in memory, for certificate authentication through russh's signer path (its
/// plain certificate call picks the wrong algorithm for RSA certificates against OpenSSH).
struct KeySigner(Arc<PrivateKey>);

#[derive(Debug, thiserror::Error)]
enum SignError {
    #[error(transparent)]
    Send(#[from] russh::SendError),
    #[error("signing failed: {0}")]
    Key(String),
}

impl russh::Signer for KeySigner {
    type Error = SignError;

    async fn auth_sign(
        &mut self,
        _key: &AgentIdentity,
        hash_alg: Option<HashAlg>,
        mut to_sign: Vec<u8>,
    ) -> Result<Vec<u8>, Self::Error> {
        use russh::keys::signature::Signer;
        let signature: russh::keys::ssh_key::Signature = match self.0.key_data() {
            KeypairData::Rsa(keypair) => {
                Signer::try_sign(&(keypair, hash_alg.or(Some(HashAlg::Sha512))), &to_sign)
            }
            keypair => Signer::try_sign(keypair, &to_sign),
        }
        .map_err(|e| SignError::Key(e.to_string()))?;
        let encoded = signature
            .encode_vec()
            .map_err(|e| SignError::Key(e.to_string()))?;
        encoded
            .encode(&mut to_sign)
            .map_err(|e| SignError::Key(e.to_string()))?;
        Ok(to_sign)
    }
}

/// Drives authentication on a fresh connection.
pub struct Authenticator<'a> {
    handle: &'a mut client::Handle<ClientHandler>,
    host: String,
    plan: &'a AuthPlan,
    prompter: Arc<dyn Prompter>,
    attempts: Vec<Attempt>,
    key_attempts: usize,
    /// Methods the server still accepts (after a partial success, only these).
    remaining: Option<Vec<MethodKind>>,
    /// Public keys already offered, so the agent's copy of a key file is not offered again.
    offered: Vec<russh::keys::ssh_key::public::KeyData>,
    /// The server closed the connection (sshd does when MaxAuthTries is exceeded).
    closed: bool,
}

enum Step {
    Done,
    Continue,
}

impl<'a> Authenticator<'a> {
    pub fn new(
        handle: &'a mut client::Handle<ClientHandler>,
        host: &str,
        plan: &'a AuthPlan,
        prompter: Arc<dyn Prompter>,
    ) -> Self {
        Authenticator {
            handle,
            host: host.to_string(),
            plan,
            prompter,
            attempts: Vec::new(),
            key_attempts: 0,
            remaining: None,
            offered: Vec::new(),
            closed: false,
        }
    }

    /// Authenticate, or explain every attempt that failed.
    pub async fn run(mut self) -> Result<Vec<Attempt>, AuthError> {
        match self.all_methods().await {
            Ok(()) => Ok(self.attempts),
            Err(AuthError::Ssh(
                russh::Error::Disconnect | russh::Error::RecvError | russh::Error::SendError,
            )) => Err(AuthError::Disconnected {
                host: self.host,
                attempts: self.attempts,
            }),
            Err(AuthError::Failed { attempts, .. }) if self.closed => {
                Err(AuthError::Disconnected {
                    host: self.host,
                    attempts,
                })
            }
            Err(e) => Err(e),
        }
    }

    async fn all_methods(&mut self) -> Result<(), AuthError> {
        // "none" first, as OpenSSH does: it learns which methods the server offers, and sshd does not
        // count it against MaxAuthTries.
        match self.handle.authenticate_none(&self.plan.user).await? {
            AuthResult::Success => {
                self.attempts.push(Attempt {
                    method: "none".into(),
                    outcome: "accepted".into(),
                });
                return Ok(());
            }
            AuthResult::Failure {
                remaining_methods, ..
            } => {
                self.remaining = Some(remaining_methods.iter().copied().collect());
            }
        }
        if let Step::Done = self.public_keys().await? {
            return Ok(());
        }
        if let Step::Done = self.keyboard_interactive().await? {
            return Ok(());
        }
        if let Step::Done = self.password().await? {
            return Ok(());
        }
        let remaining = self
            .remaining
            .clone()
            .unwrap_or_default()
            .iter()
            .map(|m| String::from(<&str>::from(m)))
            .collect();
        Err(AuthError::Failed {
            user: self.plan.user.clone(),
            host: self.host.clone(),
            attempts: std::mem::take(&mut self.attempts),
            remaining,
        })
    }

    fn allows(&self, method: MethodKind) -> bool {
        !self.closed
            && self
                .remaining
                .as_ref()
                .is_none_or(|methods| methods.contains(&method))
    }

    /// Record an attempt's result; `Done` on success.
    fn settle(&mut self, method: String, result: AuthResult) -> Step {
        match result {
            AuthResult::Success => {
                self.attempts.push(Attempt {
                    method,
                    outcome: "accepted".into(),
                });
                Step::Done
            }
            AuthResult::Failure {
                remaining_methods,
                partial_success,
            } => {
                // russh reports a connection the server closed as a failure that leaves no method;
                // a server that means it sends at least one, so this is the close.
                if remaining_methods.is_empty() && !partial_success {
                    self.closed = true;
                }
                let outcome = if self.closed {
                    "no answer: the server closed the connection".to_string()
                } else if partial_success {
                    "accepted, but the server requires another method too".to_string()
                } else {
                    "refused".to_string()
                };
                self.attempts.push(Attempt { method, outcome });
                self.remaining = Some(remaining_methods.iter().copied().collect());
                Step::Continue
            }
        }
    }

    async fn public_keys(&mut self) -> Result<Step, AuthError> {
        for identity in &self.plan.identities {
            if !self.allows(MethodKind::PublicKey) {
                return Ok(Step::Continue);
            }
            let Some(key) = self.load_key(&identity.key).await? else {
                continue;
            };
            let key = Arc::new(key);
            for cert_path in &identity.certificates {
                if self.out_of_key_attempts() {
                    return Ok(Step::Continue);
                }
                let cert = russh::keys::load_openssh_certificate(cert_path).map_err(|e| {
                    AuthError::BadIdentity {
                        path: cert_path.clone(),
                        reason: e.to_string(),
                    }
                })?;
                // A CertificateFile applies to the key it certifies; offering it with another key
                // would only burn one of the server's MaxAuthTries.
                if cert.public_key() != key.public_key().key_data() {
                    tracing::debug!(
                        "certificate {} is not for key {}; not offering them together",
                        cert_path.display(),
                        identity.key.display()
                    );
                    continue;
                }
                let hash = rsa_hash(cert.algorithm().is_rsa());
                let mut signer = KeySigner(key.clone());
                let result = self
                    .handle
                    .authenticate_certificate_with(&self.plan.user, cert, hash, &mut signer)
                    .await
                    .map_err(|e| match e {
                        SignError::Send(_) => AuthError::Ssh(russh::Error::SendError),
                        SignError::Key(reason) => AuthError::BadIdentity {
                            path: cert_path.clone(),
                            reason,
                        },
                    })?;
                self.key_attempts += 1;
                if let Step::Done =
                    self.settle(format!("certificate {}", cert_path.display()), result)
                {
                    return Ok(Step::Done);
                }
            }
            if self.out_of_key_attempts() || !self.allows(MethodKind::PublicKey) {
                return Ok(Step::Continue);
            }
            let hash = if key.algorithm().is_rsa() {
                self.handle.best_supported_rsa_hash().await?.flatten()
            } else {
                None
            };
            self.offered.push(key.public_key().key_data().clone());
            let result = self
                .handle
                .authenticate_publickey(
                    &self.plan.user,
                    PrivateKeyWithHashAlg::new(key.clone(), hash),
                )
                .await?;
            self.key_attempts += 1;
            if let Step::Done = self.settle(format!("key {}", identity.key.display()), result) {
                return Ok(Step::Done);
            }
        }
        if !self.plan.identities_only {
            return self.agent_keys().await;
        }
        Ok(Step::Continue)
    }

    async fn agent_keys(&mut self) -> Result<Step, AuthError> {
        let Some(socket) = &self.plan.agent_socket else {
            return Ok(Step::Continue);
        };
        let stream = match tokio::net::UnixStream::connect(socket).await {
            Ok(stream) => stream,
            Err(e) => {
                tracing::debug!("ssh-agent at {} is not reachable: {e}", socket.display());
                return Ok(Step::Continue);
            }
        };
        let mut agent = AgentClient::connect(stream);
        let identities = match agent.request_identities().await {
            Ok(ids) => ids,
            Err(e) => {
                tracing::warn!(
                    "ssh-agent at {} did not list its keys: {e}",
                    socket.display()
                );
                return Ok(Step::Continue);
            }
        };
        // Certificates first, as OpenSSH does; a key already offered from a file is not offered again.
        let (mut ordered, keys): (Vec<AgentIdentity>, Vec<AgentIdentity>) = identities
            .into_iter()
            .partition(|id| matches!(id, AgentIdentity::Certificate { .. }));
        ordered.extend(keys);
        for identity in ordered {
            if !self.allows(MethodKind::PublicKey) || self.out_of_key_attempts() {
                return Ok(Step::Continue);
            }
            if let AgentIdentity::PublicKey { key, .. } = &identity
                && self.offered.contains(key.key_data())
            {
                continue;
            }
            let (label, result) = match identity {
                AgentIdentity::Certificate {
                    certificate,
                    comment,
                } => {
                    let hash = rsa_hash(certificate.algorithm().is_rsa());
                    let label = format!("agent certificate {} ({comment})", certificate.key_id());
                    let result = self
                        .handle
                        .authenticate_certificate_with(
                            &self.plan.user,
                            certificate,
                            hash,
                            &mut agent,
                        )
                        .await;
                    (label, result)
                }
                AgentIdentity::PublicKey { key, comment } => {
                    let hash = if key.algorithm().is_rsa() {
                        self.handle.best_supported_rsa_hash().await?.flatten()
                    } else {
                        None
                    };
                    let label =
                        format!("agent key {} ({comment})", key.fingerprint(HashAlg::Sha256));
                    let result = self
                        .handle
                        .authenticate_publickey_with(&self.plan.user, key, hash, &mut agent)
                        .await;
                    (label, result)
                }
            };
            self.key_attempts += 1;
            match result {
                Ok(result) => {
                    if let Step::Done = self.settle(label, result) {
                        return Ok(Step::Done);
                    }
                }
                Err(e) => self.attempts.push(Attempt {
                    method: label,
                    outcome: format!("the agent could not sign: {e}"),
                }),
            }
        }
        Ok(Step::Continue)
    }

    fn out_of_key_attempts(&self) -> bool {
        if self.key_attempts >= MAX_KEY_ATTEMPTS {
            tracing::warn!(
                "stopping after {MAX_KEY_ATTEMPTS} keys to stay under the server's MaxAuthTries"
            );
            return true;
        }
        false
    }

    /// Load a private key, asking for its passphrase on the terminal when it is encrypted.
    async fn load_key(&mut self, path: &Path) -> Result<Option<PrivateKey>, AuthError> {
        match russh::keys::load_secret_key(path, None) {
            Ok(key) => return Ok(Some(key)),
            Err(russh::keys::Error::KeyIsEncrypted) => {}
            Err(e) => {
                self.attempts.push(Attempt {
                    method: format!("key {}", path.display()),
                    outcome: format!("unreadable: {e}"),
                });
                return Ok(None);
            }
        }
        for _ in 0..3 {
            let prompt = format!("Enter passphrase for key '{}': ", path.display());
            let passphrase = match self.ask(prompt, false).await {
                Ok(p) => p,
                Err(e) => {
                    self.attempts.push(Attempt {
                        method: format!("key {}", path.display()),
                        outcome: format!("encrypted, and its passphrase cannot be asked for ({e})"),
                    });
                    return Ok(None);
                }
            };
            match russh::keys::load_secret_key(path, Some(&passphrase)) {
                Ok(key) => return Ok(Some(key)),
                Err(_) => self.prompter.instructions("Bad passphrase, try again."),
            }
        }
        self.attempts.push(Attempt {
            method: format!("key {}", path.display()),
            outcome: "wrong passphrase".into(),
        });
        Ok(None)
    }

    /// One question for the prompter, off the async worker threads (a terminal read blocks).
    async fn ask(&self, prompt: String, echo: bool) -> std::io::Result<String> {
        let prompter = self.prompter.clone();
        tokio::task::spawn_blocking(move || prompter.ask(&prompt, echo))
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))?
    }

    async fn keyboard_interactive(&mut self) -> Result<Step, AuthError> {
        if !self.allows(MethodKind::KeyboardInteractive) {
            return Ok(Step::Continue);
        }
        let mut response = self
            .handle
            .authenticate_keyboard_interactive_start(&self.plan.user, None)
            .await?;
        let mut rounds = 0;
        loop {
            match response {
                KeyboardInteractiveAuthResponse::Success => {
                    self.attempts.push(Attempt {
                        method: "keyboard-interactive".into(),
                        outcome: "accepted".into(),
                    });
                    return Ok(Step::Done);
                }
                KeyboardInteractiveAuthResponse::Failure {
                    remaining_methods,
                    partial_success,
                } => {
                    let result = AuthResult::Failure {
                        remaining_methods,
                        partial_success,
                    };
                    let step = self.settle("keyboard-interactive".into(), result);
                    if partial_success {
                        // Another method is required; keyboard-interactive may be asked for again.
                        return Box::pin(self.after_partial()).await;
                    }
                    return Ok(step);
                }
                KeyboardInteractiveAuthResponse::InfoRequest {
                    name,
                    instructions,
                    prompts,
                } => {
                    rounds += 1;
                    if rounds > 20 {
                        self.attempts.push(Attempt {
                            method: "keyboard-interactive".into(),
                            outcome: "gave up after 20 rounds".into(),
                        });
                        return Ok(Step::Continue);
                    }
                    for text in [name, instructions] {
                        if !text.trim().is_empty() {
                            self.prompter.instructions(text.trim_end());
                        }
                    }
                    // An empty round (no prompts) is answered with no responses, or the server waits.
                    let mut answers = Vec::with_capacity(prompts.len());
                    for prompt in &prompts {
                        match self.ask(prompt.prompt.clone(), prompt.echo).await {
                            Ok(answer) => answers.push(answer),
                            Err(e) => {
                                self.attempts.push(Attempt {
                                    method: "keyboard-interactive".into(),
                                    outcome: format!("the server asked {:?}, and there is no terminal to answer on ({e})", prompt.prompt),
                                });
                                return Ok(Step::Continue);
                            }
                        }
                    }
                    response = self
                        .handle
                        .authenticate_keyboard_interactive_respond(answers)
                        .await?;
                }
            }
        }
    }

    /// After a partial success, continue with whatever the server still requires.
    async fn after_partial(&mut self) -> Result<Step, AuthError> {
        if self.allows(MethodKind::KeyboardInteractive)
            && let Step::Done = self.keyboard_interactive().await?
        {
            return Ok(Step::Done);
        }
        self.password().await
    }

    async fn password(&mut self) -> Result<Step, AuthError> {
        if !self.allows(MethodKind::Password) {
            return Ok(Step::Continue);
        }
        let prompt = format!("{}@{}'s password: ", self.plan.user, self.host);
        let password = match self.ask(prompt, false).await {
            Ok(password) => password,
            Err(_) => {
                self.attempts.push(Attempt {
                    method: "password".into(),
                    outcome: "no terminal to ask on".into(),
                });
                return Ok(Step::Continue);
            }
        };
        let result = self
            .handle
            .authenticate_password(&self.plan.user, password)
            .await?;
        Ok(self.settle("password".into(), result))
    }
}

fn rsa_hash(is_rsa: bool) -> Option<HashAlg> {
    is_rsa.then_some(HashAlg::Sha512)
}

#[cfg(test)]
mod tests {
    use super::*;

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
