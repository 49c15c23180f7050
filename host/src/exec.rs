//! Running a command on the cluster, whatever carries it (SSH, or this machine for the `local` backend).
//!
//! One output type and one error type for every external command, shaped like cargo's `ProcessError`:
//! the command line, how it ended (exit code or signal), and what it printed.

use std::fmt;

use crate::slurm::quote::ShellCommand;

/// How a command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    /// Killed by a signal; the name as the remote side reported it (`TERM`, `KILL`, ...).
    Signal(String),
    /// The channel closed without reporting either (e.g. the connection dropped).
    Unknown,
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exit::Code(code) => write!(f, "exit status {code}"),
            Exit::Signal(signal) => write!(f, "killed by signal {signal}"),
            Exit::Unknown => {
                f.write_str("no exit status (the connection closed before the command finished)")
            }
        }
    }
}

/// What a finished command printed, and how it ended.
#[derive(Debug, Clone)]
pub struct CommandOutput {
    pub exit: Exit,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl CommandOutput {
    pub fn success(&self) -> bool {
        self.exit == Exit::Code(0)
    }

    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    /// `Ok(self)` if it exited 0, else the failure as a [`CommandError`].
    pub fn check(self, command: &ShellCommand) -> Result<CommandOutput, CommandError> {
        if self.success() {
            Ok(self)
        } else {
            Err(CommandError::Failed {
                command: command.to_string(),
                output: self,
            })
        }
    }
}

/// An external command that could not be run, or ran and failed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The command never ran (no channel, no process).
    #[error("could not run `{command}`: {reason}")]
    NotRun { command: String, reason: String },
    #[error("{}", describe_failure(command, output))]
    Failed {
        command: String,
        output: CommandOutput,
    },
}

fn describe_failure(command: &str, output: &CommandOutput) -> String {
    let mut text = format!("`{command}` failed ({})", output.exit);
    for (label, bytes) in [("stdout", &output.stdout), ("stderr", &output.stderr)] {
        let body = String::from_utf8_lossy(bytes);
        let body = body.trim_end();
        if !body.is_empty() {
            text.push_str(&format!("\n--- {label}\n{body}"));
        }
    }
    text
}

/// Something that runs shell command lines: an SSH session, or this machine.
pub trait Exec {
    fn exec(
        &self,
        command: &ShellCommand,
    ) -> impl Future<Output = Result<CommandOutput, CommandError>> + Send;
}

/// Runs commands on this machine through `/bin/sh -c`, so the `local` and `ssh` backends share every
/// command line (and its quoting).
pub struct LocalShell;

impl Exec for LocalShell {
    async fn exec(&self, command: &ShellCommand) -> Result<CommandOutput, CommandError> {
        use std::os::unix::process::ExitStatusExt;
        tracing::debug!(command = %command, "running locally");
        let output = tokio::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(command.as_str())
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .map_err(|e| CommandError::NotRun {
                command: command.to_string(),
                reason: e.to_string(),
            })?;
        let exit = match (output.status.code(), output.status.signal()) {
            (Some(code), _) => Exit::Code(code),
            (None, Some(signal)) => Exit::Signal(signal.to_string()),
            (None, None) => Exit::Unknown,
        };
        Ok(CommandOutput {
            exit,
            stdout: output.stdout,
            stderr: output.stderr,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_text_has_only_non_empty_blocks() {
        let output = CommandOutput {
            exit: Exit::Code(1),
            stdout: vec![],
            stderr: b"sbatch: error: invalid partition specified: nosuch\n".to_vec(),
        };
        let err = CommandError::Failed {
            command: "sbatch --parsable job.sbatch".into(),
            output,
        };
        assert_eq!(
            err.to_string(),
            "`sbatch --parsable job.sbatch` failed (exit status 1)\n--- stderr\nsbatch: error: invalid partition specified: nosuch"
        );
    }

    #[tokio::test]
    async fn local_shell_reports_exit_code_and_output() {
        let out = LocalShell.exec(&ShellCommand::new("false")).await.unwrap();
        assert_eq!(out.exit, Exit::Code(1));
        let out = LocalShell
            .exec(&ShellCommand::new("echo").arg("$HOME; id"))
            .await
            .unwrap();
        assert!(out.success());
        assert_eq!(out.stdout_text(), "$HOME; id\n");
    }
}
