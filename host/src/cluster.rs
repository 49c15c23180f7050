//! A connection to a cluster, and what commands do with one: submit, query, cancel, read logs.
//!
//! [`Target`] is everything resolved before any I/O (from flags, the Slurmfile and ssh_config); a
//! [`Connection`] is one SSH session (or this machine) reused for every step of a command.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use crate::exec::{CommandError, CommandOutput, Exec, Exit, LocalShell};
use crate::job::journal::{
    CallbackRoute, Journal, JournalError, Submission, SubmissionState, now_ms,
};
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
use crate::transfer::{Files, JobDir, TransferError};

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
    #[error("the outcome of submitting {job_dir} is unknown: {cause}")]
    SubmissionUncertain { job_dir: String, cause: SlurmError },
    #[error(
        "job {job_id} is not known to Slurm (squeue, scontrol, sacct) or to this machine's journal"
    )]
    UnknownJob { job_id: JobId },
    #[error("gave up waiting after {seconds} s; the job is still {state}")]
    WaitTimedOut { seconds: u64, state: JobState },
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
            ClusterError::SubmissionUncertain { .. } => Some(
                "the job may be queued: the next slurmkit command that connects finds its id in the job directory and journals it. Run `slurmkit status` before submitting again".into(),
            ),
            ClusterError::UnknownJob { .. } => Some(
                "check the job id and the cluster; a job that finished more than MinJobAge ago (300 s by default) is forgotten by Slurm unless the cluster keeps accounting".into(),
            ),
            ClusterError::WaitTimedOut { .. } => Some("the job keeps running; `slurmkit wait` it again, or `slurmkit status` it later".into()),
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

/// Hooks the submit sequence calls at each step (callbacks are queued from these). Each is called
/// before the journal records the step it announces, so a crash in between leaves the record to be
/// completed later and the announcement already queued.
pub trait SubmitObserver {
    /// The callbacks to journal this submission's events for.
    fn callback_routes(&self) -> Vec<CallbackRoute> {
        Vec::new()
    }
    fn staging_begin(&mut self, _submission_id: i64, _spec: &JobSpec, _job_dir: &str) {}
    fn staging_end(&mut self, _submission_id: i64, _spec: &JobSpec, _job_dir: &str) {}
    fn submit_begin(&mut self, _submission_id: i64, _spec: &JobSpec, _job_dir: &str) {}
    fn submitted(&mut self, _submitted: &Submitted, _spec: &JobSpec) {}
}

impl SubmitObserver for () {}

/// Render, stage and submit one job. The journal records it before anything is created on the cluster
/// and again once sbatch's job id is known.
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
    // Render before creating or recording anything: a renderer that refuses the job leaves no trace.
    let script = renderer.render(&spec).await?;
    let provenance = renderer.spec().provenance();
    let submission_id = journal.begin_submission(
        &target.key,
        &dir_path,
        &spec,
        &provenance,
        &observer.callback_routes(),
    )?;

    observer.staging_begin(submission_id, &spec, &dir_path);
    let staged = async {
        let job_dir = files.create_job_dir(&base, &dir_name).await?;
        job_dir.write(SCRIPT_FILE, script.as_bytes(), 0o750).await?;
        let spec_json = serde_json::to_vec_pretty(&spec).expect("a job spec always serializes");
        job_dir.write(SPEC_FILE, &spec_json, 0o640).await?;
        Ok::<_, TransferError>(job_dir)
    };
    let job_dir = match staged.await {
        Ok(job_dir) => job_dir,
        Err(error) => {
            journal.mark_rejected(submission_id, &format!("staging failed: {error}"))?;
            return Err(error.into());
        }
    };
    observer.staging_end(submission_id, &spec, job_dir.path());

    observer.submit_begin(submission_id, &spec, job_dir.path());
    let command = slurm::sbatch_command(job_dir.path(), SCRIPT_FILE);
    let outcome = conn.exec(&command).await;
    let JobIdFile::Found(job_id) = read_job_id(&job_dir).await else {
        return Err(submission_failed(
            journal,
            submission_id,
            job_dir.path(),
            &command,
            outcome,
        )?);
    };
    let submitted = Submitted {
        submission_id,
        job_id,
        job_dir: job_dir.path().to_string(),
    };
    observer.submitted(&submitted, &spec);
    journal.mark_submitted(submission_id, &submitted.job_id)?;
    Ok(submitted)
}

/// What the job directory says about sbatch's outcome.
enum JobIdFile {
    /// sbatch wrote this id.
    Found(JobId),
    /// Neither file exists: sbatch never ran (or the directory was emptied).
    Missing,
    /// A file exists but holds no id yet, or could not be read: undecided.
    Unclear,
}

async fn read_job_id(job_dir: &JobDir<'_>) -> JobIdFile {
    let mut missing = 0;
    for name in [slurm::JOB_ID_FILE, slurm::JOB_ID_PENDING_FILE] {
        match job_dir.read_from(name, 0, 4096).await {
            Ok(bytes) => {
                if let Ok(job_id) = slurm::parse_parsable(&String::from_utf8_lossy(&bytes)) {
                    return JobIdFile::Found(job_id);
                }
            }
            Err(TransferError::NotFound { .. }) => missing += 1,
            Err(e) => tracing::debug!("cannot read {name} in {}: {e}", job_dir.path()),
        }
    }
    if missing == 2 {
        JobIdFile::Missing
    } else {
        JobIdFile::Unclear
    }
}

