//! One authenticated SSH connection, reused for every step of a command: exec and SFTP.
//!
//! The shape of russh's `client_exec_simple` example, except that the host-key decision is the policy's,
//! exit signals are their own outcome, and output is read until the channel closes (data can follow
//! the exit status).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::ChannelMsg;
use russh::client;
use russh::keys::{Algorithm, HashAlg};
use russh_sftp::client::SftpSession;
use tokio::sync::OnceCell;

use super::auth::{Attempt, AuthError, AuthPlan, Prompter};
use super::authenticator::Authenticator;
use super::handler::{ClientHandler, HandlerError};
use super::policy::{Acceptance, HostKeyCheck, HostKeyError};
use crate::error::{Diagnose, exit};
use crate::exec::{CommandError, CommandOutput, Exec, Exit};
use crate::types::HostKeyPolicy;
use crate::types::shell::{ShellCommand, quote};

/// One hop of a connection: where to connect, whose key to expect, and how to log in.
#[derive(Debug, Clone)]
pub struct Hop {
    /// Address to connect to (the resolved HostName).
    pub address: String,
    pub port: u16,
    /// The name the user gave (alias), for messages.
    pub display_name: String,
    pub host_key_alias: Option<String>,
    pub known_hosts: Vec<PathBuf>,
    /// Where `auto` records new keys.
    pub record_to: PathBuf,
    pub hash_known_hosts: bool,
    pub policy: HostKeyPolicy,
    pub auth: AuthPlan,
}

/// Connection-wide settings.
#[derive(Debug, Clone)]
pub struct Transport {
    pub connect_timeout: Duration,
    /// Keepalive interval; `None` disables keepalives.
    pub keepalive: Option<Duration>,
}

