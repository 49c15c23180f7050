//! A connection to a cluster, and what commands do with one: submit, query, cancel, read logs.
//!
//! [`Target`] is everything resolved before any I/O (from flags, the Slurmfile and ssh_config); a
//! [`Connection`] is one SSH session (or this machine) reused for every step of a command.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use crate::exec::{CommandError, CommandOutput, Exec, LocalShell};
use crate::job::journal::{Journal, JournalError, SubmissionState};
use crate::job::spec::{JobSpec, expand_pattern};
use crate::job::{self, SCRIPT_FILE, SPEC_FILE};
use crate::plugin::PluginError;
use crate::plugin::renderer::Renderer;
use crate::slurm::quote::ShellCommand;
use crate::slurm::state::{JobState, JobStatus, StatusSource};
use crate::slurm::validate::JobId;
use crate::slurm::{self, SlurmError};
use crate::ssh::auth::Prompter;
use crate::ssh::{Hop, Session, SshError, Transport};
use crate::transfer::{Files, TransferError};

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
}

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
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
    #[error(
        "job {job_id} is not in this machine's journal for {cluster}, so its job directory is unknown"
    )]
    NotJournaled { job_id: JobId, cluster: String },
    #[error("job {job_id} has no output file {path} yet ({state})")]
    NoOutputYet {
        job_id: JobId,
        path: String,
        state: String,
    },
    #[error(
        "the output path {pattern:?} of job {job_id} uses a pattern only the compute node can expand"
    )]
    UnexpandablePattern { job_id: JobId, pattern: String },
    #[error("job {job_id} is an array: each task has its own output")]
    ArrayTaskNeeded { job_id: JobId },
}

impl ClusterError {
    pub fn hint(&self) -> Option<String> {
        match self {
            ClusterError::Ssh(e) => e.hint(),
            ClusterError::Plugin(e) => e.hint(),
            ClusterError::NotJournaled { .. } => Some(
                "`slurmkit status` works for any job id; logs and callbacks need a job submitted from this machine (or pass the same --data-dir)".into(),
            ),
            ClusterError::ArrayTaskNeeded { job_id } => Some(format!(
                "name a task: `slurmkit logs {job_id}_0` (`slurmkit status {job_id}` lists them)"
            )),
            ClusterError::NoOutputYet { .. } => Some("wait for the job to start (`slurmkit wait`), or follow it with `slurmkit logs -f`".into()),
            ClusterError::Slurm(SlurmError::Command(CommandError::Failed { output, .. }))
                if String::from_utf8_lossy(&output.stderr).contains("command not found") =>
            {
                Some("Slurm's commands are not on the remote PATH for non-interactive shells; ask your admins, or check `ssh host which sbatch`".into())
            }
            _ => None,
        }
    }
}

/// An open connection.
pub enum Connection {
    Ssh(Box<Session>),
    Local,
}

impl Connection {
    pub async fn open(
        target: &Target,
        prompter: Arc<dyn Prompter>,
    ) -> Result<Connection, ClusterError> {
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

    pub async fn files(&self) -> Result<Files<'_>, ClusterError> {
        match self {
            Connection::Ssh(session) => Ok(Files::Sftp(session.sftp().await?)),
            Connection::Local => Ok(Files::Local),
        }
    }

    pub async fn close(self) {
        if let Connection::Ssh(session) = self {
            session.close().await;
        }
    }
}

impl Exec for Connection {
    async fn exec(&self, command: &ShellCommand) -> Result<CommandOutput, CommandError> {
        match self {
            Connection::Ssh(session) => session.exec(command).await,
            Connection::Local => LocalShell.exec(command).await,
        }
    }
}

/// A job that `sbatch` accepted.
#[derive(Debug, Clone)]
pub struct Submitted {
    pub submission_id: i64,
    pub job_id: JobId,
    pub job_dir: String,
}

