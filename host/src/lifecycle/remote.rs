//! The cluster, fully resolved ([`Target`]), and one connection to it ([`Connection`]): an SSH session
//! through any jump hosts, or this machine for the `local` backend. Either runs the same command lines.

use std::sync::Arc;

use crate::exec::{CommandError, CommandOutput, Exec, Exit};
use crate::ssh::auth::Prompter;
use crate::ssh::channels::{Pty, Terminal};
use crate::ssh::{Hop, Session, SshError, Transport};
use crate::transfer::Files;
use crate::types::shell::ShellCommand;

/// How to reach the cluster.
#[derive(Debug, Clone)]
pub enum Backend {
    Ssh {
        jumps: Vec<Hop>,
        target: Box<Hop>,
        transport: Transport,
    },
    /// `sbatch` and friends on this machine.
    Local,
}

/// A cluster, fully resolved.
#[derive(Debug, Clone)]
pub struct Target {
    /// Identifies the cluster in the journal: `ssh://user@host:port` or `local`.
    pub key: String,
    pub backend: Backend,
    /// Where job directories go; `~/` and relative paths are under the remote home directory.
    pub job_base_dir: String,
    /// The most tasks of one array of items, when configured lower than the cluster's MaxArraySize.
    pub max_array_size: Option<u64>,
}

impl Target {
    /// The host name to show the user.
    pub fn display_name(&self) -> &str {
        match &self.backend {
            Backend::Ssh { target, .. } => &target.display_name,
            Backend::Local => "this machine",
        }
    }
}

/// A forwarded connection, read and written like a socket.
pub trait Forwarded: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Forwarded for T {}

/// An open connection.
pub enum Connection {
    Ssh(Box<Session>),
    Local,
}

impl Connection {
    pub async fn open(
        target: &Target,
        prompter: Arc<dyn Prompter>,
    ) -> Result<Connection, SshError> {
        match &target.backend {
            Backend::Local => Ok(Connection::Local),
            Backend::Ssh {
                jumps,
                target: hop,
                transport,
            } => Ok(Connection::Ssh(Box::new(
                Session::connect(jumps, hop, transport, prompter).await?,
            ))),
        }
    }

    /// Files on the cluster (SFTP, opened on first use) or on this machine.
    pub async fn files(&self) -> Result<Files<'_>, SshError> {
        match self {
            Connection::Ssh(session) => Ok(Files::Sftp(session.sftp().await?)),
            Connection::Local => Ok(Files::Local),
        }
    }

    /// Whether the connection is gone (the network dropped it, or the server closed it).
    pub fn is_closed(&self) -> bool {
        match self {
            Connection::Ssh(session) => session.is_closed(),
            Connection::Local => false,
        }
    }

    /// Run `command` with the terminal's input and output until it ends (on a pseudo-terminal when
    /// `pty` is given); on this machine, with this process's own terminal.
    pub async fn interactive<I, O, E>(
        &self,
        command: &ShellCommand,
        pty: Option<Pty>,
        terminal: Terminal<I, O, E>,
    ) -> Result<Exit, CommandError>
    where
        I: tokio::io::AsyncRead + Unpin,
        O: tokio::io::AsyncWrite + Unpin,
        E: tokio::io::AsyncWrite + Unpin,
    {
        match self {
            Connection::Ssh(session) => session.interactive(command, pty, terminal).await,
            Connection::Local => tokio::process::Command::new("/bin/sh")
                .arg("-c")
                .arg(command.as_str())
                .status()
                .await
                .map(Exit::from)
                .map_err(|e| CommandError::NotRun {
                    command: command.to_string(),
                    reason: e.to_string(),
                }),
        }
    }

    /// A TCP connection to `host:port` as the cluster's login node reaches it: opened by the login
    /// node over SSH (through every jump hop), or directly for this machine.
    pub async fn forward(&self, host: &str, port: u16) -> Result<Box<dyn Forwarded>, SshError> {
        match self {
            Connection::Ssh(session) => Ok(Box::new(session.forward(host, port).await?)),
            Connection::Local => tokio::net::TcpStream::connect((host, port))
                .await
                .map(|stream| Box::new(stream) as Box<dyn Forwarded>)
                .map_err(|source| SshError::Connect {
                    host: host.to_string(),
                    port,
                    source,
                }),
        }
    }

    pub async fn close(self) {
        if let Connection::Ssh(session) = self {
            session.close().await;
        }
    }
}

impl Exec for Connection {
    async fn run(
        &self,
        command: &ShellCommand,
        input: &[u8],
    ) -> Result<CommandOutput, CommandError> {
        match self {
            Connection::Ssh(session) => session.run(command, input).await,
            Connection::Local => run_locally(command, std::io::Cursor::new(input.to_vec())).await,
        }
    }

    async fn run_stream<R>(
        &self,
        command: &ShellCommand,
        input: R,
    ) -> Result<CommandOutput, CommandError>
    where
        R: tokio::io::AsyncRead + Send + Unpin + 'static,
    {
        match self {
            Connection::Ssh(session) => session.run_stream(command, input).await,
            Connection::Local => run_locally(command, input).await,
        }
    }
}

/// Run a command line on this machine through `/bin/sh -c`, so the `local` and `ssh` backends share
/// every command line (and its quoting).
async fn run_locally<R>(command: &ShellCommand, mut input: R) -> Result<CommandOutput, CommandError>
where
    R: tokio::io::AsyncRead + Send + Unpin + 'static,
{
    use tokio::io::AsyncWriteExt;
    tracing::debug!(command = %command.as_str(), "running locally");
    let not_run = |e: std::io::Error| CommandError::NotRun {
        command: command.to_string(),
        reason: e.to_string(),
    };
    let mut child = tokio::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(command.as_str())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(not_run)?;
    let mut stdin = child.stdin.take().expect("piped");
    // Written while the output is read, so neither side waits on a full pipe.
    let writer = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut input, &mut stdin).await;
        let _ = stdin.shutdown().await;
    });
    let output = child.wait_with_output().await.map_err(not_run)?;
    let _ = writer.await;
    Ok(CommandOutput {
        exit: output.status.into(),
        stdout: output.stdout,
        stderr: output.stderr,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_commands_report_exit_code_and_output_and_read_their_input() {
        let out = Connection::Local
            .exec(&ShellCommand::new("false"))
            .await
            .unwrap();
        assert_eq!(out.exit, Exit::Code(1));
        let out = Connection::Local
            .exec(&ShellCommand::new("echo").arg("$HOME; id"))
            .await
            .unwrap();
        assert!(out.success());
        assert_eq!(out.stdout_text(), "$HOME; id\n");
        let out = Connection::Local
            .run(&ShellCommand::new("cat"), b"piped in")
            .await
            .unwrap();
        assert_eq!(out.stdout_text(), "piped in");
    }
}
