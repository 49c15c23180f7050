//! Running a command on the cluster, whatever carries it (SSH, or this machine for the `local` backend):
//! the trait, and the output and error every carrier reports.
//!
//! One output type and one error type for every external command, shaped like cargo's `ProcessError`:
//! the command line, how it ended (exit code or signal), and what it printed.

use std::fmt;

use crate::error::{Diagnose, exit};
use crate::types::shell::ShellCommand;

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

/// How a local process ended.
impl From<std::process::ExitStatus> for Exit {
    fn from(status: std::process::ExitStatus) -> Exit {
        use std::os::unix::process::ExitStatusExt;
        match (status.code(), status.signal()) {
            (Some(code), _) => Exit::Code(code),
            (None, Some(signal)) => Exit::Signal(signal.to_string()),
            (None, None) => Exit::Unknown,
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
#[derive(Debug, Clone, thiserror::Error)]
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
    /// Run `command` with `input` on its standard input (then end of file), and collect what it prints.
    fn run(
        &self,
        command: &ShellCommand,
        input: &[u8],
    ) -> impl Future<Output = Result<CommandOutput, CommandError>> + Send;

    /// Run `command` with `input` streamed to its standard input as it is produced (then end of file).
    /// Carriers that can stream override this; the default reads it all first.
    fn run_stream<R>(
        &self,
        command: &ShellCommand,
        mut input: R,
    ) -> impl Future<Output = Result<CommandOutput, CommandError>> + Send
    where
        R: tokio::io::AsyncRead + Send + Unpin + 'static,
        Self: Sync,
    {
        async move {
            use tokio::io::AsyncReadExt;
            let mut bytes = Vec::new();
            input
                .read_to_end(&mut bytes)
                .await
                .map_err(|e| CommandError::NotRun {
                    command: command.to_string(),
                    reason: format!("its input could not be made: {e}"),
                })?;
            self.run(command, &bytes).await
        }
    }

    /// Run `command` with nothing on its standard input.
    fn exec(
        &self,
        command: &ShellCommand,
    ) -> impl Future<Output = Result<CommandOutput, CommandError>> + Send {
        self.run(command, &[])
    }
}

impl Diagnose for CommandError {
    fn exit_code(&self) -> u8 {
        exit::CLUSTER
    }

    fn hint(&self) -> Option<String> {
        match self {
            CommandError::Failed { output, .. }
                if String::from_utf8_lossy(&output.stderr).contains("command not found") =>
            {
                Some("Slurm's commands are not on the remote PATH for non-interactive shells; ask your admins, or check `ssh host which sbatch`".into())
            }
            _ => None,
        }
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
}