/// Hooks the submit sequence calls at each step (callbacks are delivered from these).
pub trait SubmitObserver {
    fn staging_begin(&mut self, _spec: &JobSpec, _job_dir: &str) {}
    fn staging_end(&mut self, _spec: &JobSpec, _job_dir: &str) {}
    fn submit_begin(&mut self, _submission_id: i64, _spec: &JobSpec, _job_dir: &str) {}
    fn submitted(&mut self, _submitted: &Submitted, _spec: &JobSpec) {}
}

impl SubmitObserver for () {}

/// Render, stage and submit one job. The journal records it before `sbatch` runs and again after.
pub async fn submit(
    conn: &Connection,
    target: &Target,
    journal: &Journal,
    renderer: &Renderer<'_>,
    spec: &JobSpec,
    observer: &mut dyn SubmitObserver,
) -> Result<Submitted, ClusterError> {
    let files = conn.files().await?;
    let base = files.resolve_base(&target.job_base_dir).await?;
    let dir_name = job::job_dir_name(&spec.name, SystemTime::now());
    let dir_path = format!("{base}/{dir_name}");
    let spec = spec.anchored_in(&dir_path);
    // Render before creating anything: a renderer that refuses the job leaves the cluster untouched.
    let script = renderer.render(&spec).await?;
    observer.staging_begin(&spec, &dir_path);
    let job_dir = files.create_job_dir(&base, &dir_name).await?;
    job_dir.write(SCRIPT_FILE, script.as_bytes(), 0o750).await?;
    let spec_json = serde_json::to_vec_pretty(&spec).expect("a job spec always serializes");
    job_dir.write(SPEC_FILE, &spec_json, 0o640).await?;
    observer.staging_end(&spec, job_dir.path());

    let submission_id = journal.begin_submission(
        &target.key,
        job_dir.path(),
        &spec,
        &renderer.spec().provenance(),
    )?;
    observer.submit_begin(submission_id, &spec, job_dir.path());
    let job_id = match slurm::sbatch(conn, job_dir.path(), SCRIPT_FILE).await {
        Ok(id) => id,
        Err(SlurmError::Command(CommandError::Failed { command, output }))
            if output.exit != crate::exec::Exit::Unknown =>
        {
            // sbatch ran and refused: nothing is queued.
            let error = SlurmError::Command(CommandError::Failed { command, output });
            journal.mark_rejected(submission_id, &error.to_string())?;
            return Err(error.into());
        }
        // The connection may have dropped after sbatch queued the job: leave the record `submitting`
        // so the next command reconciles it from the job directory.
        Err(e) => return Err(e.into()),
    };
    journal.mark_submitted(submission_id, &job_id)?;
    let submitted = Submitted {
        submission_id,
        job_id,
        job_dir: job_dir.path().to_string(),
    };
    observer.submitted(&submitted, &spec);
    Ok(submitted)
}

/// Resolve submissions whose job id never came back: the job directory holds what sbatch printed.
/// Returns the ones resolved.
pub async fn reconcile(
    conn: &Connection,
    target: &Target,
    journal: &Journal,
) -> Result<Vec<Submitted>, ClusterError> {
    let pending = journal.unresolved(&target.key)?;
    if pending.is_empty() {
        return Ok(Vec::new());
    }
    let files = conn.files().await?;
    let mut resolved = Vec::new();
    for submission in pending {
        let Ok(dir) = files.open_job_dir(&submission.job_dir).await else {
            continue;
        };
        match dir.read_from(slurm::JOB_ID_FILE, 0, 256).await {
            Ok(bytes) => {
                if let Ok(job_id) = slurm::parse_parsable(&String::from_utf8_lossy(&bytes)) {
                    journal.mark_submitted(submission.id, &job_id)?;
                    tracing::warn!(
                        "recovered job {job_id} ({}) whose submission was interrupted; it is journaled now",
                        submission.job_dir
                    );
                    resolved.push(Submitted {
                        submission_id: submission.id,
                        job_id,
                        job_dir: submission.job_dir,
                    });
                }
            }
            Err(TransferError::NotFound { .. }) => {}
            Err(e) => tracing::debug!("cannot reconcile {}: {e}", submission.job_dir),
        }
    }
    Ok(resolved)
}