impl Default for Transport {
    fn default() -> Self {
        Transport {
            connect_timeout: Duration::from_secs(30),
            keepalive: Some(Duration::from_secs(30)),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error("cannot connect to {host} port {port}: {source}")]
    Connect {
        host: String,
        port: u16,
        source: std::io::Error,
    },
    #[error("connecting to {host} port {port} timed out after {} s", timeout.as_secs())]
    Timeout {
        host: String,
        port: u16,
        timeout: Duration,
    },
    #[error(transparent)]
    HostKey(#[from] HostKeyError),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("SSH protocol error with {host}: {source}")]
    Protocol { host: String, source: russh::Error },
    #[error("jump host {jump} could not open a connection to {host} port {port}: {source}")]
    Jump {
        jump: String,
        host: String,
        port: u16,
        source: russh::Error,
    },
    #[error("SFTP on {host} failed: {message}")]
    Sftp { host: String, message: String },
    #[error("{server} could not open a connection to {host} port {port}: {source}")]
    Forward {
        server: String,
        host: String,
        port: u16,
        source: russh::Error,
    },
}

impl Diagnose for SshError {
    fn exit_code(&self) -> u8 {
        match self {
            SshError::HostKey(e) => e.exit_code(),
            SshError::Auth(e) => e.exit_code(),
            _ => exit::CLUSTER,
        }
    }

    fn diagnosed_source(&self) -> Option<&dyn Diagnose> {
        match self {
            SshError::HostKey(e) => Some(e),
            SshError::Auth(e) => Some(e),
            _ => None,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            SshError::Connect { host, port, .. } | SshError::Timeout { host, port, .. } => {
                Some(format!(
                    "check the host name and port (`ssh -p {port} {}` should reach it), your network or VPN, and any jump host the cluster needs (proxy_jump)",
                    quote(host)
                ))
            }
            SshError::Jump { jump, .. } => Some(format!(
                "the jump host {jump} must allow TCP forwarding (AllowTcpForwarding) to the target"
            )),
            SshError::Forward { server, .. } => Some(format!(
                "is something listening on that port of the node yet? {server} must also allow TCP forwarding (AllowTcpForwarding)"
            )),
            _ => None,
        }
    }
}

/// What happened at each hop while connecting, for `doctor`.
#[derive(Debug, Clone)]
pub struct HopReport {
    pub name: String,
    pub host_key: Acceptance,
    pub auth: Vec<Attempt>,
}

/// An authenticated connection (through any jump hosts).
pub struct Session {
    pub(super) handle: client::Handle<ClientHandler>,
    /// Jump hosts stay connected while the session lives: the target's stream runs through them.
    _jumps: Vec<client::Handle<ClientHandler>>,
    pub(super) host: String,
    sftp: OnceCell<SftpSession>,
    pub reports: Vec<HopReport>,
}

impl Session {
    /// Connect through `jumps` (in order) to `target`, checking each hop's host key and authenticating at each.
    pub async fn connect(
        jumps: &[Hop],
        target: &Hop,
        transport: &Transport,
        prompter: Arc<dyn Prompter>,
    ) -> Result<Session, SshError> {
        // Expired certificates are reported before any server sees them.
        let now = super::known_hosts::unix_now();
        let mut hops: Vec<Hop> = jumps
            .iter()
            .chain(std::iter::once(target))
            .cloned()
            .collect();
        for hop in &mut hops {
            hop.auth.identities = super::auth::precheck_certificates(&hop.auth.identities, now)?;
        }
        let mut handles = Vec::new();
        let mut reports = Vec::new();
        let last = hops.len() - 1;
        for (index, hop) in hops.iter().enumerate() {
            let stream = match handles.last() {
                None => Box::new(tcp_connect(hop, transport).await?) as Box<dyn Stream>,
                Some(previous) => {
                    let previous: &client::Handle<ClientHandler> = previous;
                    let jump_name = reports
                        .last()
                        .map(|r: &HopReport| r.name.clone())
                        .unwrap_or_default();
                    let channel = previous
                        .channel_open_direct_tcpip(
                            hop.address.clone(),
                            u32::from(hop.port),
                            "127.0.0.1",
                            0,
                        )
                        .await
                        .map_err(|source| SshError::Jump {
                            jump: jump_name,
                            host: hop.address.clone(),
                            port: hop.port,
                            source,
                        })?;
                    Box::new(channel.into_stream()) as Box<dyn Stream>
                }
            };
            let role = (index < last).then_some(hop.display_name.as_str());
            let (handle, report) =
                handshake(hop, role, transport, stream, prompter.clone()).await?;
            handles.push(handle);
            reports.push(report);
        }
        let handle = handles.pop().expect("at least the target");
        Ok(Session {
            handle,
            _jumps: handles,
            host: target.display_name.clone(),
            sftp: OnceCell::new(),
            reports,
        })
    }

    /// The SFTP session on this connection, opened on first use.
    pub async fn sftp(&self) -> Result<&SftpSession, SshError> {
        self.sftp
            .get_or_try_init(|| async {
                let channel = self.handle.channel_open_session().await.map_err(|source| {
                    SshError::Protocol {
                        host: self.host.clone(),
                        source,
                    }
                })?;
                channel
                    .request_subsystem(true, "sftp")
                    .await
                    .map_err(|source| SshError::Protocol {
                        host: self.host.clone(),
                        source,
                    })?;
                let sftp =
                    SftpSession::new(channel.into_stream())
                        .await
                        .map_err(|e| SshError::Sftp {
                            host: self.host.clone(),
                            message: e.to_string(),
                        })?;
                // Metadata operations on parallel filesystems can take longer than the 10 s default.
                sftp.set_timeout(60);
                Ok(sftp)
            })
            .await
    }

    /// Close the connection politely.
    pub async fn close(self) {
        if let Some(sftp) = self.sftp.get() {
            let _ = sftp.close().await;
        }
        let _ = self
            .handle
            .disconnect(russh::Disconnect::ByApplication, "", "en")
            .await;
    }
}

impl Session {
    /// Whether the connection is gone (the server closed it, or the network dropped it).
    pub fn is_closed(&self) -> bool {
        self.handle.is_closed()
    }
}

impl Exec for Session {
    async fn run(
        &self,
        command: &ShellCommand,
        input: &[u8],
    ) -> Result<CommandOutput, CommandError> {
        self.run_reader(command, input).await
    }

    async fn run_stream<R>(
        &self,
        command: &ShellCommand,
        input: R,
    ) -> Result<CommandOutput, CommandError>
    where
        R: tokio::io::AsyncRead + Send + Unpin + 'static,
    {
        self.run_reader(command, input).await
    }
}

impl Session {
    /// A session channel running `command`, on a pseudo-terminal when `pty` is given.
    pub(super) async fn start(
        &self,
        command: &ShellCommand,
        pty: Option<&super::channels::Pty>,
    ) -> Result<russh::Channel<client::Msg>, CommandError> {
        let not_run = |e: russh::Error| CommandError::NotRun {
            command: command.to_string(),
            reason: e.to_string(),
        };
        let channel = self.handle.channel_open_session().await.map_err(not_run)?;
        if let Some(pty) = pty {
            channel
                .request_pty(true, &pty.term, pty.cols, pty.rows, 0, 0, &[])
                .await
                .map_err(not_run)?;
        }
        channel
            .exec(true, command.as_str())
            .await
            .map_err(not_run)?;
        Ok(channel)
    }

    /// One channel: the command, its input and end of file go out together, so a command costs one
    /// round trip to open the channel and one for the reply; input is sent as it is read.
    async fn run_reader<R: tokio::io::AsyncRead + Unpin>(
        &self,
        command: &ShellCommand,
        mut input: R,
    ) -> Result<CommandOutput, CommandError> {
        tracing::debug!(host = %self.host, command = %command.as_str(), "running over SSH");
        let not_run = |reason: String| CommandError::NotRun {
            command: command.to_string(),
            reason,
        };
        let (mut reader, writer) = self.start(command, None).await?.split();
        // In large owned chunks: each becomes full-size packets (`data` would copy 8 KiB at a time,
        // one small packet each).
        let send = async {
            use tokio::io::AsyncReadExt;
            let mut chunk = vec![0u8; 256 << 10];
            loop {
                let n = input.read(&mut chunk).await.map_err(russh::Error::IO)?;
                if n == 0 {
                    break;
                }
                writer.data_bytes(chunk[..n].to_vec()).await?;
            }
            writer.eof().await
        };
        let receive = async {
            let (mut stdout, mut stderr, mut exit) = (Vec::new(), Vec::new(), Exit::Unknown);
            // Keep reading after the exit status: output may still follow it. The loop ends when the
            // channel closes.
            while let Some(message) = reader.wait().await {
                match message {
                    ChannelMsg::Data { data } => stdout.extend_from_slice(&data),
                    ChannelMsg::ExtendedData { data, ext: 1 } => stderr.extend_from_slice(&data),
                    ChannelMsg::ExitStatus { exit_status } => exit = Exit::Code(exit_status as i32),
                    ChannelMsg::ExitSignal { signal_name, .. } => {
                        exit = Exit::Signal(format!("{signal_name:?}"))
                    }
                    ChannelMsg::Failure => {
                        return Err(not_run("the server refused to run the command".into()));
                    }
                    _ => {}
                }
            }
            Ok(CommandOutput {
                exit,
                stdout,
                stderr,
            })
        };
        let (sent, received) = tokio::join!(send, receive);
        let output = received?;
        // A command that exits without reading all its input closes the channel under our feet; that
        // is its business, and its exit status says how it went.
        if let Err(e) = sent
            && output.exit == Exit::Unknown
        {
            return Err(not_run(e.to_string()));
        }
        Ok(output)
    }
}

trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static> Stream for T {}

async fn tcp_connect(hop: &Hop, transport: &Transport) -> Result<tokio::net::TcpStream, SshError> {
    let connect = tokio::net::TcpStream::connect((hop.address.as_str(), hop.port));
    let stream = tokio::time::timeout(transport.connect_timeout, connect)
        .await
        .map_err(|_| SshError::Timeout {
            host: hop.address.clone(),
            port: hop.port,
            timeout: transport.connect_timeout,
        })?
        .map_err(|source| SshError::Connect {
            host: hop.address.clone(),
            port: hop.port,
            source,
        })?;
    stream.set_nodelay(true).ok();
    Ok(stream)
}

/// Key exchange, host-key check and authentication on one stream.
async fn handshake(
    hop: &Hop,
    jump: Option<&str>,
    transport: &Transport,
    stream: Box<dyn Stream>,
    prompter: Arc<dyn Prompter>,
) -> Result<(client::Handle<ClientHandler>, HopReport), SshError> {
    let mut check = HostKeyCheck::new(
        &hop.address,
        hop.port,
        hop.host_key_alias.as_deref(),
        &hop.known_hosts,
        hop.policy,
        hop.record_to.clone(),
    );
    check.hash_new = hop.hash_known_hosts;
    check.host.jump = jump.map(str::to_string);
    let config = client_config(&check, transport);
    let acceptance = Arc::new(Mutex::new(None));
    let handler = ClientHandler {
        check: Arc::new(check),
        acceptance: acceptance.clone(),
        prompter: prompter.clone(),
    };
    let connect = client::connect_stream(config, stream, handler);
    let mut handle = match tokio::time::timeout(transport.connect_timeout, connect).await {
        Err(_) => {
            return Err(SshError::Timeout {
                host: hop.address.clone(),
                port: hop.port,
                timeout: transport.connect_timeout,
            });
        }
        Ok(Err(HandlerError::HostKey(e))) => return Err(e.into()),
        Ok(Err(HandlerError::Ssh(source))) => {
            return Err(SshError::Protocol {
                host: hop.display_name.clone(),
                source,
            });
        }
        Ok(Ok(handle)) => handle,
    };
    let host_key = acceptance
        .lock()
        .expect("not poisoned")
        .clone()
        .expect("the handshake checked the host key");
    let attempts = Authenticator::new(&mut handle, &hop.display_name, &hop.auth, prompter)
        .run()
        .await?;
    Ok((
        handle,
        HopReport {
            name: hop.display_name.clone(),
            host_key,
            auth: attempts,
        },
    ))
}

/// Whether this processor does AES and GCM's multiplication in hardware: AES-256-GCM is then faster
/// than ChaCha20-Poly1305 in software, and is offered first (the bytes of inputs and outputs all go
/// through the cipher). Without it, russh's order (ChaCha20-Poly1305 first) stands.
fn hardware_aes() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("aes")
            && std::arch::is_x86_feature_detected!("pclmulqdq")
    }
    #[cfg(target_arch = "aarch64")]
    {
        std::arch::is_aarch64_feature_detected!("aes")
            && std::arch::is_aarch64_feature_detected!("pmull")
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        false
    }
}

