//! How failures reach the user: `error:` with the cause chain, then `hint:` lines with the next step,
//! and a distinct exit code per kind of failure so scripts can tell them apart.
//!
//! Hints live next to their errors (`hint()` methods); this module only walks the chain and renders.

use std::fmt::Write as _;
use std::process::ExitCode;

use crate::cluster::ClusterError;
use crate::config::ConfigError;
use crate::exec::CommandError;
use crate::plugin::PluginError;
use crate::slurm::SlurmError;
use crate::slurm::state::JobState;
use crate::slurm::validate::InvalidValue;
use crate::ssh::SshError;
use crate::ssh::auth::AuthError;
use crate::ssh::policy::HostKeyError;

/// Exit codes, documented in the README.
pub mod exit {
    pub const SUCCESS: u8 = 0;
    /// A bug or an environment problem slurmkit did not anticipate.
    pub const INTERNAL: u8 = 1;
    /// Command-line usage error (clap's own code).
    pub const USAGE: u8 = 2;
    /// The Slurmfile, a flag value or a job spec is invalid.
    pub const CONFIG: u8 = 3;
    /// The host key was refused (unknown under `reject`, changed, revoked, bad certificate).
    pub const HOST_KEY: u8 = 4;
    /// Authentication failed.
    pub const AUTH: u8 = 5;
    /// The cluster could not be reached, or a Slurm command failed.
    pub const CLUSTER: u8 = 6;
    /// A plugin could not be loaded or failed.
    pub const PLUGIN: u8 = 7;
    /// `wait --timeout` ran out while the job was still going.
    pub const WAIT_TIMEOUT: u8 = 8;
    /// The job ended FAILED (or NODE_FAIL, BOOT_FAIL, DEADLINE, PREEMPTED, UNKNOWN).
    pub const JOB_FAILED: u8 = 10;
    pub const JOB_CANCELLED: u8 = 11;
    pub const JOB_TIMEOUT: u8 = 12;
    pub const JOB_OUT_OF_MEMORY: u8 = 13;
    /// Slurm does not know the job (a wrong id, or one forgotten without accounting).
    pub const JOB_UNKNOWN: u8 = 14;
}

/// The exit code for a job that reached `state`.
pub fn exit_code_for_state(state: JobState) -> u8 {
    match state {
        JobState::Completed => exit::SUCCESS,
        JobState::Cancelled => exit::JOB_CANCELLED,
        JobState::Timeout => exit::JOB_TIMEOUT,
        JobState::OutOfMemory => exit::JOB_OUT_OF_MEMORY,
        _ => exit::JOB_FAILED,
    }
}

/// The exit code for an error, from the most specific cause in its chain.
pub fn exit_code_for_error(error: &anyhow::Error) -> u8 {
    for cause in error.chain() {
        if cause.is::<HostKeyError>() {
            return exit::HOST_KEY;
        }
        if cause.is::<AuthError>() {
            return exit::AUTH;
        }
        if cause.is::<ConfigError>()
            || cause.is::<InvalidValue>()
            || cause.is::<crate::cli::plan::PlanError>()
            || cause.is::<crate::ssh::config::SshConfigError>()
        {
            return exit::CONFIG;
        }
        if cause.is::<PluginError>() {
            return exit::PLUGIN;
        }
        if let Some(SshError::HostKey(_)) = cause.downcast_ref::<SshError>() {
            return exit::HOST_KEY;
        }
        if let Some(SshError::Auth(_)) = cause.downcast_ref::<SshError>() {
            return exit::AUTH;
        }
        if cause.is::<SshError>() || cause.is::<SlurmError>() || cause.is::<CommandError>() {
            return exit::CLUSTER;
        }
        if let Some(e) = cause.downcast_ref::<ClusterError>() {
            return match e {
                ClusterError::Ssh(SshError::HostKey(_)) => exit::HOST_KEY,
                ClusterError::Ssh(SshError::Auth(_)) => exit::AUTH,
                ClusterError::Plugin(_) => exit::PLUGIN,
                ClusterError::WaitTimedOut { .. } => exit::WAIT_TIMEOUT,
                ClusterError::UnknownJob { .. } => exit::JOB_UNKNOWN,
                ClusterError::Journal(_) => exit::INTERNAL,
                _ => exit::CLUSTER,
            };
        }
    }
    exit::INTERNAL
}

