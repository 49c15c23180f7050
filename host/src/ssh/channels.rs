//! Channels beyond run-and-collect: a command whose input and output stream both ways as it runs
//! (on a pseudo-terminal when asked, following the local window's size), and a TCP connection the
//! server opens on our behalf (`ssh -L`), both over the session's one connection.

use russh::ChannelMsg;
use russh::client::Msg;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use super::{Session, SshError};
use crate::exec::{CommandError, Exit};
use crate::types::shell::ShellCommand;

/// A pseudo-terminal to ask for: the local terminal's type and size.
#[derive(Debug, Clone)]
pub struct Pty {
    pub term: String,
    pub cols: u32,
    pub rows: u32,
}

/// Where an interactive command's bytes go, and where window sizes come from.
pub struct Terminal<I, O, E> {
    pub input: I,
    pub stdout: O,
    pub stderr: E,
    /// New `(columns, rows)` of the local window, passed on as they come.
    pub resize: mpsc::Receiver<(u32, u32)>,
}

impl Session {
    /// Ask the server to connect to `host:port` (as it resolves them) and hand the connection back:
    /// the last hop does the connecting, so a compute node only the login node can reach is reachable.
    pub async fn forward(
        &self,
        host: &str,
        port: u16,
    ) -> Result<russh::ChannelStream<Msg>, SshError> {
        let channel = self
            .handle
            .channel_open_direct_tcpip(host, u32::from(port), "127.0.0.1", 0)
            .await
            .map_err(|source| SshError::Forward {
                server: self.host.clone(),
                host: host.to_string(),
                port,
                source,
            })?;
        Ok(channel.into_stream())
    }

    /// Run `command` with its input, output and errors streamed from and to `terminal` until it ends,
    /// on a pseudo-terminal when `pty` is given. Returns how it ended.
    pub async fn interactive<I, O, E>(
        &self,
        command: &ShellCommand,
        pty: Option<Pty>,
        mut terminal: Terminal<I, O, E>,
    ) -> Result<Exit, CommandError>
    where
        I: AsyncRead + Unpin,
        O: AsyncWrite + Unpin,
        E: AsyncWrite + Unpin,
    {
        let not_run = |reason: String| CommandError::NotRun {
            command: command.to_string(),
            reason,
        };
        let (mut reader, writer) = self.start(command, pty.as_ref()).await?.split();
        let mut exit = Exit::Unknown;
        let mut buffer = vec![0u8; 32 << 10];
        let mut input_open = true;
        let mut resizes_open = true;
        loop {
            tokio::select! {
                message = reader.wait() => match message {
                    None => break,
                    Some(ChannelMsg::Data { data }) => {
                        terminal.stdout.write_all(&data).await.map_err(|e| not_run(e.to_string()))?;
                        terminal.stdout.flush().await.map_err(|e| not_run(e.to_string()))?;
                    }
                    Some(ChannelMsg::ExtendedData { data, .. }) => {
                        terminal.stderr.write_all(&data).await.map_err(|e| not_run(e.to_string()))?;
                        terminal.stderr.flush().await.map_err(|e| not_run(e.to_string()))?;
                    }
                    Some(ChannelMsg::ExitStatus { exit_status }) => exit = Exit::Code(exit_status as i32),
                    Some(ChannelMsg::ExitSignal { signal_name, .. }) => {
                        exit = Exit::Signal(format!("{signal_name:?}"));
                    }
                    Some(ChannelMsg::Failure) => {
                        return Err(not_run("the server refused to run the command".into()));
                    }
                    Some(_) => {}
                },
                read = terminal.input.read(&mut buffer), if input_open => match read {
                    Ok(0) | Err(_) => {
                        input_open = false;
                        // A shell on a terminal ends at its own `exit`; without one, end of input is
                        // the command's end of input.
                        if pty.is_none() {
                            let _ = writer.eof().await;
                        }
                    }
                    Ok(n) => {
                        if writer.data_bytes(buffer[..n].to_vec()).await.is_err() {
                            input_open = false;
                        }
                    }
                },
                size = terminal.resize.recv(), if resizes_open => match size {
                    Some((cols, rows)) => { let _ = writer.window_change(cols, rows, 0, 0).await; }
                    None => resizes_open = false,
                },
            }
        }
        Ok(exit)
    }
}
