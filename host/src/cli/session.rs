//! Running a command in a session: connect, run, and finish the session (due callbacks delivered, the
//! connection closed) whatever happened.

use std::sync::Arc;

use super::diagnostics::Failure;
use super::terminal::TerminalPrompter;
use crate::lifecycle::{Plan, Session, Target};
use crate::plugin::PluginEngine;

/// Connect, run `command` in the session, and finish the session whatever happened.
pub async fn in_session<T>(
    plan: &Plan,
    target: Target,
    engine: &PluginEngine,
    command: impl AsyncFnOnce(&mut Session) -> Result<T, Failure>,
) -> Result<T, Failure> {
    let mut session = crate::lifecycle::open(
        target,
        plan.file.as_ref(),
        &plan.dirs.journal(),
        engine,
        Arc::new(TerminalPrompter),
    )
    .await?;
    let result = command(&mut session).await;
    session.finish().await;
    result
}
