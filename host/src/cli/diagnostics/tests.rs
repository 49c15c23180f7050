//! The rendered text of every kind of error, as the user reads it, with its exit code: one snapshot
//! per error type, every variant in it. A change in wording shows up here as a diff to review.

use std::path::PathBuf;

use super::*;
use crate::config::ConfigError;
use crate::exec::{CommandError, CommandOutput, Exit};
use crate::journal::JournalError;
use crate::lifecycle::{LifecycleError, PlanError};
use crate::plugin::PluginError;
use crate::plugin::caps::GrantError;
use crate::slurm::SlurmError;
use crate::ssh::SshError;
use crate::ssh::auth::{Attempt, AuthError, Method, Outcome};
use crate::ssh::config::SshConfigError;
use crate::ssh::known_hosts::Origin;
use crate::ssh::policy::{HostKeyError, KeyedHost};
use crate::transfer::TransferError;
use crate::types::names::{InvalidValue, JobId, JobName};
use crate::types::status::JobState;

fn check(name: &str, text: String) {
    crate::cli::snapshot::check("src/cli/diagnostics/snapshots", name, &text);
}

/// Every error as `[exit code] rendered text`, separated by blank lines.
fn snapshot(errors: Vec<Box<dyn Diagnose>>) -> String {
    errors
        .iter()
        .map(|e| format!("[{}] {}", e.exit_code(), render(e.as_ref())))
        .collect::<Vec<_>>()
        .join("\n")
}

fn host() -> KeyedHost {
    KeyedHost {
        name: "[127.0.0.1]:2222".into(),
        address: "127.0.0.1".into(),
        port: 2222,
        jump: None,
        alias: false,
    }
}

fn id(text: &str) -> JobId {
    JobId::parse(text).unwrap()
}

fn failed_command() -> CommandError {
    CommandError::Failed {
        command: "sbatch --parsable job.sbatch".into(),
        output: CommandOutput {
            exit: Exit::Code(1),
            stdout: Vec::new(),
            stderr: b"sbatch: error: invalid partition specified: nosuch\n".to_vec(),
        },
    }
}

fn not_run() -> CommandError {
    CommandError::NotRun {
        command: "squeue".into(),
        reason: "Channel send error".into(),
    }
}

fn io(kind: std::io::ErrorKind, text: &str) -> std::io::Error {
    std::io::Error::new(kind, text)
}

#[test]
fn host_key_errors() {
    let origin = Origin {
        path: PathBuf::from("/home/u/.ssh/known_hosts"),
        line: 3,
    };
    let errors: Vec<Box<dyn Diagnose>> = vec![
        Box::new(HostKeyError::Unknown {
            host: host(),
            key_type: "ssh-ed25519".into(),
            fingerprint: "SHA256:new".into(),
            record_to: PathBuf::from("/home/u/.ssh/known_hosts"),
            hashed: false,
        }),
        Box::new(LifecycleError::Connect {
            cluster: "ssh://u@127.0.0.1:2222".into(),
            source: SshError::HostKey(HostKeyError::Changed {
                host: host(),
                key_type: "ssh-ed25519".into(),
                fingerprint: "SHA256:new".into(),
                recorded: origin.clone(),
                recorded_fingerprint: "SHA256:old".into(),
            }),
        }),
        Box::new(HostKeyError::Revoked {
            host: host(),
            fingerprint: "SHA256:bad".into(),
            origin,
        }),
        Box::new(HostKeyError::CertificateRejected {
            host: host(),
            reason: "it expired".into(),
        }),
        Box::new(HostKeyError::RecordFailed {
            host: host(),
            path: PathBuf::from("/ro/known_hosts"),
            source: io(std::io::ErrorKind::PermissionDenied, "permission denied"),
        }),
    ];
    check("host_key", snapshot(errors));
}

