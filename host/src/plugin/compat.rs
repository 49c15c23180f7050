//! Components built against an older accepted WIT version: the host speaks the newest one and converts
//! at the boundary. A record going to an older component loses the fields added since (an 0.1 renderer
//! never sees `inputs`; the host stages them whatever the renderer); what comes back is mapped to the
//! newest types. The one exception is what only the renderer can carry out: a job with a `container`
//! is refused by an 0.1 renderer ([`missing_from_v1`]) rather than run outside its container. A
//! callback only observes, so an 0.1 callback sees the job without it.

use crate::wit::v0_1_0::types as v1;
use crate::wit::v0_2_0::types as v2;

/// Enums with the same variants in both versions.
macro_rules! same_enum {
    ($from:ty => $to:ty, [$($variant:ident),* $(,)?]) => {
        impl From<Same<$from>> for $to {
            fn from(value: Same<$from>) -> $to {
                match value.0 {
                    $(<$from>::$variant => <$to>::$variant,)*
                }
            }
        }
    };
}

/// A value to convert between versions (a local type, so `From` can be implemented for the
/// generated types of both).
pub struct Same<T>(pub T);

same_enum!(v2::DependencyKind => v1::DependencyKind, [After, AfterAny, AfterOk, AfterNotOk, AfterCorr, Singleton]);
same_enum!(v2::Emitter => v1::Emitter, [Client, ComputeNode]);
same_enum!(v2::JobState => v1::JobState, [
    Pending, Configuring, Running, Completing, Suspended, Requeued, Completed, Failed, Cancelled,
    Timeout, OutOfMemory, NodeFail, Preempted, BootFail, Deadline, Unknown,
]);
same_enum!(v2::EventKind => v1::EventKind, [
    PackagingBegin, PackagingEnd, SubmitBegin, Submitted, StatusChanged, RunBegin, RunEnd, Completed,
    Failed, WorkflowBegin, WorkflowEnd, WorkflowTaskSubmitted, OutputsFetched,
]);
same_enum!(v1::EventKind => v2::EventKind, [
    PackagingBegin, PackagingEnd, SubmitBegin, Submitted, StatusChanged, RunBegin, RunEnd, Completed,
    Failed, WorkflowBegin, WorkflowEnd, WorkflowTaskSubmitted, OutputsFetched,
]);

/// What of `job` an 0.1 renderer cannot carry out, if anything: the fields whose meaning lives in the
/// script (the host handles `inputs`, `outputs`, `args`, items and `after` itself, whatever the
/// renderer writes), in words for the refusal.
pub fn missing_from_v1(job: &v2::Job) -> Option<&'static str> {
    job.container.is_some().then_some("containers")
}

/// A job for an 0.1 component: everything but what 0.2 added.
pub fn job_v1(job: &v2::Job) -> v1::Job {
    v1::Job {
        name: job.name.clone(),
        payload: match &job.payload {
            v2::Payload::Command(argv) => v1::Payload::Command(argv.clone()),
            v2::Payload::Script(body) => v1::Payload::Script(body.clone()),
        },
        working_dir: job.working_dir.clone(),
        environment: job.environment.clone(),
        modules: job.modules.clone(),
        partition: job.partition.clone(),
        account: job.account.clone(),
        qos: job.qos.clone(),
        reservation: job.reservation.clone(),
        time_limit_seconds: job.time_limit_seconds,
        nodes: job.nodes.map(|n| v1::NodeCount {
            min: n.min,
            max: n.max,
        }),
        ntasks: job.ntasks,
        ntasks_per_node: job.ntasks_per_node,
        cpus_per_task: job.cpus_per_task,
        memory_mb: job.memory_mb,
        mem_per_cpu_mb: job.mem_per_cpu_mb,
        gpus: job.gpus.clone(),
        gres: job.gres.clone(),
        constraint: job.constraint.clone(),
        exclusive: job.exclusive,
        array: job.array.clone(),
        dependencies: job
            .dependencies
            .iter()
            .map(|d| v1::Dependency {
                kind: Same(d.kind).into(),
                job_ids: d.job_ids.clone(),
            })
            .collect(),
        output: job.output.clone(),
        error: job.error.clone(),
        extra_directives: job.extra_directives.clone(),
    }
}

fn status_v1(status: &v2::JobStatus) -> v1::JobStatus {
    v1::JobStatus {
        state: Same(status.state).into(),
        exit_code: status.exit_code,
        signal: status.signal,
        reason: status.reason.clone(),
    }
}

/// An event for an 0.1 component (without where on the cluster it happened).
pub fn event_v1(event: &v2::Event) -> v1::Event {
    v1::Event {
        id: event.id.clone(),
        kind: Same(event.kind).into(),
        job: job_v1(&event.job),
        cluster: event.cluster.clone(),
        job_id: event.job_id.clone(),
        job_dir: event.job_dir.clone(),
        emitted_by: Same(event.emitted_by).into(),
        timestamp_ms: event.timestamp_ms,
        detail: match &event.detail {
            v2::EventDetail::None => v1::EventDetail::None,
            v2::EventDetail::Submitted(id) => v1::EventDetail::Submitted(id.clone()),
            v2::EventDetail::Status(change) => v1::EventDetail::Status(v1::StatusChange {
                previous: change.previous.as_ref().map(status_v1),
                current: status_v1(&change.current),
                terminal: change.terminal,
            }),
            v2::EventDetail::WorkflowTask(task) => {
                v1::EventDetail::WorkflowTask(v1::WorkflowTask {
                    task_name: task.task_name.clone(),
                    task_job_id: task.task_job_id.clone(),
                })
            }
            v2::EventDetail::Outputs(paths) => v1::EventDetail::Outputs(paths.clone()),
            // 0.1.x has no record of how a run ended.
            v2::EventDetail::Run(_) => v1::EventDetail::None,
        },
    }
}

/// An 0.1 renderer's refusal, in the newest terms.
pub fn render_error(error: v1::RenderError) -> v2::RenderError {
    let field = |f: v1::FieldError| v2::FieldError {
        field: f.field,
        message: f.message,
    };
    match error {
        v1::RenderError::InvalidField(f) => v2::RenderError::InvalidField(field(f)),
        v1::RenderError::Unsupported(f) => v2::RenderError::Unsupported(field(f)),
        v1::RenderError::Other(message) => v2::RenderError::Other(message),
    }
}

/// An 0.1 callback's error, in the newest terms.
pub fn callback_error(error: v1::CallbackError) -> v2::CallbackError {
    v2::CallbackError {
        message: error.message,
        retryable: error.retryable,
    }
}
