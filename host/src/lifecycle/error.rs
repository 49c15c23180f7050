//! What can go wrong in a connection's session, each with its exit code and next step.

use std::path::PathBuf;

use crate::config::ConfigError;
use crate::error::{Diagnose, exit};
use crate::journal::JournalError;
use crate::plugin::PluginError;
use crate::slurm::SlurmError;
use crate::ssh::SshError;
use crate::ssh::config::SshConfigError;
use crate::transfer::TransferError;
use crate::types::names::{InvalidValue, JobId};
use crate::types::status::JobState;

#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error("cannot connect to cluster {cluster}")]
    Connect {
        cluster: String,
        #[source]
        source: SshError,
    },
    #[error(
        "lost the connection to {cluster} and could not reconnect within {seconds} s ({attempts} attempts)"
    )]
    Reconnect {
        cluster: String,
        seconds: u64,
        attempts: u32,
        #[source]
        source: Box<LifecycleError>,
    },
    #[error(transparent)]
    Ssh(#[from] SshError),
    #[error(transparent)]
    Transfer(#[from] TransferError),
    #[error(transparent)]
    Slurm(#[from] SlurmError),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Plugin(#[from] PluginError),
    #[error("submitting job {job} failed")]
    Submit {
        job: String,
        #[source]
        source: Box<LifecycleError>,
    },
    #[error("sbatch refused the job (exit status {status}){}", if message.is_empty() { String::new() } else { format!(": {message}") })]
    Refused { status: String, message: String },
    #[error("could not write the job directory {job_dir}: {message}")]
    NotStaged { job_dir: String, message: String },
    #[error("{message}")]
    Script { message: String },
    #[error("not submitted: it runs after job {dependency}, which was not submitted")]
    DependencyNotSubmitted { dependency: String },
    #[error(
        "not submitted: it runs after job {dependency}, and no submission of {dependency} from this machine has a job id"
    )]
    NoEarlierSubmission { dependency: String },
    #[error("the outcome of submitting {job_dir} is unknown: {cause}")]
    SubmissionUncertain { job_dir: String, cause: SlurmError },
    #[error("job {job_id} was queued but this machine's journal could not record it")]
    NotRecorded {
        job_id: JobId,
        #[source]
        source: JournalError,
    },
    #[error(
        "job {job_id} is not in this machine's journal for {cluster}, so its job directory is unknown"
    )]
    NotJournaled { job_id: JobId, cluster: String },
    #[error("job {job_id} has no output file {path} yet{state}")]
    NoOutputYet {
        job_id: JobId,
        path: String,
        /// ` (it is RUNNING)`, or empty when unknown.
        state: String,
    },
    #[error(
        "the output path {pattern:?} of job {job_id} uses a pattern only the compute node can expand"
    )]
    UnexpandablePattern { job_id: JobId, pattern: String },
    #[error("job {job_id} is not known to Slurm (squeue, sacct) or to this machine's journal")]
    UnknownJob { job_id: JobId },
    #[error("gave up waiting after {seconds} s; the job is still {state}")]
    WaitTimedOut { seconds: u64, state: JobState },
    #[error("job {job_id} is an array: each task has its own output")]
    ArrayTaskNeeded { job_id: JobId },
    #[error("cannot write the output: {0}")]
    Output(#[source] std::io::Error),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("job {job_id} has ended ({state}): there is nothing running to go to")]
    NotRunning { job_id: JobId, state: JobState },
    #[error("node {node:?} is not one of job {job_id}'s nodes ({nodes})")]
    NotTheJobsNode {
        job_id: JobId,
        node: String,
        nodes: String,
    },
}

impl Diagnose for LifecycleError {
    fn exit_code(&self) -> u8 {
        match self.diagnosed_source() {
            Some(cause) => cause.exit_code(),
            None => match self {
                LifecycleError::NotRecorded { .. } => exit::NOT_RECORDED,
                LifecycleError::UnknownJob { .. } => exit::JOB_UNKNOWN,
                LifecycleError::WaitTimedOut { .. } => exit::WAIT_TIMEOUT,
                LifecycleError::Output(_) => exit::INTERNAL,
                LifecycleError::Script { .. } => exit::PLUGIN,
                LifecycleError::NoEarlierSubmission { .. }
                | LifecycleError::NotTheJobsNode { .. }
                | LifecycleError::Listen { .. } => exit::CONFIG,
                _ => exit::CLUSTER,
            },
        }
    }

