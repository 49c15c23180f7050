//! Sending a batch of jobs: where job directories go on the cluster, and the tar stream that carries
//! them to the one remote command that stages and submits them.

use super::LifecycleError;
use super::session::Session;
use crate::exec::Exec;
use crate::slurm::submit::{self as exchange, StagedJob};
use crate::types::shell::ShellCommand;

/// Run the exchange with the job directories streamed to it as a tar archive, written on a blocking
/// thread (inputs are read from disk as they go) into a pipe the connection reads from. Returns the
/// command's output and whether the whole stream was written.
/// Large inputs the cluster's input store holds are not sent ([`super::store`]); the digests of those
/// that are sent are remembered.
pub(super) async fn send(
    session: &Session,
    base: &str,
    command: &ShellCommand,
    mut jobs: Vec<StagedJob>,
) -> (
    Result<crate::exec::CommandOutput, crate::exec::CommandError>,
    Result<(), std::io::Error>,
) {
    super::store::reuse(session, base, &mut jobs).await;
    let (reader, writer) = match std::io::pipe() {
        Ok(pipe) => pipe,
        Err(e) => {
            return (
                Err(crate::exec::CommandError::NotRun {
                    command: command.to_string(),
                    reason: format!("cannot make a pipe: {e}"),
                }),
                Err(e),
            );
        }
    };
    let progress = session.progress.clone();
    let writing = tokio::task::spawn_blocking(move || {
        let total = exchange::archive_size(&jobs);
        tracing::debug!("sending {total} bytes of files");
        let mut sent = 0u64;
        let mut report = |n: u64| {
            sent += n;
            if let Some(progress) = &progress {
                progress(sent, total);
            }
        };
        exchange::write_archive(
            &jobs,
            std::io::BufWriter::with_capacity(1 << 20, writer),
            &mut report,
        )
    });
    // Read without a blocking thread per read: the pipe is polled like a socket.
    let input = match tokio::net::unix::pipe::Receiver::from_owned_fd(reader.into()) {
        Ok(input) => input,
        Err(e) => {
            let reason = format!("cannot read the pipe: {e}");
            return (
                Err(crate::exec::CommandError::NotRun {
                    command: command.to_string(),
                    reason,
                }),
                Err(e),
            );
        }
    };
    let output = session.conn.run_stream(command, input).await;
    let written = match writing.await {
        Ok(Ok(hashed)) => {
            super::store::remember(session, hashed).await;
            Ok(())
        }
        Ok(Err(e)) => Err(e),
        Err(e) => Err(std::io::Error::other(e.to_string())),
    };
    (output, written)
}

/// Where job directories go, absolute: `job_base_dir` with `~/` (or a relative path) under the remote
/// home directory, which the journal remembers per cluster (asked for once, and refreshed by every
/// submission's reply).
pub(super) async fn job_base_dir(session: &Session) -> Result<String, LifecycleError> {
    let configured = session.target.job_base_dir.clone();
    if configured.starts_with('/') {
        return Ok(configured.trim_end_matches('/').to_string());
    }
    let key = session.target.key.clone();
    let cached = session.journal.run(move |j| j.remote_home(&key)).await?;
    let home = match cached {
        Some(home) => home,
        None => {
            let command = ShellCommand::sh("print the home directory", r#"printf '%s' "$HOME""#);
            let output = session
                .conn
                .exec(&command)
                .await
                .map_err(crate::slurm::SlurmError::from)?
                .check(&command)
                .map_err(crate::slurm::SlurmError::from)?;
            let home = output.stdout_text();
            let key = session.target.key.clone();
            let remembered = home.clone();
            session
                .journal
                .run(move |j| j.set_remote_home(&key, &remembered))
                .await?;
            home
        }
    };
    let rest = configured
        .strip_prefix('~')
        .unwrap_or(&configured)
        .trim_start_matches('/')
        .trim_end_matches('/');
    let home = home.trim_end_matches('/');
    Ok(if rest.is_empty() {
        home.to_string()
    } else {
        format!("{home}/{rest}")
    })
}
