//! Submitting jobs.
//!
//! Any number of jobs go out in one exchange ([`crate::slurm::submit`]): passed through the site
//! policies, rendered, then journaled together (`submitting`, with each job directory's absolute path
//! and the policies that passed it), then staged and submitted by one remote command, then journaled
//! again together with their ids. A job whose reply is lost stays `submitting`; the next session finds
//! its id in its directory, or asks Slurm for it, or says it could not find out ([`super::reconcile`]).

use super::LifecycleError;
use super::after::{dependency_name, earlier_submissions};
use super::event::{EventDetail, HostEvent};
use super::outbox::queue;
use super::render::{Context, Rendered, render_all};
use super::session::Session;
use super::split;
use super::stage;
use super::upload;
use crate::journal::{CallbackRoute, Group, Journal, JournalError, PolicyRecord};
use crate::plugin::policy::{Policed, Policies};
use crate::plugin::renderer::Renderer;
use crate::slurm::SlurmError;
use crate::slurm::submit::{self as exchange, Outcome, StagedJob};
use crate::types::names::JobId;
use crate::types::spec::JobSpec;
use crate::wit::EventKind;

/// A job that `sbatch` accepted.
#[derive(Debug, Clone)]
pub struct Submitted {
    pub submission_id: i64,
    pub job_id: JobId,
    pub job_dir: String,
    /// The later parts of an array split at the cluster's MaxArraySize that were queued.
    pub parts: Vec<JobId>,
    /// The later parts that were not: each failure's exit code and message.
    pub parts_failed: Vec<(u8, String)>,
}

