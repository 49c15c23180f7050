//! A connection's session: the target, the connection (re-opened when it drops), the journal and the
//! outbox of callback events. Every command that talks to the cluster runs inside one ([`super::open`]);
//! interrupted submissions are recovered as it opens, and due events are delivered as it finishes.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::LifecycleError;
use super::outbox::Outbox;
use super::remote::{Connection, Target};
use crate::config::Slurmfile;
use crate::journal::SharedJournal;
use crate::plugin::PluginEngine;
use crate::ssh::auth::Prompter;

/// Consecutive failures (a dropped connection, a controller restarting) ridden out before giving up;
/// with the backoff below, about ten minutes.
pub const RIDE_OUT: Duration = Duration::from_secs(600);
const FIRST_RETRY: Duration = Duration::from_millis(500);
const MAX_RETRY: Duration = Duration::from_secs(30);

/// Everything a command that talks to the cluster needs.
pub struct Session {
    pub target: Target,
    pub conn: Connection,
    pub journal: SharedJournal,
    pub outbox: Outbox,
    prompter: Arc<dyn Prompter>,
    /// Told how staging goes: bytes sent so far, and the total.
    pub progress: Option<Arc<dyn Fn(u64, u64) + Send + Sync>>,
}

impl Session {
    /// Connect to the (already resolved) target and load the callbacks; [`super::open`] also recovers
    /// interrupted submissions.
    pub(super) async fn connect(
        target: Target,
        file: Option<&Slurmfile>,
        journal_path: &Path,
        engine: &PluginEngine,
        prompter: Arc<dyn Prompter>,
    ) -> Result<Session, LifecycleError> {
        let journal = SharedJournal::open(journal_path).await?;
        let outbox = Outbox::load(engine, file, &target.key, journal.clone()).await;
        let conn = Connection::open(&target, prompter.clone())
            .await
            .map_err(|source| LifecycleError::Connect {
                cluster: target.key.clone(),
                source,
            })?;
        Ok(Session {
            target,
            conn,
            journal,
            outbox,
            prompter,
            progress: None,
        })
    }

    /// Deliver what is due (including retries left over from earlier runs), then close.
    pub async fn finish(self) {
        self.outbox.deliver_due().await;
        self.conn.close().await;
    }

    /// Open a new connection after the old one dropped, backing off between tries, for up to
    /// `deadline`. Says so on stderr, since the command seems to hang meanwhile.
    pub async fn reconnect(&mut self, deadline: Instant) -> Result<(), LifecycleError> {
        let mut delay = FIRST_RETRY;
        let mut attempts = 0;
        let started = Instant::now();
        loop {
            attempts += 1;
            tracing::warn!(
                "the connection to {} dropped; reconnecting (attempt {attempts})",
                self.target.display_name()
            );
            match Connection::open(&self.target, self.prompter.clone()).await {
                Ok(conn) => {
                    let old = std::mem::replace(&mut self.conn, conn);
                    old.close().await;
                    tracing::warn!("reconnected to {}", self.target.display_name());
                    return Ok(());
                }
                Err(error) => {
                    // A refused host key or failed login will not fix itself.
                    let permanent = matches!(
                        error,
                        crate::ssh::SshError::HostKey(_) | crate::ssh::SshError::Auth(_)
                    );
                    if permanent || Instant::now() + delay > deadline {
                        return Err(LifecycleError::Reconnect {
                            cluster: self.target.key.clone(),
                            seconds: started.elapsed().as_secs(),
                            attempts,
                            source: Box::new(LifecycleError::Ssh(error)),
                        });
                    }
                    tracing::debug!("reconnecting failed: {error}");
                }
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(MAX_RETRY);
        }
    }
}