/// Where a job's stdout (or stderr) lives inside its job directory.
pub fn output_file(spec: &JobSpec, job_id: &JobId, stderr: bool) -> Result<String, ClusterError> {
    let pattern = if stderr {
        spec.stderr_pattern()
    } else {
        spec.stdout_pattern()
    };
    if spec.array.is_some() && !job_id.as_str().contains('_') {
        return Err(ClusterError::ArrayTaskNeeded {
            job_id: job_id.clone(),
        });
    }
    expand_pattern(pattern, job_id, &spec.name).ok_or_else(|| ClusterError::UnexpandablePattern {
        job_id: job_id.clone(),
        pattern: pattern.to_string(),
    })
}

/// Read a journaled job's stdout or stderr from `offset`.
pub async fn read_log(
    conn: &Connection,
    target: &Target,
    journal: &Journal,
    job_id: &JobId,
    stderr: bool,
    offset: u64,
) -> Result<Vec<u8>, ClusterError> {
    let submission = journal
        .find_by_job_id(&target.key, job_id)?
        .ok_or_else(|| ClusterError::NotJournaled {
            job_id: job_id.clone(),
            cluster: target.key.clone(),
        })?;
    let mut name = output_file(&submission.spec, job_id, stderr)?;
    // Absolute output paths are only readable when they point into the job directory.
    if let Some(inside) = name.strip_prefix(&format!("{}/", submission.job_dir)) {
        name = inside.to_string();
    }
    let files = conn.files().await?;
    let dir = files.open_job_dir(&submission.job_dir).await?;
    match dir.read_from(&name, offset, u64::MAX).await {
        Ok(bytes) => Ok(bytes),
        Err(TransferError::NotFound { path }) => {
            let state = match slurm::status(conn, std::slice::from_ref(job_id)).await {
                Ok(statuses) => statuses
                    .first()
                    .map(|s| format!("it is {}", s.state))
                    .unwrap_or_default(),
                Err(_) => String::new(),
            };
            Err(ClusterError::NoOutputYet {
                job_id: job_id.clone(),
                path,
                state,
            })
        }
        Err(e) => Err(e.into()),
    }
}

/// Query statuses and record them in the journal for journaled jobs. Returns (status, previous) pairs.
pub async fn observe(
    conn: &Connection,
    target: &Target,
    journal: &Journal,
    ids: &[JobId],
) -> Result<Vec<(JobStatus, Option<JobStatus>, Option<i64>)>, ClusterError> {
    let statuses = slurm::status(conn, ids).await?;
    let mut observed = Vec::new();
    for mut status in statuses {
        let submission = journal.find_by_job_id(&target.key, &status.job_id)?;
        // A finished job vanishes from Slurm after MinJobAge (and from sacct without accounting); the
        // journal remembers how it ended.
        if let Some(recorded) = submission.as_ref().and_then(|s| s.last_status.clone())
            && status.state == JobState::Unknown
            && recorded.state.is_terminal()
            && recorded.job_id == status.job_id
        {
            status = JobStatus {
                source: StatusSource::Journal,
                ..recorded
            };
        }
        let (previous, submission_id) = match &submission {
            Some(s)
                if s.state == SubmissionState::Submitted
                    && s.job_id.as_ref() == Some(&status.job_id) =>
            {
                journal.record_status(s.id, &status)?;
                (s.last_status.clone(), Some(s.id))
            }
            Some(s) => (None, Some(s.id)),
            None => (None, None),
        };
        observed.push((status, previous, submission_id));
    }
    Ok(observed)
}

/// Default known_hosts files, as OpenSSH reads them (user files first: that is where `auto` records).
pub fn default_known_hosts(home: Option<PathBuf>) -> Vec<PathBuf> {
    let mut files = Vec::new();
    if let Some(home) = home {
        files.push(home.join(".ssh/known_hosts"));
        files.push(home.join(".ssh/known_hosts2"));
    }
    files.push(PathBuf::from("/etc/ssh/ssh_known_hosts"));
    files.push(PathBuf::from("/etc/ssh/ssh_known_hosts2"));
    files
}