/// Client settings for one hop: keepalives, no Nagle, and host-key algorithms ordered so the server
/// presents a key type we have recorded (and a certificate only where a CA is trusted).
fn client_config(check: &HostKeyCheck, transport: &Transport) -> Arc<client::Config> {
    let mut preferred = russh::Preferred::default();
    // A recorded RSA key reads as `ssh-rsa`, the SHA-1 signature name OpenSSH no longer offers;
    // the same key is asked for by its SHA-2 names, or the server would pick another key type.
    let recorded: Vec<Algorithm> = check
        .known
        .recorded_algorithms(&check.lookup)
        .into_iter()
        .flat_map(|a| match a {
            Algorithm::Rsa { .. } => vec![
                Algorithm::Rsa {
                    hash: Some(HashAlg::Sha512),
                },
                Algorithm::Rsa {
                    hash: Some(HashAlg::Sha256),
                },
                Algorithm::Rsa { hash: None },
            ],
            other => vec![other],
        })
        .collect();
    if !recorded.is_empty() {
        let mut keys: Vec<_> = recorded.clone();
        keys.extend(
            preferred
                .key
                .iter()
                .filter(|a| !recorded.contains(a))
                .cloned(),
        );
        preferred.key = keys.into();
    }
    if check.known.certificate_matters_for(&check.lookup) {
        preferred.host_key_certificates = preferred.key.clone();
    }
    if hardware_aes() {
        let first = russh::cipher::AES_256_GCM;
        let rest = preferred.cipher.iter().filter(|c| **c != first).cloned();
        preferred.cipher = std::iter::once(first)
            .chain(rest)
            .collect::<Vec<_>>()
            .into();
    }
    Arc::new(client::Config {
        preferred,
        nodelay: true,
        keepalive_interval: transport.keepalive,
        keepalive_max: 3,
        inactivity_timeout: None,
        ..Default::default()
    })
}
