//! How an error ends a command: its exit code and, where one helps, the next step to take.
//!
//! Every error type implements [`Diagnose`] beside its definition. Errors keep their causes as
//! `source()` chains (the text the user reads walks that chain); an error that wraps another error with
//! a diagnosis of its own hands it on through [`Diagnose::diagnosed_source`], so the most specific exit code and
//! every hint along the chain are found without a list of types to try.

use std::error::Error;

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
    /// A job was queued but this machine's journal could not record it.
    pub const NOT_RECORDED: u8 = 9;
    /// The job ended FAILED (or NODE_FAIL, BOOT_FAIL, DEADLINE, PREEMPTED, UNKNOWN).
    pub const JOB_FAILED: u8 = 10;
    pub const JOB_CANCELLED: u8 = 11;
    pub const JOB_TIMEOUT: u8 = 12;
    pub const JOB_OUT_OF_MEMORY: u8 = 13;
    /// Slurm does not know the job (a wrong id, or one forgotten without accounting).
    pub const JOB_UNKNOWN: u8 = 14;
    /// `result`: the job ended without writing a result (or some array tasks did not).
    pub const NO_RESULT: u8 = 15;
    /// `result`: what the job wrote is not valid JSON.
    pub const BAD_RESULT: u8 = 16;
    /// `result`: the job has not ended yet.
    pub const NOT_FINISHED: u8 = 17;
    /// `fetch`: files exist where the outputs would go; `import`: the `--output` file exists
    /// (`--force` replaces them).
    pub const WOULD_OVERWRITE: u8 = 18;
    /// Interrupted (Ctrl-C), as a shell reports SIGINT.
    pub const INTERRUPTED: u8 = 130;
    /// Stdout was closed by its reader, as a shell reports SIGPIPE.
    pub const BROKEN_PIPE: u8 = 141;

    /// The exit code for a job that ended in `state`.
    pub fn for_state(state: crate::wit::JobState) -> u8 {
        use crate::wit::JobState;
        match state {
            JobState::Completed => SUCCESS,
            JobState::Cancelled => JOB_CANCELLED,
            JobState::Timeout => JOB_TIMEOUT,
            JobState::OutOfMemory => JOB_OUT_OF_MEMORY,
            _ => JOB_FAILED,
        }
    }
}

/// An error that knows how it ends a command.
pub trait Diagnose: Error + Send + Sync + 'static {
    /// The exit code. An error that wraps another with a diagnosis of its own usually returns that
    /// one's.
    fn exit_code(&self) -> u8;

    /// The next step, when this error knows one. Hints of wrapped errors are shown too.
    fn hint(&self) -> Option<String> {
        None
    }

    /// The wrapped error, when it has a diagnosis of its own (its hint is shown as well).
    fn diagnosed_source(&self) -> Option<&dyn Diagnose> {
        None
    }
}

/// Every hint along the diagnosis chain, outermost first, without repeats.
pub fn hints(error: &dyn Diagnose) -> Vec<String> {
    let mut hints: Vec<String> = Vec::new();
    let mut next = Some(error);
    while let Some(current) = next {
        if let Some(hint) = current.hint()
            && !hints.contains(&hint)
        {
            hints.push(hint);
        }
        next = current.diagnosed_source();
    }
    hints
}

/// Standard errors reaching the command line unwrapped are slurmkit's own failures.
impl Diagnose for std::io::Error {
    fn exit_code(&self) -> u8 {
        exit::INTERNAL
    }
}

impl Diagnose for serde_json::Error {
    fn exit_code(&self) -> u8 {
        exit::INTERNAL
    }
}
