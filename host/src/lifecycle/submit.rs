//! Submitting jobs.
//!
//! Any number of jobs go out in one exchange ([`crate::slurm::submit`]): passed through the site
//! policies, rendered, then journaled together (`submitting`, with each job directory's absolute path
//! and the policies that passed it), then staged and submitted by one remote command, then journaled
//! again together with their ids. A job whose reply is lost stays `submitting`; the next session finds
//! its id in its directory, or asks Slurm for it, or says it could not find out ([`super::reconcile`]).

use std::time::SystemTime;

use super::LifecycleError;
use super::after::{dependencies, dependency_name, earlier_submissions};
use super::event::{EventDetail, HostEvent};
use super::outbox::queue;
use super::session::Session;
use super::stage;
use super::upload;
use crate::journal::{CallbackRoute, Journal, JournalError, PolicyRecord};
use crate::plugin::policy::{Policed, Policies};
use crate::plugin::renderer::Renderer;
use crate::slurm::SlurmError;
use crate::slurm::submit::{self as exchange, Outcome, StagedJob};
use crate::types::job_dir::job_dir_name;
use crate::types::names::JobId;
use crate::types::spec::JobSpec;
use crate::wit::EventKind;

/// A job that `sbatch` accepted.
#[derive(Debug, Clone)]
pub struct Submitted {
    pub submission_id: i64,
    pub job_id: JobId,
    pub job_dir: String,
}

/// A job rendered into its directory-to-be, then journaled.
struct Prepared {
    /// Its place among the jobs asked for.
    index: usize,
    submission_id: i64,
    spec: JobSpec,
    dir: String,
    staged: StagedJob,
}

/// A job rendered into its directory-to-be.
struct Rendered {
    index: usize,
    spec: JobSpec,
    /// The site policies that passed it.
    policies: Vec<PolicyRecord>,
    dir_name: String,
    dir: String,
    /// The renderer's script with slurmkit's prologue.
    script: String,
    /// What it runs after, for the exchange (`-`, or sbatch's syntax with `@<directory>`).
    after: String,
}

/// What to journal about one job once sbatch answered: its events, then its new state (none: it stays
/// `submitting`).
struct JournalWrite {
    submission_id: i64,
    events: Vec<HostEvent>,
    state: Option<NewState>,
}

enum NewState {
    Submitted(JobId),
    Rejected(String),
}

type JobResult = Result<Submitted, LifecycleError>;

fn failed(spec: &JobSpec, error: LifecycleError) -> JobResult {
    match error {
        // The job is queued: its id goes out with the error.
        LifecycleError::NotRecorded { .. } => Err(error),
        error => Err(LifecycleError::Submit {
            job: spec.name.to_string(),
            source: Box::new(error),
        }),
    }
}

