//! `result` and `fetch`: what a job wrote, brought back.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use super::diagnostics::{self, Failure};
use super::plugins::engine;
use super::session::in_session;
use crate::error::Diagnose;
use crate::lifecycle::fetch::{self as fetching, FetchError};
use crate::lifecycle::results::{ResultError, result_json};
use crate::lifecycle::{Plan, Session};
use crate::types::names::JobId;
use crate::types::text::escape_controls;

pub async fn result(plan: &Plan, job_id: &JobId) -> Result<ExitCode, Failure> {
    let engine = engine(plan)?;
    in_session(plan, plan.target().await?, &engine, async |session| {
        let mut out = std::io::stdout().lock();
        match result_json(session, job_id).await {
            Ok(value) => {
                writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
                Ok(ExitCode::SUCCESS)
            }
            // The tasks that wrote a result are still printed, in order, with null for the others.
            Err(error @ ResultError::Incomplete { .. }) => {
                if let ResultError::Incomplete { partial, .. } = &error {
                    writeln!(out, "{}", serde_json::to_string_pretty(partial)?)?;
                }
                out.flush()?;
                diagnostics::report(&error);
                Ok(ExitCode::from(error.exit_code()))
            }
            Err(error) => {
                diagnostics::report(&error);
                Ok(ExitCode::from(error.exit_code()))
            }
        }
    })
    .await
}

pub async fn fetch(
    plan: &Plan,
    job_id: &JobId,
    to: Option<&Path>,
    force: bool,
) -> Result<ExitCode, Failure> {
    let engine = engine(plan)?;
    in_session(
        plan,
        plan.target().await?,
        &engine,
        async |session| match fetch_into(session, job_id, to, force).await {
            Ok(()) => Ok(ExitCode::SUCCESS),
            Err(error) => {
                diagnostics::report(&error);
                Ok(ExitCode::from(error.exit_code()))
            }
        },
    )
    .await
}

/// Fetch and say what was fetched (and what was not) on stderr.
pub async fn fetch_into(
    session: &Session,
    job_id: &JobId,
    to: Option<&Path>,
    force: bool,
) -> Result<(), FetchError> {
    let fetched = fetching::fetch(session, job_id, to, force).await?;
    eprintln!(
        "Fetched {} file(s), {} bytes, of job {job_id} into {}",
        fetched.files.len(),
        fetched.bytes,
        escape_controls(&fetched.dest.display().to_string())
    );
    for glob in &fetched.unmatched {
        eprintln!("  no file matched {}", escape_controls(glob));
    }
    for refused in &fetched.refused {
        eprintln!("  not fetched: {}", escape_controls(refused));
    }
    Ok(())
}
