//! Submitting jobs, and recovering submissions whose reply never came back.
//!
//! Any number of jobs go out in one exchange ([`crate::slurm::submit`]): rendered and journaled first
//! (`submitting`, with the job directory's absolute path), then staged and submitted by one remote
//! command, then journaled again with their ids. A job whose reply is lost stays `submitting`; the next
//! session finds its id in its directory, or asks Slurm for it, or says it could not find out.

use std::time::SystemTime;

use super::LifecycleError;
use super::outbox::EventDetail;
use super::session::Session;
use crate::exec::Exec;
use crate::journal::{Submission, now_ms};
use crate::plugin::renderer::Renderer;
use crate::slurm::recover::{self, DirState, Wanted};
use crate::slurm::submit::{self as exchange, Outcome, StagedFile, StagedJob};
use crate::types::job_dir::{SCRIPT_FILE, SPEC_FILE, job_dir_name};
use crate::types::names::JobId;
use crate::types::shell::ShellCommand;
use crate::types::spec::JobSpec;
use crate::wit::EventKind;

/// A job that `sbatch` accepted.
#[derive(Debug, Clone)]
pub struct Submitted {
    pub submission_id: i64,
    pub job_id: JobId,
    pub job_dir: String,
}

/// A job rendered and journaled, about to be sent.
struct Prepared {
    submission_id: i64,
    spec: JobSpec,
    staged: StagedJob,
}

/// Render, journal and submit `specs` over the session's connection, in one exchange. One result per
/// spec, in order: one refused job never loses the others.
pub async fn submit(
    session: &Session,
    renderer: &Renderer,
    specs: &[JobSpec],
) -> Vec<Result<Submitted, LifecycleError>> {
    let failed_all = |error: &dyn Fn() -> LifecycleError| {
        specs
            .iter()
            .map(|spec| {
                Err(LifecycleError::Submit {
                    job: spec.name.to_string(),
                    source: Box::new(error()),
                })
            })
            .collect()
    };
    let base = match job_base_dir(session).await {
        Ok(base) => base,
        Err(e) => {
            let message = e.to_string();
            return failed_all(&|| LifecycleError::NotStaged {
                job_dir: session.target.job_base_dir.clone(),
                message: message.clone(),
            });
        }
    };
    // Render and journal each job before anything is created on the cluster: a renderer that refuses a
    // job leaves no trace, and a job that reaches sbatch is always on record.
    let mut results: Vec<Option<Result<Submitted, LifecycleError>>> = Vec::new();
    let mut prepared: Vec<(usize, Prepared)> = Vec::new();
    for (index, spec) in specs.iter().enumerate() {
        match prepare(session, renderer, &base, spec).await {
            Ok(job) => {
                prepared.push((index, job));
                results.push(None);
            }
            Err(error) => results.push(Some(Err(LifecycleError::Submit {
                job: spec.name.to_string(),
                source: Box::new(error),
            }))),
        }
    }
    let outbox = &session.outbox;
    for (_, job) in &prepared {
        let event = outbox.event(
            EventKind::PackagingBegin,
            &job.spec,
            &job.staged.dir,
            None,
            EventDetail::None,
            "",
        );
        outbox.emit(job.submission_id, event).await;
    }
    if !prepared.is_empty() {
        let nonce = format!("slurmkit-{:016x}", rand::random::<u64>());
        let jobs: Vec<StagedJob> = prepared.iter().map(|(_, job)| job.staged.clone()).collect();
        let (command, input) = exchange::command(&nonce, &jobs);
        let reply = match session.conn.run(&command, &input).await {
            Ok(output) => exchange::reply(&nonce, jobs.len(), &output),
            Err(error) => exchange::Reply {
                home: None,
                staged: vec![false; jobs.len()],
                outcomes: jobs
                    .iter()
                    .map(|_| Outcome::Uncertain {
                        cause: crate::slurm::SlurmError::Command(error.clone()),
                    })
                    .collect(),
            },
        };
        if let Some(home) = reply.home.clone() {
            let key = session.target.key.clone();
            if let Err(e) = session
                .journal
                .run(move |j| j.set_remote_home(&key, &home))
                .await
            {
                tracing::debug!("cannot remember the remote home directory: {e}");
            }
        }
        for (((index, job), outcome), staged) in
            prepared.into_iter().zip(reply.outcomes).zip(reply.staged)
        {
            let result = settle(session, &job, outcome, staged).await;
            results[index] = Some(result.map_err(|error| match error {
                LifecycleError::NotRecorded { .. } => error,
                error => LifecycleError::Submit {
                    job: job.spec.name.to_string(),
                    source: Box::new(error),
                },
            }));
        }
    }
    results
        .into_iter()
        .map(|r| r.expect("every job has a result"))
        .collect()
}