/// Pass `specs` through the site policies, then render, journal and submit them over the session's
/// connection, in one exchange; then tell the policies the ids. One result per spec, in order: one
/// refused job never loses the others.
pub async fn submit(
    session: &Session,
    renderer: &Renderer,
    policies: &Policies,
    specs: &[JobSpec],
) -> Vec<JobResult> {
    let mut results: Vec<Option<JobResult>> = specs.iter().map(|_| None).collect();
    // The policies first: a job one refuses is not rendered or journaled, and nothing of it is sent.
    let mut policed: Vec<Option<Policed>> = Vec::with_capacity(specs.len());
    for (index, spec) in specs.iter().enumerate() {
        match policies.apply(spec).await {
            Ok(passed) => policed.push(Some(passed)),
            Err(error) => {
                results[index] = Some(failed(spec, error.into()));
                policed.push(None);
            }
        }
    }
    if policed.iter().all(Option::is_none) {
        return finished(results);
    }
    let base = match upload::job_base_dir(session).await {
        Ok(base) => base,
        Err(error) => {
            let message = error.to_string();
            let not_staged = || LifecycleError::NotStaged {
                job_dir: session.target.job_base_dir.clone(),
                message: message.clone(),
            };
            return specs
                .iter()
                .zip(results)
                .map(|(spec, result)| result.unwrap_or_else(|| failed(spec, not_staged())))
                .collect();
        }
    };
    // The node-side runner, when a callback takes run events; without it jobs still run.
    let node = match super::runner::prepare(session, &base).await {
        Ok(node) => node,
        Err(error) => {
            tracing::warn!(
                "the node-side runner could not be uploaded, so these jobs run without it (no run-begin/run-end events): {error}"
            );
            None
        }
    };
    // Directory names first: a job's prologue names the directories of the jobs it runs after. Unique
    // in this batch too: two jobs of the same name in the same second may draw the same suffix.
    let mut dir_names: Vec<String> = Vec::with_capacity(specs.len());
    for (spec, passed) in specs.iter().zip(&policed) {
        let spec = passed.as_ref().map_or(spec, |p| &p.spec);
        let name = loop {
            let name = job_dir_name(&spec.name, SystemTime::now());
            if !dir_names.contains(&name) {
                break name;
            }
        };
        dir_names.push(name);
    }
    let earlier = earlier_submissions(session, specs).await;
    // Render every job before anything is recorded or created: a renderer that refuses a job leaves
    // no trace of it.
    let mut rendered: Vec<Rendered> = Vec::new();
    for (index, passed) in policed.into_iter().enumerate() {
        let Some(Policed { spec, policies }) = passed else {
            continue;
        };
        let dir_name = dir_names[index].clone();
        let dir = format!("{base}/{dir_name}");
        let spec = spec.anchored_in(&dir);
        let resolved = dependencies(index, &spec, specs, &dir_names, &base, &earlier, &results);
        let (dependency_dirs, after) = match resolved {
            Ok(resolved) => resolved,
            Err(error) => {
                results[index] = Some(failed(&spec, error));
                continue;
            }
        };
        let script = match renderer.render(&spec).await {
            Ok(script) => script,
            Err(error) => {
                results[index] = Some(failed(&spec, error.into()));
                continue;
            }
        };
        let prologue = stage::prologue(&spec, &dependency_dirs, node.as_ref().map(|n| &n.runner));
        match stage::with_prologue(spec.name.as_str(), &script, &prologue) {
            Ok(script) => rendered.push(Rendered {
                index,
                spec,
                policies,
                dir_name,
                dir,
                script,
                after,
            }),
            Err(error) => results[index] = Some(failed(&spec, error)),
        }
    }
    // Journal them all as `submitting` before anything is sent: a job that reaches sbatch is always on
    // record.
    let node_plan = node.as_ref().map(|n| n.plan.as_slice());
    let prepared = match journal_all(session, renderer, rendered, node_plan).await {
        Ok(prepared) => prepared,
        Err(unrecorded) => {
            for (job, error) in unrecorded {
                results[job.index] = Some(failed(&job.spec, error));
            }
            Vec::new()
        }
    };
    if !prepared.is_empty() {
        let nonce = format!("slurmkit-{:016x}", rand::random::<u64>());
        let jobs: Vec<StagedJob> = prepared.iter().map(|job| job.staged.clone()).collect();
        let count = jobs.len();
        let command = exchange::command(&nonce, &base, &jobs);
        let reply = match upload::send(session, &base, &command, jobs).await {
            (Ok(output), Ok(())) => exchange::reply(&nonce, count, &output),
            // The stream broke off (an input unreadable or changed on the way): the script saw no
            // end mark and submitted nothing, which its reply says; the cause is ours to tell.
            (Ok(output), Err(error)) => {
                let mut reply = exchange::reply(&nonce, count, &output);
                for outcome in &mut reply.outcomes {
                    if let Outcome::NotStaged { message } = outcome {
                        *message = format!("the inputs could not be sent ({error}): {message}");
                    }
                }
                reply
            }
            (Err(error), _) => exchange::Reply {
                home: None,
                staged: vec![false; count],
                outcomes: (0..count)
                    .map(|_| Outcome::Uncertain {
                        cause: SlurmError::Command(error.clone()),
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
        let sent: Vec<(usize, JobSpec)> = prepared
            .iter()
            .map(|job| (job.index, job.spec.clone()))
            .collect();
        for (index, result) in settle_all(session, prepared, reply).await {
            // The policies see each id sbatch returned; nothing they do changes the job now.
            let job_id = match &result {
                Ok(job) => Some(&job.job_id),
                Err(LifecycleError::NotRecorded { job_id, .. }) => Some(job_id),
                Err(_) => None,
            };
            if let (Some(job_id), Some((_, spec))) =
                (job_id, sent.iter().find(|(i, _)| *i == index))
            {
                policies.post_submit(spec, job_id.as_str()).await;
            }
            results[index] = Some(result);
        }
    }
    finished(results)
}

fn finished(results: Vec<Option<JobResult>>) -> Vec<JobResult> {
    results
        .into_iter()
        .map(|r| r.expect("every job has a result"))
        .collect()
}

/// Journal rendered jobs as `submitting`, with `packaging-begin` queued, in one transaction. If it
/// cannot be written, none of them is sent.
async fn journal_all(
    session: &Session,
    renderer: &Renderer,
    rendered: Vec<Rendered>,
    node_plan: Option<&[u8]>,
) -> Result<Vec<Prepared>, Vec<(Rendered, LifecycleError)>> {
    let cluster = session.target.key.clone();
    let provenance = renderer.spec().provenance();
    let routes = session.outbox.routes().to_vec();
    let events: Vec<HostEvent> = rendered
        .iter()
        .map(|job| {
            session.outbox.event(
                EventKind::PackagingBegin,
                &job.spec,
                &job.dir,
                None,
                EventDetail::None,
                "",
            )
        })
        .collect();
    let records: Vec<(JobSpec, String, Vec<PolicyRecord>)> = rendered
        .iter()
        .map(|job| (job.spec.clone(), job.dir.clone(), job.policies.clone()))
        .collect();
    let journaled = session
        .journal
        .run(move |j| {
            j.batch(|j| {
                records
                    .iter()
                    .zip(&events)
                    .map(|((spec, dir, policies), event)| {
                        let id = j.begin_submission(&cluster, dir, spec, &provenance, &routes)?;
                        if !policies.is_empty() {
                            j.record_policies(id, policies)?;
                        }
                        queue(j, id, &routes, event);
                        Ok(id)
                    })
                    .collect::<Result<Vec<i64>, JournalError>>()
            })
        })
        .await;
    match journaled {
        Ok(ids) => Ok(rendered
            .into_iter()
            .zip(ids)
            .map(|(job, submission_id)| {
                let staged =
                    stage::staged_job(&job.dir_name, job.script, &job.spec, job.after, node_plan);
                Prepared {
                    index: job.index,
                    submission_id,
                    spec: job.spec,
                    dir: job.dir,
                    staged,
                }
            })
            .collect()),
        Err(error) => {
            let message = error.to_string();
            Err(rendered
                .into_iter()
                .map(|job| (job, JournalError::Failed(message.clone()).into()))
                .collect())
        }
    }
}

/// How one job ended, to be journaled.
enum Settled {
    Submitted(JobId),
    Rejected(LifecycleError),
    /// Left `submitting`, for the next session to resolve.
    Open(LifecycleError),
}

/// Journal how each job's submission ended, every job's events queued before its new state, in one
/// transaction. A journal that cannot be written does not lose an id: the error carries it (and the
/// job directory holds it for the next session).
async fn settle_all(
    session: &Session,
    prepared: Vec<Prepared>,
    reply: exchange::Reply,
) -> Vec<(usize, JobResult)> {
    let routes = session.outbox.routes().to_vec();
    let mut plans = Vec::new();
    for ((job, outcome), staged) in prepared.into_iter().zip(reply.outcomes).zip(reply.staged) {
        let outbox = &session.outbox;
        let mut events = Vec::new();
        if staged {
            for kind in [EventKind::PackagingEnd, EventKind::SubmitBegin] {
                events.push(outbox.event(kind, &job.spec, &job.dir, None, EventDetail::None, ""));
            }
        }
        let settled = match outcome {
            Outcome::Submitted(job_id) => {
                let id = job_id.to_string();
                events.push(outbox.event(
                    EventKind::Submitted,
                    &job.spec,
                    &job.dir,
                    Some(&id),
                    EventDetail::Submitted(id.clone()),
                    "",
                ));
                Settled::Submitted(job_id)
            }
            Outcome::Refused { status, message } => {
                Settled::Rejected(LifecycleError::Refused { status, message })
            }
            Outcome::NotStaged { message } => Settled::Rejected(LifecycleError::NotStaged {
                job_dir: job.dir.clone(),
                message,
            }),
            Outcome::Blocked { dependency } => {
                let name = dependency_name(&dependency);
                Settled::Rejected(LifecycleError::DependencyNotSubmitted { dependency: name })
            }
            Outcome::Uncertain { cause } => Settled::Open(LifecycleError::SubmissionUncertain {
                job_dir: job.dir.clone(),
                cause,
            }),
        };
        plans.push((job, events, settled));
    }
    let writes: Vec<JournalWrite> = plans
        .iter()
        .map(|(job, events, settled)| JournalWrite {
            submission_id: job.submission_id,
            events: events.clone(),
            state: match settled {
                Settled::Submitted(id) => Some(NewState::Submitted(id.clone())),
                Settled::Rejected(LifecycleError::NotStaged { message, .. }) => {
                    Some(NewState::Rejected(format!("staging failed: {message}")))
                }
                Settled::Rejected(error) => Some(NewState::Rejected(error.to_string())),
                Settled::Open(_) => None,
            },
        })
        .collect();
    let written = session
        .journal
        .run(move |j| j.batch(|j| Ok(write_outcomes(j, &routes, &writes))))
        .await;
    plans
        .into_iter()
        .enumerate()
        .map(|(n, (job, _, settled))| {
            let recorded = match &written {
                Ok(each) => each[n].as_ref().map_err(|e| e.to_string()).err(),
                Err(e) => Some(e.to_string()),
            };
            let result = match (settled, recorded) {
                (Settled::Submitted(job_id), None) => Ok(Submitted {
                    submission_id: job.submission_id,
                    job_id,
                    job_dir: job.dir,
                }),
                (Settled::Submitted(job_id), Some(message)) => Err(LifecycleError::NotRecorded {
                    job_id,
                    source: JournalError::Failed(message),
                }),
                (Settled::Rejected(error) | Settled::Open(error), _) => Err(error),
            };
            (job.index, result.or_else(|error| failed(&job.spec, error)))
        })
        .collect()
}

/// Within one journal transaction: each job's events, then its new state.
fn write_outcomes(
    journal: &Journal,
    routes: &[CallbackRoute],
    writes: &[JournalWrite],
) -> Vec<Result<(), JournalError>> {
    writes
        .iter()
        .map(|write| {
            let id = write.submission_id;
            for event in &write.events {
                queue(journal, id, routes, event);
            }
            match &write.state {
                Some(NewState::Submitted(job_id)) => journal.mark_submitted(id, job_id),
                Some(NewState::Rejected(why)) => journal.mark_rejected(id, why),
                None => Ok(()),
            }
        })
        .collect()
}
