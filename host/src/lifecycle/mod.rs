//! The lifecycle floor: a connection's session and everything done in it, between the command line
//! above and the transports, plugins and Slurm commands below.
//!
//! - [`plan`] (with [`flags`] and [`hops`]): flags, the Slurmfile and ssh_config resolved once, before
//!   any I/O.
//! - [`remote`]: the resolved cluster and one connection to it.
//! - [`session`]: connection, journal and outbox together; reconnection.
//! - [`submit`]: any number of jobs in one exchange, through the site policies.
//! - [`upload`]: where job directories go, and the tar stream that carries a batch of them.
//! - [`reconcile`]: recovering interrupted submissions.
//! - [`observe`]: one status query per round for any number of jobs; waiting.
//! - [`logs`]: reading and following a job's output.
//! - [`allocation`]: a running job's nodes: a shell or command there, ports forwarded to it.
//! - [`outbox`]: lifecycle events ([`event`]), journaled, then delivered to callbacks.

mod after;
pub mod allocation;
mod error;
pub mod event;
pub mod fetch;
pub mod flags;
mod hops;
pub mod logs;
pub mod observe;
pub mod outbox;
pub mod plan;
pub mod reconcile;
pub mod remote;
mod render;
pub mod results;
pub mod runner;
pub mod session;
pub mod split;
pub mod stage;
mod store;
pub mod submit;
mod upload;
pub mod work;

pub use error::{LifecycleError, PlanError};
pub use flags::{Flags, JobFlags};
pub use plan::{Dirs, Plan};
pub use remote::{Backend, Connection, Target};
pub use session::Session;
pub use submit::Submitted;

use std::path::Path;
use std::sync::Arc;

use crate::config::Slurmfile;
use crate::plugin::PluginEngine;
use crate::ssh::auth::Prompter;

/// Open a session: connect to the (already resolved) target, load the callbacks, and recover
/// submissions whose reply never came back (a problem there never stops the command asked for).
pub async fn open(
    target: Target,
    file: Option<&Slurmfile>,
    journal_path: &Path,
    engine: &PluginEngine,
    prompter: Arc<dyn Prompter>,
) -> Result<Session, LifecycleError> {
    let session = Session::connect(target, file, journal_path, engine, prompter).await?;
    if let Err(e) = reconcile::reconcile(&session).await {
        tracing::warn!("could not check interrupted submissions: {e}");
    }
    Ok(session)
}