/// Where job directories go, absolute: `job_base_dir` with `~/` (or a relative path) under the remote
/// home directory, which the journal remembers per cluster (asked for once, and refreshed by every
/// submission's reply).
async fn job_base_dir(session: &Session) -> Result<String, LifecycleError> {
    let configured = session.target.job_base_dir.clone();
    if configured.starts_with('/') {
        return Ok(configured.trim_end_matches('/').to_string());
    }
    let key = session.target.key.clone();
    let cached = session.journal.run(move |j| j.remote_home(&key)).await?;
    let home = match cached {
        Some(home) => home,
        None => {
            let command = ShellCommand::sh("print the home directory", r#"printf '%s' "$HOME""#);
            let output = session
                .conn
                .exec(&command)
                .await
                .map_err(crate::slurm::SlurmError::from)?
                .check(&command)
                .map_err(crate::slurm::SlurmError::from)?;
            let home = output.stdout_text();
            let key = session.target.key.clone();
            let remembered = home.clone();
            session
                .journal
                .run(move |j| j.set_remote_home(&key, &remembered))
                .await?;
            home
        }
    };
    let rest = configured
        .strip_prefix('~')
        .unwrap_or(&configured)
        .trim_start_matches('/')
        .trim_end_matches('/');
    let home = home.trim_end_matches('/');
    Ok(if rest.is_empty() {
        home.to_string()
    } else {
        format!("{home}/{rest}")
    })
}

/// Render one job into its directory-to-be and journal it as `submitting`.
async fn prepare(
    session: &Session,
    renderer: &Renderer,
    base: &str,
    spec: &JobSpec,
) -> Result<Prepared, LifecycleError> {
    let dir = format!("{base}/{}", job_dir_name(&spec.name, SystemTime::now()));
    let spec = spec.anchored_in(&dir);
    let script = renderer.render(&spec).await?;
    let spec_json = serde_json::to_vec_pretty(&spec).expect("a job spec always serializes");
    let (cluster, journaled_dir, journaled_spec) =
        (session.target.key.clone(), dir.clone(), spec.clone());
    let (provenance, routes) = (
        renderer.spec().provenance(),
        session.outbox.routes().to_vec(),
    );
    let submission_id = session
        .journal
        .run(move |j| {
            j.begin_submission(
                &cluster,
                &journaled_dir,
                &journaled_spec,
                &provenance,
                &routes,
            )
        })
        .await?;
    Ok(Prepared {
        submission_id,
        spec,
        staged: StagedJob {
            dir,
            files: vec![
                StagedFile {
                    name: SCRIPT_FILE,
                    mode: "750",
                    bytes: script.into_bytes(),
                },
                StagedFile {
                    name: SPEC_FILE,
                    mode: "640",
                    bytes: spec_json,
                },
            ],
        },
    })
}

/// Journal how one job's submission ended, with its events queued first.
async fn settle(
    session: &Session,
    job: &Prepared,
    outcome: Outcome,
    staged: bool,
) -> Result<Submitted, LifecycleError> {
    let (outbox, id, dir) = (&session.outbox, job.submission_id, job.staged.dir.clone());
    if staged || matches!(outcome, Outcome::Submitted(_) | Outcome::Refused { .. }) {
        for kind in [EventKind::PackagingEnd, EventKind::SubmitBegin] {
            let event = outbox.event(kind, &job.spec, &dir, None, EventDetail::None, "");
            outbox.emit(id, event).await;
        }
    }
    match outcome {
        Outcome::Submitted(job_id) => {
            let submitted = Submitted {
                submission_id: id,
                job_id,
                job_dir: dir,
            };
            record_submitted(session, &submitted, &job.spec).await?;
            Ok(submitted)
        }
        Outcome::Refused { status, message } => {
            let error = LifecycleError::Refused { status, message };
            let reason = error.to_string();
            session
                .journal
                .run(move |j| j.mark_rejected(id, &reason))
                .await?;
            Err(error)
        }
        Outcome::NotStaged { message } => {
            let reason = format!("staging failed: {message}");
            session
                .journal
                .run(move |j| j.mark_rejected(id, &reason))
                .await?;
            Err(LifecycleError::NotStaged {
                job_dir: dir,
                message,
            })
        }
        Outcome::Uncertain { cause } => Err(LifecycleError::SubmissionUncertain {
            job_dir: dir,
            cause,
        }),
    }
}

/// Queue `submitted`, then record the id. A journal that cannot be written does not lose the id: the
/// error carries it (and the job directory holds it for the next session).
async fn record_submitted(
    session: &Session,
    submitted: &Submitted,
    spec: &JobSpec,
) -> Result<(), LifecycleError> {
    let id = submitted.job_id.to_string();
    let event = session.outbox.event(
        EventKind::Submitted,
        spec,
        &submitted.job_dir,
        Some(&id),
        EventDetail::Submitted(id.clone()),
        "",
    );
    session.outbox.emit(submitted.submission_id, event).await;
    let (submission_id, job_id) = (submitted.submission_id, submitted.job_id.clone());
    session
        .journal
        .run(move |j| j.mark_submitted(submission_id, &job_id))
        .await
        .map_err(|source| LifecycleError::NotRecorded {
            job_id: submitted.job_id.clone(),
            source,
        })
}

/// A `submitting` record younger than this may belong to a submission still under way elsewhere.
const GRACE_MS: i64 = 2 * 60 * 1000;

/// Resolve submissions whose job id never came back: from what sbatch wrote into their job
/// directories (one exec for all), then, for those interrupted before an id was written, from Slurm
/// (one more exec). Problems with one record are logged and do not stop the others.
pub async fn reconcile(session: &Session) -> Result<Vec<Submitted>, LifecycleError> {
    let key = session.target.key.clone();
    let pending = session.journal.run(move |j| j.unresolved(&key)).await?;
    if pending.is_empty() {
        return Ok(Vec::new());
    }
    let nonce = format!("slurmkit-{:016x}", rand::random::<u64>());
    let dirs: Vec<String> = pending.iter().map(|s| s.job_dir.clone()).collect();
    let states = recover::probe_dirs(&session.conn, &nonce, &dirs).await?;
    let mut resolved = Vec::new();
    let mut ask_slurm: Vec<&Submission> = Vec::new();
    for (submission, state) in pending.iter().zip(states) {
        let old = now_ms() - submission.created_ms > GRACE_MS;
        let id = submission.id;
        match state {
            DirState::Submitted(job_id) => {
                resolved.push(recovered(session, submission, job_id).await?);
            }
            DirState::Missing if old => {
                session
                    .journal
                    .run(move |j| j.mark_rejected(id, "its job directory no longer exists"))
                    .await?;
            }
            DirState::NoId if old => {
                session
                    .journal
                    .run(move |j| j.mark_rejected(id, "staging was interrupted: sbatch never ran"))
                    .await?;
            }
            DirState::Pending if old => ask_slurm.push(submission),
            _ => {}
        }
    }
    if ask_slurm.is_empty() {
        return Ok(resolved);
    }
    let wanted: Vec<Wanted> = ask_slurm
        .iter()
        .map(|s| Wanted {
            name: &s.job_name,
            dir: &s.job_dir,
        })
        .collect();
    let found = recover::find_in_slurm(&session.conn, &wanted).await?;
    for (submission, found) in ask_slurm.into_iter().zip(found) {
        match found {
            Some(job_id) => resolved.push(recovered(session, submission, job_id).await?),
            None => {
                let id = submission.id;
                let why = format!(
                    "sbatch was interrupted before it printed an id, and Slurm knows no job {} whose script is {}/{SCRIPT_FILE}: it was most likely never queued",
                    submission.job_name, submission.job_dir
                );
                tracing::warn!(
                    "submission of {} left unresolved: {why}",
                    submission.job_dir
                );
                session
                    .journal
                    .run(move |j| j.mark_unknown(id, &why))
                    .await?;
            }
        }
    }
    Ok(resolved)
}

async fn recovered(
    session: &Session,
    submission: &Submission,
    job_id: JobId,
) -> Result<Submitted, LifecycleError> {
    let submitted = Submitted {
        submission_id: submission.id,
        job_id,
        job_dir: submission.job_dir.clone(),
    };
    record_submitted(session, &submitted, &submission.spec).await?;
    tracing::warn!(
        "recovered job {} ({}) whose submission was interrupted; it is journaled now",
        submitted.job_id,
        submitted.job_dir
    );
    Ok(submitted)
}