/// A job rendered into its directory-to-be, then journaled.
struct Prepared {
    /// Its place among the jobs asked for.
    index: usize,
    /// Whether it is a later part of a split array (whose first part is at the same index).
    is_part: bool,
    submission_id: i64,
    spec: JobSpec,
    dir: String,
    staged: StagedJob,
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
    let earlier = earlier_submissions(session, specs).await;
    // Arrays of items larger than one array may be are split: the cluster says how large, when asked.
    let array_limit = match split::array_limit(session, specs).await {
        Ok(limit) => limit,
        Err(error) => {
            tracing::warn!("cannot read the cluster's MaxArraySize, so no array is split: {error}");
            session.target.max_array_size
        }
    };
    let context = Context {
        base: &base,
        runner: node.as_ref().map(|n| &n.runner),
        array_limit,
        earlier: &earlier,
    };
    // Render every job before anything is recorded or created: a renderer that refuses a job leaves
    // no trace of it.
    let rendered = render_all(renderer, specs, policed, &context, &mut results, failed).await;
    let workflow = workflow_of(specs, &rendered);
    // Journal them all as `submitting` before anything is sent: a job that reaches sbatch is always on
    // record.
    let node_plan = node.as_ref().map(|n| n.plan.as_slice());
    let journaled = journal_all(session, renderer, rendered, node_plan, workflow.as_deref());
    let prepared = match journaled.await {
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
        for (index, is_part, result) in
            settle_all(session, prepared, reply, workflow.as_deref()).await
        {
            // A later part adds its id to its first part's, or says why it is missing.
            if is_part {
                match (&mut results[index], result) {
                    (Some(Ok(first)), Ok(part)) => first.parts.push(part.job_id),
                    (Some(Ok(first)), Err(error)) => {
                        let code = crate::error::Diagnose::exit_code(&error);
                        first.parts_failed.push((code, error.to_string()));
                    }
                    (_, Err(error)) => {
                        tracing::error!("a part of a split array was not submitted: {error}")
                    }
                    (_, Ok(part)) => tracing::error!(
                        "job {} was queued as a part of an array whose first part was not",
                        part.job_id
                    ),
                }
                continue;
            }
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

/// The job directory of a workflow's last job, when the batch is a workflow: some job runs after
/// another job of the batch. The last job asked for is the workflow's: its submission carries the
/// `workflow-*` events (when it was rendered; without it there is no workflow to speak of).
fn workflow_of(specs: &[JobSpec], rendered: &[Rendered]) -> Option<String> {
    let linked = specs.iter().any(|spec| {
        spec.after
            .iter()
            .any(|after| specs.iter().any(|s| s.entry.as_ref() == Some(&after.job)))
    });
    let last = rendered.iter().rev().find(|r| r.part.is_none())?;
    (linked && last.index + 1 == specs.len()).then(|| last.dir.clone())
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
    workflow: Option<&str>,
) -> Result<Vec<Prepared>, Vec<(Rendered, LifecycleError)>> {
    let cluster = session.target.key.clone();
    let provenance = renderer.spec().provenance();
    let routes = session.outbox.routes().to_vec();
    let events: Vec<Vec<HostEvent>> = rendered
        .iter()
        .map(|job| {
            let event = |kind| {
                let (detail, dir) = (EventDetail::None, &job.dir);
                session.outbox.event(kind, &job.spec, dir, None, detail, "")
            };
            let mut events = vec![event(EventKind::PackagingBegin)];
            if workflow == Some(job.dir.as_str()) {
                events.insert(0, event(EventKind::WorkflowBegin));
            }
            events
        })
        .collect();
    let records: Vec<(JobSpec, String, Vec<PolicyRecord>, Group)> = rendered
        .iter()
        .map(|job| {
            let group = Group {
                workflow: workflow.map(str::to_string),
                part_of: job.part.as_ref().map(|(first, _)| first.clone()),
                offset: job.part.as_ref().map(|(_, offset)| *offset),
            };
            let (spec, dir) = (job.spec.clone(), job.dir.clone());
            (spec, dir, job.policies.clone(), group)
        })
        .collect();
    let journaled = session
        .journal
        .run(move |j| {
            j.batch(|j| {
                records
                    .iter()
                    .zip(&events)
                    .map(|((spec, dir, policies, group), events)| {
                        let id = j.begin_submission(&cluster, dir, spec, &provenance, &routes)?;
                        if !policies.is_empty() {
                            j.record_policies(id, policies)?;
                        }
                        if *group != Group::default() {
                            j.record_group(id, group)?;
                        }
                        for event in events {
                            queue(j, id, &routes, event);
                        }
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
                let staged = if job.part.is_some() {
                    stage::staged_part(&job.dir_name, job.script, &job.spec, job.after)
                } else {
                    let (name, spec, parts) = (&job.dir_name, &job.spec, job.has_parts);
                    stage::staged_job(name, job.script, spec, job.after, node_plan, parts)
                };
                Prepared {
                    index: job.index,
                    is_part: job.part.is_some(),
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
    workflow: Option<&str>,
) -> Vec<(usize, bool, JobResult)> {
    let routes = session.outbox.routes().to_vec();
    let mut plans = Vec::new();
    let mut tasks = Vec::new();
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
                let name = job.spec.entry.as_ref().map_or(&job.spec.name, |e| e);
                tasks.push((name.to_string(), id, job.staged.dir_name.clone()));
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
    // Each job of a workflow that was queued, told on the workflow's own submission.
    if let Some((last, events, _)) = plans
        .iter_mut()
        .find(|(job, ..)| Some(job.dir.as_str()) == workflow)
    {
        for (name, job_id, dir_name) in tasks {
            let detail = EventDetail::WorkflowTask { name, job_id };
            let (kind, suffix) = (EventKind::WorkflowTaskSubmitted, format!(":{dir_name}"));
            events.push(
                session
                    .outbox
                    .event(kind, &last.spec, &last.dir, None, detail, &suffix),
            );
        }
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
                    parts: Vec::new(),
                    parts_failed: Vec::new(),
                }),
                (Settled::Submitted(job_id), Some(message)) => Err(LifecycleError::NotRecorded {
                    job_id,
                    source: JournalError::Failed(message),
                }),
                (Settled::Rejected(error) | Settled::Open(error), _) => Err(error),
            };
            let result = result.or_else(|error| failed(&job.spec, error));
            (job.index, job.is_part, result)
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