/// Hints from every error in the chain that knows one, without duplicates.
pub fn hints(error: &anyhow::Error) -> Vec<String> {
    let mut hints: Vec<String> = Vec::new();
    for cause in error.chain() {
        let hint = if let Some(e) = cause.downcast_ref::<ClusterError>() {
            e.hint()
        } else if let Some(e) = cause.downcast_ref::<SshError>() {
            e.hint()
        } else if let Some(e) = cause.downcast_ref::<HostKeyError>() {
            e.hint()
        } else if let Some(e) = cause.downcast_ref::<AuthError>() {
            e.hint()
        } else if let Some(e) = cause.downcast_ref::<PluginError>() {
            e.hint()
        } else {
            None
        };
        if let Some(hint) = hint
            && !hints.contains(&hint)
        {
            hints.push(hint);
        }
    }
    hints
}

/// `error: …`, `  caused by: …`, `hint: …` — the text printed for a failed command.
pub fn render(error: &anyhow::Error) -> String {
    let mut out = String::new();
    let mut chain = error.chain();
    if let Some(first) = chain.next() {
        let _ = writeln!(
            out,
            "error: {}",
            indent_continuation(&first.to_string(), "       ")
        );
    }
    let mut previous = error.to_string();
    for cause in chain {
        let text = cause.to_string();
        // thiserror's `transparent` and `#[from]` wrappers often repeat their source's text.
        if previous.contains(&text) {
            continue;
        }
        let _ = writeln!(
            out,
            "  caused by: {}",
            indent_continuation(&text, "             ")
        );
        previous = text;
    }
    for hint in hints(error) {
        let _ = writeln!(out, "hint: {}", indent_continuation(&hint, "      "));
    }
    out
}

fn indent_continuation(text: &str, indent: &str) -> String {
    text.lines()
        .collect::<Vec<_>>()
        .join(&format!("\n{indent}"))
}

/// Print a failure to stderr and return its exit code.
pub fn report(error: &anyhow::Error) -> ExitCode {
    eprint!("{}", render(error));
    let code = exit_code_for_error(error);
    if code == exit::INTERNAL {
        tracing::debug!("{error:?}");
    }
    ExitCode::from(code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ssh::known_hosts::Origin;
    use std::path::PathBuf;

    #[test]
    fn changed_host_key_renders_with_its_fix() {
        let error = HostKeyError::Changed {
            host: crate::ssh::policy::KeyedHost {
                name: "[127.0.0.1]:2222".into(),
                address: "127.0.0.1".into(),
                port: 2222,
                jump: None,
                alias: false,
            },
            key_type: "ssh-ed25519".into(),
            fingerprint: "SHA256:new".into(),
            recorded: Origin {
                path: PathBuf::from("/home/u/.ssh/known_hosts"),
                line: 3,
            },
            recorded_fingerprint: "SHA256:old".into(),
        };
        let error = anyhow::Error::new(SshError::HostKey(error))
            .context("cannot connect to cluster ssh://u@127.0.0.1:2222");
        let text = render(&error);
        assert!(text.starts_with("error: cannot connect to cluster ssh://u@127.0.0.1:2222\n  caused by: REMOTE HOST IDENTIFICATION HAS CHANGED"), "{text}");
        assert!(
            text.contains("/home/u/.ssh/known_hosts:3 records SHA256:old"),
            "{text}"
        );
        assert!(
            text.contains("hint: if the cluster's admins confirm the new key"),
            "{text}"
        );
        assert!(
            text.contains("ssh-keygen -R '[127.0.0.1]:2222' -f /home/u/.ssh/known_hosts"),
            "{text}"
        );
        assert_eq!(exit_code_for_error(&error), exit::HOST_KEY);
    }

    #[test]
    fn job_states_map_to_exit_codes() {
        assert_eq!(exit_code_for_state(JobState::Completed), 0);
        assert_eq!(exit_code_for_state(JobState::Failed), exit::JOB_FAILED);
        assert_eq!(
            exit_code_for_state(JobState::Cancelled),
            exit::JOB_CANCELLED
        );
        assert_eq!(exit_code_for_state(JobState::NodeFail), exit::JOB_FAILED);
    }
}