#[test]
fn ssh_and_auth_errors() {
    let attempts = vec![
        Attempt::new(Method::Key, "key /home/a/.ssh/id_ed25519", Outcome::Refused),
        Attempt::new(
            Method::Password,
            "password",
            Outcome::NotTried("no terminal to ask on".into()),
        ),
    ];
    // A key accepted as the first of two factors, then a one-time code refused three times.
    let mut code_refused = vec![Attempt::new(
        Method::Key,
        "key /home/a/.ssh/id_ed25519",
        Outcome::Partial,
    )];
    for _ in 0..3 {
        code_refused.push(
            Attempt::new(
                Method::KeyboardInteractive,
                "keyboard-interactive",
                Outcome::Refused,
            )
            .answered(vec!["Verification code: ".into()]),
        );
    }
    let mut grace_ran_out = code_refused[..1].to_vec();
    grace_ran_out.push(
        Attempt::new(
            Method::KeyboardInteractive,
            "keyboard-interactive",
            Outcome::Closed,
        )
        .answered(vec!["Verification code: ".into()]),
    );
    let errors: Vec<Box<dyn Diagnose>> = vec![
        Box::new(SshError::Connect {
            host: "login".into(),
            port: 22,
            source: io(std::io::ErrorKind::ConnectionRefused, "connection refused"),
        }),
        Box::new(SshError::Timeout {
            host: "login".into(),
            port: 22,
            timeout: std::time::Duration::from_secs(30),
        }),
        Box::new(SshError::Jump {
            jump: "bastion".into(),
            host: "login".into(),
            port: 22,
            source: russh::Error::ChannelOpenFailure(
                russh::ChannelOpenFailure::AdministrativelyProhibited,
            ),
        }),
        Box::new(SshError::Sftp {
            host: "login".into(),
            message: "subsystem refused".into(),
        }),
        Box::new(AuthError::BadIdentity {
            path: PathBuf::from("/k"),
            reason: "unsupported key type".into(),
        }),
        Box::new(SshError::Auth(AuthError::Failed {
            user: "alice".into(),
            host: "login".into(),
            attempts: attempts.clone(),
            remaining: vec!["publickey".into(), "password".into()],
        })),
        Box::new(AuthError::Disconnected {
            host: "login".into(),
            attempts,
            at_prompt: None,
        }),
        Box::new(AuthError::Failed {
            user: "alice".into(),
            host: "login".into(),
            attempts: code_refused,
            remaining: vec!["keyboard-interactive".into()],
        }),
        Box::new(AuthError::Disconnected {
            host: "login".into(),
            attempts: grace_ran_out,
            at_prompt: Some(std::time::Duration::from_secs(125)),
        }),
        Box::new(AuthError::Interrupted {
            user: "alice".into(),
            host: "login".into(),
        }),
        Box::new(SshConfigError::BadJump {
            entry: "host:notaport".into(),
        }),
        Box::new(SshConfigError::JumpLoop {
            host: "bastion".into(),
        }),
    ];
    check("ssh", snapshot(errors));
}

#[test]
fn configuration_errors() {
    let invalid = || InvalidValue {
        what: "job name",
        value: "x; rm -rf ~".into(),
        rule: JobName::RULE,
    };
    let errors: Vec<Box<dyn Diagnose>> = vec![
        Box::new(ConfigError::NotFound {
            start: PathBuf::from("/p"),
        }),
        Box::new(ConfigError::Read {
            path: PathBuf::from("/p/Slurmfile.toml"),
            source: io(std::io::ErrorKind::NotFound, "no such file"),
        }),
        Box::new(ConfigError::Parse {
            path: PathBuf::from("/p/Slurmfile.toml"),
            line: 3,
            column: 1,
            message: "unknown field `hostnme`".into(),
            snippet: "  |\n3 | hostnme = \"y\"\n  | ^^^^^^^".into(),
        }),
        Box::new(ConfigError::UnknownEnvironment {
            path: PathBuf::from("/p/Slurmfile.toml"),
            name: "c".into(),
            available: "a, b".into(),
        }),
        Box::new(ConfigError::Invalid {
            path: PathBuf::from("/p/Slurmfile.toml"),
            message: "invalid type".into(),
        }),
        Box::new(invalid()),
        Box::new(PlanError::Refused("the job has nothing to run".into())),
        Box::new(PlanError::EntryName {
            entry: "x y".into(),
            source: invalid(),
        }),
        Box::new(PlanError::ScriptFile {
            path: PathBuf::from("/p/run.sh"),
            source: io(std::io::ErrorKind::NotFound, "no such file"),
        }),
        Box::new(PlanError::Flag {
            flag: "--partition",
            source: InvalidValue {
                what: "partition",
                value: "debug;id".into(),
                rule: crate::types::names::Partition::RULE,
            },
        }),
        Box::new(PlanError::CurrentDir(io(
            std::io::ErrorKind::NotFound,
            "no such file",
        ))),
        Box::new(PlanError::Task("panicked".into())),
        Box::new(Refused("no such thing".into())),
    ];
    check("config", snapshot(errors));
}