    fn diagnosed_source(&self) -> Option<&dyn Diagnose> {
        match self {
            LifecycleError::Connect { source, .. } => Some(source),
            LifecycleError::Reconnect { source, .. } | LifecycleError::Submit { source, .. } => {
                Some(source.as_ref())
            }
            LifecycleError::Ssh(e) => Some(e),
            LifecycleError::Transfer(e) => Some(e),
            LifecycleError::Slurm(e) => Some(e),
            LifecycleError::Journal(e) => Some(e),
            LifecycleError::Plugin(e) => Some(e),
            LifecycleError::SubmissionUncertain { cause, .. } => Some(cause),
            _ => None,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            LifecycleError::NotJournaled { .. } => Some(
                "`slurmkit status` works for any job id; `logs` of a job not submitted from here needs Slurm to still know it, and results, outputs and callbacks need a job submitted from this machine (or pass the same --data-dir)".into(),
            ),
            LifecycleError::SubmissionUncertain { .. } => Some(
                "the job may be queued: the next slurmkit command that connects finds its id in the job directory and journals it. Run `slurmkit status` before submitting again".into(),
            ),
            LifecycleError::NoEarlierSubmission { dependency } => Some(format!(
                "submit it first (`slurmkit submit {dependency}`), or submit without --only so the jobs it runs after go too"
            )),
            LifecycleError::DependencyNotSubmitted { .. } => Some(
                "fix the job it runs after (its own error is listed too) and submit again".into(),
            ),
            LifecycleError::NotRecorded { .. } => Some(
                "do not resubmit: the job is queued. `slurmkit status` will pick it up from its job directory once the journal can be written".into(),
            ),
            LifecycleError::UnknownJob { .. } => Some(
                "check the job id and the cluster; a job that finished more than MinJobAge ago (300 s by default) is forgotten by Slurm unless the cluster keeps accounting".into(),
            ),
            LifecycleError::WaitTimedOut { .. } => Some(
                "the job keeps running; `slurmkit wait` it again, or `slurmkit status` it later"
                    .into(),
            ),
            LifecycleError::ArrayTaskNeeded { job_id } => Some(format!(
                "name a task: `slurmkit logs {job_id}_0` (`slurmkit status {job_id}` lists them)"
            )),
            LifecycleError::NoOutputYet { .. } => Some(
                "wait for the job to start (`slurmkit wait`), or follow it with `slurmkit logs -f`"
                    .into(),
            ),
            LifecycleError::NotRunning { job_id, .. } => Some(format!(
                "`slurmkit logs {job_id}` shows what it printed; `slurmkit fetch {job_id}` copies its outputs"
            )),
            LifecycleError::Listen { addr, .. } => Some(format!(
                "use another local port (`LOCAL:{port}`), or 0 for any free one (`0:{port}`)",
                port = addr.port()
            )),
            LifecycleError::NotTheJobsNode { .. } => {
                Some("leave out --node to use the job's first node".into())
            }
            LifecycleError::Reconnect { .. } => Some(
                "check the network (and VPN); `slurmkit doctor` shows each step of reaching the cluster"
                    .into(),
            ),
            _ => None,
        }
    }
}

impl LifecycleError {
    /// A Slurm command that ran and failed may succeed next time (a controller restarting).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            LifecycleError::Slurm(SlurmError::Command(
                crate::exec::CommandError::Failed { .. }
            ))
        )
    }
}

/// Input for the user to fix: a flag, Slurmfile or job spec that cannot become a plan (exit code 3).
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    SshConfig(#[from] SshConfigError),
    #[error(transparent)]
    Invalid(#[from] InvalidValue),
    #[error("the job entry name {entry:?} is not a valid job name; set `name`")]
    EntryName {
        entry: String,
        #[source]
        source: InvalidValue,
    },
    #[error("cannot read script_file {path}: {source}")]
    ScriptFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{flag}: {source}")]
    Flag {
        flag: &'static str,
        #[source]
        source: InvalidValue,
    },
    #[error("{flag}: {message}")]
    FlagValue { flag: &'static str, message: String },
    #[error("no Slurmfile found in {} or any parent directory (looked for {}), and no command was given after `--`", start.display(), crate::config::FILE_NAMES.join(", "))]
    NoSlurmfile { start: PathBuf },
    #[error("cannot read the current directory: {0}")]
    CurrentDir(#[source] std::io::Error),
    #[error("resolving the plan failed: {0}")]
    Task(String),
}

impl Diagnose for PlanError {
    fn exit_code(&self) -> u8 {
        match self {
            PlanError::CurrentDir(_) | PlanError::Task(_) => exit::INTERNAL,
            _ => exit::CONFIG,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            PlanError::NoSlurmfile { .. } => Some(
                "write a Slurmfile.toml (examples/hello has one), point --slurmfile at one, or name the command: `slurmkit submit -- python train.py`".into(),
            ),
            _ => None,
        }
    }
}

macro_rules! refuse {
    ($($arg:tt)*) => {
        return Err(PlanError::Refused(format!($($arg)*)))
    };
}
pub(super) use refuse;
