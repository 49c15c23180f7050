//! The authentication exchange on a fresh connection, in OpenSSH's order (see [`super::auth`]).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use russh::MethodKind;
use russh::client::{self, AuthResult};
use russh::keys::agent::AgentIdentity;
use russh::keys::agent::client::AgentClient;
use russh::keys::{HashAlg, PrivateKey, PrivateKeyWithHashAlg};

use super::auth::{
    Attempt, AuthError, AuthPlan, MAX_KEY_ATTEMPTS, Method, Outcome, PROMPT_TRIES, Prompter,
};
use super::handler::ClientHandler;
use super::signer::{KeySigner, SignError};

/// Drives authentication on a fresh connection.
pub struct Authenticator<'a> {
    pub(super) handle: &'a mut client::Handle<ClientHandler>,
    pub(super) host: String,
    pub(super) plan: &'a AuthPlan,
    pub(super) prompter: Arc<dyn Prompter>,
    pub(super) attempts: Vec<Attempt>,
    key_attempts: usize,
    /// Methods the server still accepts (after a partial success, only these).
    remaining: Option<Vec<MethodKind>>,
    /// Public keys already offered, so the agent's copy of a key file is not offered again.
    offered: Vec<russh::keys::ssh_key::public::KeyData>,
    /// The server closed the connection (sshd does when MaxAuthTries is exceeded).
    pub(super) closed: bool,
    /// Set when the server closed while a question was on the screen: how long it had been there.
    pub(super) closed_at_prompt: Option<Duration>,
}

pub(super) enum Step {
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
            closed_at_prompt: None,
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
                at_prompt: self.closed_at_prompt,
            }),
            Err(AuthError::Failed { attempts, .. }) if self.closed => {
                Err(AuthError::Disconnected {
                    host: self.host,
                    attempts,
                    at_prompt: self.closed_at_prompt,
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
                self.attempts
                    .push(Attempt::new(Method::None, "none", Outcome::Accepted));
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

    pub(super) fn allows(&self, method: MethodKind) -> bool {
        !self.closed
            && self
                .remaining
                .as_ref()
                .is_none_or(|methods| methods.contains(&method))
    }

    /// Record an attempt's result; `Done` on success.
    pub(super) fn settle(&mut self, attempt: Attempt, result: AuthResult) -> Step {
        match result {
            AuthResult::Success => {
                self.attempts.push(Attempt {
                    outcome: Outcome::Accepted,
                    ..attempt
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
                    Outcome::Closed
                } else if partial_success {
                    Outcome::Partial
                } else {
                    Outcome::Refused
                };
                self.attempts.push(Attempt { outcome, ..attempt });
                self.remaining = Some(remaining_methods.iter().copied().collect());
                Step::Continue
            }
        }
    }

    fn key_attempt(label: String) -> Attempt {
        Attempt::new(Method::Key, label, Outcome::Refused)
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
                let attempt = Self::key_attempt(format!("certificate {}", cert_path.display()));
                if let Step::Done = self.settle(attempt, result) {
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
            let attempt = Self::key_attempt(format!("key {}", identity.key.display()));
            if let Step::Done = self.settle(attempt, result) {
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
                    if let Step::Done = self.settle(Self::key_attempt(label), result) {
                        return Ok(Step::Done);
                    }
                }
                Err(e) => self.attempts.push(Attempt::new(
                    Method::Key,
                    label,
                    Outcome::NotTried(format!("the agent could not sign: {e}")),
                )),
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
        let label = format!("key {}", path.display());
        match read_key(path, None).await {
            Ok(key) => return Ok(Some(key)),
            Err(russh::keys::Error::KeyIsEncrypted) => {}
            Err(e) => {
                let outcome = Outcome::NotTried(format!("unreadable: {e}"));
                self.attempts
                    .push(Attempt::new(Method::Key, label, outcome));
                return Ok(None);
            }
        }
        for _ in 0..PROMPT_TRIES {
            let prompt = format!("Enter passphrase for key '{}': ", path.display());
            let passphrase = match self.ask(prompt, false).await {
                Ok(p) => p,
                Err(e) => {
                    self.interrupted(&e)?;
                    let outcome = Outcome::NotTried(format!(
                        "encrypted, and its passphrase cannot be asked for ({e})"
                    ));
                    self.attempts
                        .push(Attempt::new(Method::Key, label, outcome));
                    return Ok(None);
                }
            };
            match read_key(path, Some(passphrase)).await {
                Ok(key) => return Ok(Some(key)),
                Err(_) => self.prompter.instructions("Bad passphrase, try again."),
            }
        }
        let outcome = Outcome::NotTried("wrong passphrase".into());
        self.attempts
            .push(Attempt::new(Method::Key, label, outcome));
        Ok(None)
    }
}

/// Read (and decrypt) a key file off the async threads: decryption runs a deliberately slow KDF.
async fn read_key(
    path: &Path,
    passphrase: Option<String>,
) -> Result<PrivateKey, russh::keys::Error> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || russh::keys::load_secret_key(&path, passphrase.as_deref()))
        .await
        .unwrap_or_else(|e| Err(russh::keys::Error::IO(std::io::Error::other(e.to_string()))))
}

fn rsa_hash(is_rsa: bool) -> Option<HashAlg> {
    is_rsa.then_some(HashAlg::Sha512)
}
