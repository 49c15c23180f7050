//! `connect` and `tunnel`: going to a running job. The terminal handling is here (raw mode, window
//! size); waiting for the job, `srun` and forwarding are the lifecycle's.

use std::io::IsTerminal;
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;

use super::args::Ports;
use super::diagnostics::Failure;
use super::plugins::engine;
use super::session::in_session;
use crate::exec::Exit;
use crate::lifecycle::allocation::{self, TunnelEnd};
use crate::lifecycle::{Backend, LifecycleError, Plan};
use crate::slurm::allocation::node_address;
use crate::ssh::channels::{Pty, Terminal};
use crate::types::names::JobId;
use crate::types::status::JobState;

fn say_waiting(id: &JobId) -> impl FnMut(JobState) {
    let id = id.clone();
    move |state| {
        eprintln!("slurmkit: job {id} is {state}; waiting for it to start (Ctrl-C to stop)")
    }
}

pub async fn connect(
    plan: &Plan,
    id: &JobId,
    node: Option<&str>,
    command: &[String],
) -> Result<ExitCode, Failure> {
    let engine = engine(plan)?;
    // A shell gets a terminal when we have one, as `ssh` does; a command never does.
    let pty = (command.is_empty() && std::io::stdin().is_terminal()).then(local_pty);
    in_session(plan, plan.target().await?, &engine, async |session| {
        let job = allocation::until_running(session, id, say_waiting(id)).await?;
        let node = allocation::pick_node(&job, id, node)?;
        let srun = allocation::srun_command(&job, &node, command, pty.is_some());
        let (resize_tx, resize) = tokio::sync::mpsc::channel(4);
        let raw = pty.as_ref().map(|_| RawMode::enter());
        let watcher = pty.as_ref().map(|_| tokio::spawn(watch_window(resize_tx)));
        let terminal = Terminal {
            input: tokio::io::stdin(),
            stdout: tokio::io::stdout(),
            stderr: tokio::io::stderr(),
            resize,
        };
        let exit = session
            .conn
            .interactive(&srun, pty.clone(), terminal)
            .await
            .map_err(|e| LifecycleError::Slurm(e.into()));
        drop(raw);
        if let Some(watcher) = watcher {
            watcher.abort();
        }
        Ok(ExitCode::from(exit_code(&exit?)))
    })
    .await
}

pub async fn tunnel(
    plan: &Plan,
    id: &JobId,
    ports: Ports,
    node: Option<&str>,
    bind: IpAddr,
) -> Result<ExitCode, Failure> {
    let engine = engine(plan)?;
    let target = plan.target().await?;
    let through = match &target.backend {
        Backend::Ssh { jumps, target, .. } => std::iter::once(target.display_name.as_str())
            .chain(jumps.iter().rev().map(|j| j.display_name.as_str()))
            .map(str::to_string)
            .collect::<Vec<_>>()
            .join(" <- "),
        Backend::Local => "this machine".to_string(),
    };
    // Bound before connecting: a port in use is said at once, not after a login.
    let addr = SocketAddr::new(bind, ports.local);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| LifecycleError::Listen { addr, source })?;
    let local = listener.local_addr().map_err(LifecycleError::Output)?;
    in_session(plan, target, &engine, async |session| {
        let job = allocation::until_running(session, id, say_waiting(id)).await?;
        let node = allocation::pick_node(&job, id, node)?;
        let address = node_address(&session.conn, &node)
            .await
            .map_err(LifecycleError::from)?;
        let host = match local.ip() {
            IpAddr::V6(ip) => format!("[{ip}]"),
            IpAddr::V4(ip) => ip.to_string(),
        };
        eprintln!(
            "slurmkit: forwarding {local} to port {} on {node} ({address}) of job {id}, via {through}; Ctrl-C to stop",
            ports.remote
        );
        outln!("http://{host}:{}/", local.port());
        // Ctrl-C ends it as it ends every command (exit code 130).
        let end = allocation::tunnel(
            session,
            id,
            listener,
            &address,
            ports.remote,
            std::future::pending(),
        )
        .await?;
        match end {
            TunnelEnd::JobEnded(state) => {
                eprintln!("slurmkit: job {id} ended ({state}); the tunnel is closed")
            }
            TunnelEnd::Interrupted => eprintln!("slurmkit: tunnel closed"),
        }
        Ok(ExitCode::SUCCESS)
    })
    .await
}

/// The remote command's exit code as ours; a signal as a shell reports it (128 + its number).
fn exit_code(exit: &Exit) -> u8 {
    match exit {
        Exit::Code(code) => u8::try_from(*code).unwrap_or(255),
        Exit::Signal(name) => {
            let number = name.parse::<u8>().ok().or(match name.as_str() {
                "HUP" => Some(1),
                "INT" => Some(2),
                "QUIT" => Some(3),
                "ILL" => Some(4),
                "ABRT" => Some(6),
                "FPE" => Some(8),
                "KILL" => Some(9),
                "USR1" => Some(10),
                "SEGV" => Some(11),
                "USR2" => Some(12),
                "PIPE" => Some(13),
                "ALRM" => Some(14),
                "TERM" => Some(15),
                _ => None,
            });
            number.map_or(255, |n| 128 + n)
        }
        // The connection ended without saying how the command did, as `ssh` reports it.
        Exit::Unknown => 255,
    }
}

fn window_size() -> (u32, u32) {
    let mut size: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ writes a winsize into the struct we own; on failure it is left zeroed.
    let ok = unsafe { libc::ioctl(libc::STDIN_FILENO, libc::TIOCGWINSZ, &mut size) } == 0;
    if ok && size.ws_col > 0 && size.ws_row > 0 {
        (u32::from(size.ws_col), u32::from(size.ws_row))
    } else {
        (80, 24)
    }
}

fn local_pty() -> Pty {
    let (cols, rows) = window_size();
    Pty {
        term: std::env::var("TERM").unwrap_or_else(|_| "xterm".into()),
        cols,
        rows,
    }
}

async fn watch_window(sizes: tokio::sync::mpsc::Sender<(u32, u32)>) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut changes) = signal(SignalKind::window_change()) else {
        return;
    };
    while changes.recv().await.is_some() {
        if sizes.send(window_size()).await.is_err() {
            return;
        }
    }
}

/// The local terminal in raw mode (keys go to the remote side as typed, Ctrl-C included) until dropped.
struct RawMode {
    saved: Option<libc::termios>,
}

impl RawMode {
    fn enter() -> RawMode {
        let mut termios: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: tcgetattr fills the struct we own; stdin is a terminal (checked by the caller).
        if unsafe { libc::tcgetattr(libc::STDIN_FILENO, &mut termios) } != 0 {
            return RawMode { saved: None };
        }
        let saved = termios;
        // SAFETY: cfmakeraw edits the struct in place; tcsetattr applies it to stdin.
        unsafe {
            libc::cfmakeraw(&mut termios);
            libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &termios);
        }
        RawMode { saved: Some(saved) }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(saved) = &self.saved {
            // SAFETY: restores the settings tcgetattr returned for the same descriptor.
            unsafe {
                libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, saved);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_end_as_a_shell_reports_them() {
        assert_eq!(exit_code(&Exit::Code(3)), 3);
        assert_eq!(exit_code(&Exit::Signal("TERM".into())), 143);
        assert_eq!(exit_code(&Exit::Signal("9".into())), 137);
        assert_eq!(exit_code(&Exit::Unknown), 255);
    }
}
