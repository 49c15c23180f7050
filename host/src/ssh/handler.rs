//! What russh calls back into during a handshake: the host-key decision (the policy's) and the
//! server's banner (shown through the prompter).

use std::sync::{Arc, Mutex};

use russh::client;
use russh::keys::PublicKeyOrCertificate;

use super::auth::Prompter;
use super::policy::{Acceptance, HostKeyCheck, HostKeyError};

/// russh calls back into this during the handshake.
pub struct ClientHandler {
    pub(super) check: Arc<HostKeyCheck>,
    pub(super) acceptance: Arc<Mutex<Option<Acceptance>>>,
    pub(super) prompter: Arc<dyn Prompter>,
}

#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error(transparent)]
    Ssh(#[from] russh::Error),
    #[error(transparent)]
    HostKey(#[from] HostKeyError),
}

impl client::Handler for ClientHandler {
    type Error = HandlerError;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let acceptance = self.check.decide(key)?;
        *self.acceptance.lock().expect("not poisoned") = Some(acceptance);
        Ok(true)
    }

    async fn auth_banner(
        &mut self,
        banner: &str,
        _session: &mut client::Session,
    ) -> Result<(), Self::Error> {
        self.prompter.banner(banner);
        Ok(())
    }
}