#[test]
fn plugin_errors() {
    let errors: Vec<Box<dyn Diagnose>> = vec![
        Box::new(PluginError::Read {
            path: PathBuf::from("/p/x.wasm"),
            source: io(std::io::ErrorKind::NotFound, "no such file"),
        }),
        Box::new(PluginError::HashMismatch {
            path: PathBuf::from("/p/x.wasm"),
            expected: "aa".into(),
            actual: "bb".into(),
        }),
        Box::new(PluginError::NotAComponent {
            name: "x".into(),
            reason: "it is not WebAssembly".into(),
        }),
        Box::new(PluginError::Incompatible {
            name: "x".into(),
            targets: "0.0.9".into(),
            accepted: "slurmkit:plugin@0.1.x and 0.2.x only".into(),
        }),
        Box::new(PluginError::WrongWorld {
            name: "x".into(),
            expected: "renderer",
            found: "on-event".into(),
        }),
        Box::new(PluginError::MissingImport {
            name: "x".into(),
            import: "wasi:http/types@0.2.0".into(),
        }),
        Box::new(PluginError::ImportMismatch {
            name: "x".into(),
            import: "slurmkit:plugin/host@0.1.0".into(),
            detail: "type mismatch with parameters".into(),
        }),
        Box::new(PluginError::Grant(GrantError {
            plugin: "x".into(),
            grant: "../up".into(),
            reason: "leaves the Slurmfile's directory".into(),
        })),
        Box::new(PluginError::Load {
            name: "x".into(),
            message: "bad config".into(),
        }),
        Box::new(PluginError::Failed {
            plugin: "x".into(),
            during: "render".into(),
            cause: "it trapped (panicked or aborted)".into(),
        }),
        Box::new(PluginError::Refused {
            plugin: "x".into(),
            message: "field constraint: not allowed".into(),
        }),
        Box::new(PluginError::Invalid {
            plugin: "x".into(),
            message: "the script contains a NUL byte".into(),
        }),
        Box::new(PluginError::TooOld {
            plugin: "site".into(),
            version: "0.1.x".into(),
            lacks: "containers",
        }),
    ];
    check("plugin", snapshot(errors));
}

#[test]
fn lifecycle_errors() {
    let journal = || {
        JournalError::Sql(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(13),
            Some("database or disk is full".into()),
        ))
    };
    let errors: Vec<Box<dyn Diagnose>> = vec![
        Box::new(LifecycleError::Reconnect {
            cluster: "ssh://u@h:22".into(),
            seconds: 600,
            attempts: 25,
            source: Box::new(LifecycleError::Ssh(SshError::Timeout {
                host: "h".into(),
                port: 22,
                timeout: std::time::Duration::from_secs(30),
            })),
        }),
        Box::new(LifecycleError::Transfer(TransferError::OutsideJobDir {
            name: "../x".into(),
            reason: "'.' and '..' components are not allowed",
        })),
        Box::new(LifecycleError::Transfer(TransferError::NotFound {
            path: "/d/x".into(),
        })),
        Box::new(LifecycleError::Slurm(SlurmError::Command(failed_command()))),
        Box::new(LifecycleError::Slurm(SlurmError::Command(not_run()))),
        Box::new(LifecycleError::Submit {
            job: "hello".into(),
            source: Box::new(LifecycleError::Refused {
                status: "1".into(),
                message: "sbatch: error: invalid partition specified: nosuch".into(),
            }),
        }),
        Box::new(LifecycleError::Submit {
            job: "hello".into(),
            source: Box::new(LifecycleError::NotStaged {
                job_dir: "/h/slurm_jobs/hello-1".into(),
                message: "mkdir: cannot create directory: Permission denied".into(),
            }),
        }),
        Box::new(LifecycleError::Submit {
            job: "hello".into(),
            source: Box::new(LifecycleError::SubmissionUncertain {
                job_dir: "/h/slurm_jobs/hello-1".into(),
                cause: SlurmError::UnreadableReply {
                    reason: "the connection closed before the reply was complete".into(),
                },
            }),
        }),
        Box::new(LifecycleError::Submit {
            job: "hello".into(),
            source: Box::new(LifecycleError::Plugin(PluginError::Refused {
                plugin: "site".into(),
                message: "no account".into(),
            })),
        }),
        Box::new(LifecycleError::NotRecorded {
            job_id: id("42"),
            source: journal(),
        }),
        Box::new(LifecycleError::Journal(JournalError::Failed(
            "the task using it failed: panicked".into(),
        ))),
        Box::new(LifecycleError::NotJournaled {
            job_id: id("42"),
            cluster: "ssh://u@h:22".into(),
        }),
        Box::new(LifecycleError::NoOutputYet {
            job_id: id("42"),
            path: "/d/slurm-42.out".into(),
            state: " (it is PENDING)".into(),
        }),
        Box::new(LifecycleError::UnexpandablePattern {
            job_id: id("42"),
            pattern: "%N.out".into(),
        }),
        Box::new(LifecycleError::UnknownJob { job_id: id("99") }),
        Box::new(LifecycleError::WaitTimedOut {
            seconds: 60,
            state: JobState::Running,
        }),
        Box::new(LifecycleError::ArrayTaskNeeded { job_id: id("7") }),
        Box::new(LifecycleError::Output(io(
            std::io::ErrorKind::BrokenPipe,
            "broken pipe",
        ))),
        Box::new(SlurmError::UnexpectedSbatchOutput {
            output: "Submitted".into(),
        }),
        Box::new(SlurmError::UnclearRefusal {
            status: "1".into(),
            message: "sbatch: error: Batch job submission failed: Socket timed out on send/recv operation".into(),
        }),
        Box::new(SlurmError::QueryFailed {
            message: "slurm_load_jobs error: Unable to contact slurm controller".into(),
        }),
    ];
    check("lifecycle", snapshot(errors));
}