/// sbatch left no job id. Only when it exited with a failure status did it refuse the job; otherwise
/// (killed, connection lost, never started, odd output) the job may be queued, so the record stays
/// `submitting` for the next command to reconcile.
fn submission_failed(
    journal: &Journal,
    submission_id: i64,
    job_dir: &str,
    command: &ShellCommand,
    outcome: Result<CommandOutput, CommandError>,
) -> Result<ClusterError, ClusterError> {
    let cause = match outcome {
        Ok(output) if matches!(output.exit, Exit::Code(code) if code != 0) => {
            let error = SlurmError::Command(CommandError::Failed {
                command: command.to_string(),
                output,
            });
            journal.mark_rejected(submission_id, &error.to_string())?;
            return Ok(error.into());
        }
        Ok(output) if output.success() => SlurmError::UnexpectedSbatchOutput {
            output: output.stdout_text(),
        },
        Ok(output) => SlurmError::Command(CommandError::Failed {
            command: command.to_string(),
            output,
        }),
        Err(error) => SlurmError::Command(error),
    };
    Ok(ClusterError::SubmissionUncertain {
        job_dir: job_dir.to_string(),
        cause,
    })
}

/// A submission without a job id whose directory is missing after this long was not merely slow to stage.
const STAGING_GRACE_MS: i64 = 10 * 60 * 1000;
/// A submission older than this whose directory holds no id file never reached Slurm.
const ABANDONED_AFTER_MS: i64 = 24 * 3600 * 1000;

/// Resolve submissions whose job id never came back, from what sbatch wrote into their job directory.
/// Problems with one record are logged and do not stop the others (or the command that asked).
pub async fn reconcile(
    conn: &Connection,
    target: &Target,
    journal: &Journal,
    observer: &mut dyn SubmitObserver,
) -> Result<Vec<Submitted>, ClusterError> {
    let pending = journal.unresolved(&target.key)?;
    if pending.is_empty() {
        return Ok(Vec::new());
    }
    let files = conn.files().await?;
    let mut resolved = Vec::new();
    for submission in pending {
        let age = now_ms() - submission.created_ms;
        let dir = match files.open_job_dir(&submission.job_dir).await {
            Ok(dir) => dir,
            // Another slurmkit may still be creating it: only an old record's missing directory counts.
            Err(TransferError::NotFound { .. }) if age > STAGING_GRACE_MS => {
                journal.mark_rejected(submission.id, "its job directory no longer exists")?;
                continue;
            }
            Err(e) => {
                tracing::debug!("cannot reconcile {} yet: {e}", submission.job_dir);
                continue;
            }
        };
        match read_job_id(&dir).await {
            JobIdFile::Found(job_id) => {
                let submitted = Submitted {
                    submission_id: submission.id,
                    job_id,
                    job_dir: submission.job_dir,
                };
                observer.submitted(&submitted, &submission.spec);
                journal.mark_submitted(submission.id, &submitted.job_id)?;
                tracing::warn!(
                    "recovered job {} ({}) whose submission was interrupted; it is journaled now",
                    submitted.job_id,
                    submitted.job_dir
                );
                resolved.push(submitted);
            }
            JobIdFile::Missing if age > ABANDONED_AFTER_MS => {
                journal.mark_rejected(
                    submission.id,
                    "no job id was written within a day: sbatch never ran",
                )?;
            }
            JobIdFile::Missing | JobIdFile::Unclear => {}
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
    limit: u64,
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
    match dir.read_from(&name, offset, limit).await {
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

/// Told about a journaled job's change of state, before the journal records it.
pub trait StatusObserver {
    /// Returns whether the change was taken care of; if not, the new state is not recorded, so the
    /// change is seen (and announced) again next time.
    fn changed(
        &mut self,
        submission: &Submission,
        previous: Option<&JobStatus>,
        current: &JobStatus,
    ) -> bool;
}

impl StatusObserver for () {
    fn changed(&mut self, _: &Submission, _: Option<&JobStatus>, _: &JobStatus) -> bool {
        true
    }
}

/// Query statuses, tell `observer` what changed for journaled jobs (an array job's state being that of
/// its tasks together), then record the new states.
pub async fn observe(
    conn: &Connection,
    target: &Target,
    journal: &Journal,
    ids: &[JobId],
    observer: &mut dyn StatusObserver,
) -> Result<Vec<JobStatus>, ClusterError> {
    let statuses = slurm::status(conn, ids).await?;
    let mut observed = Vec::new();
    // Each journaled submission seen, with the statuses that are its own (the job, or its tasks).
    let mut journaled: Vec<(Submission, Vec<JobStatus>)> = Vec::new();
    for mut status in statuses {
        let Some(submission) = journal.find_by_job_id(&target.key, &status.job_id)? else {
            observed.push(status);
            continue;
        };
        // A finished job vanishes from Slurm after MinJobAge (and from sacct without accounting); the
        // journal remembers how it ended.
        if let Some(recorded) = submission.last_status.clone()
            && status.state == JobState::Unknown
            && recorded.state.is_terminal()
            && recorded.job_id == status.job_id
        {
            status = JobStatus {
                source: StatusSource::Journal,
                ..recorded
            };
        }
        if submission.state == SubmissionState::Submitted && submission.job_id.is_some() {
            match journaled.iter_mut().find(|(s, _)| s.id == submission.id) {
                Some((_, own)) => own.push(status.clone()),
                None => journaled.push((submission, vec![status.clone()])),
            }
        }
        observed.push(status);
    }
    for (submission, own) in journaled {
        let job_id = submission
            .job_id
            .clone()
            .expect("submitted records have a job id");
        let current = match own.iter().find(|s| s.job_id == job_id) {
            Some(status) => status.clone(),
            None => slurm::state::aggregate(&job_id, &own),
        };
        let previous = submission.last_status.as_ref();
        let changed =
            current.state != JobState::Unknown && previous.is_none_or(|p| p.state != current.state);
        if changed && !observer.changed(&submission, previous, &current) {
            continue;
        }
        journal.record_status(submission.id, &current)?;
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
