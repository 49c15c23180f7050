//! The job record plugins see, from the host's validated spec. Enums (job states, event and dependency
//! kinds) need no conversion: the host uses the WIT's own types.

use crate::types::spec::{JobSpec, Payload};
use crate::wit::latest::types as wit;

/// The job record a renderer or callback sees.
pub fn job_to_wit(spec: &JobSpec) -> wit::Job {
    let string = |v: Option<&str>| v.map(str::to_string);
    wit::Job {
        name: spec.name.to_string(),
        payload: match &spec.payload {
            Payload::Command(argv) => wit::Payload::Command(argv.clone()),
            Payload::Script(body) => wit::Payload::Script(body.clone()),
        },
        working_dir: string(spec.working_dir.as_ref().map(|d| d.as_str())),
        environment: spec
            .environment
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        modules: spec.modules.clone(),
        partition: string(spec.partition.as_ref().map(|v| v.as_str())),
        account: string(spec.account.as_ref().map(|v| v.as_str())),
        qos: string(spec.qos.as_ref().map(|v| v.as_str())),
        reservation: string(spec.reservation.as_ref().map(|v| v.as_str())),
        time_limit_seconds: spec.time_limit.map(|t| t.seconds()),
        nodes: spec.nodes.map(|n| wit::NodeCount {
            min: n.min,
            max: n.max,
        }),
        ntasks: spec.ntasks,
        ntasks_per_node: spec.ntasks_per_node,
        cpus_per_task: spec.cpus_per_task,
        memory_mb: spec.memory.map(|m| m.mebibytes()),
        mem_per_cpu_mb: spec.mem_per_cpu.map(|m| m.mebibytes()),
        gpus: string(spec.gpus.as_ref().map(|v| v.as_str())),
        gres: string(spec.gres.as_ref().map(|v| v.as_str())),
        constraint: string(spec.constraint.as_ref().map(|v| v.as_str())),
        exclusive: spec.exclusive,
        array: string(spec.array.as_ref().map(|v| v.as_str())),
        dependencies: spec
            .dependencies
            .iter()
            .map(|d| wit::Dependency {
                kind: d.kind,
                job_ids: d.job_ids.iter().map(|id| id.to_string()).collect(),
            })
            .collect(),
        output: Some(spec.stdout_pattern().to_string()),
        error: Some(spec.stderr_pattern().to_string()),
        extra_directives: spec.extra_directives.clone(),
        inputs: spec
            .inputs
            .iter()
            .map(|i| i.to.as_str().to_string())
            .collect(),
        outputs: spec
            .outputs
            .iter()
            .map(|o| o.as_str().to_string())
            .collect(),
        args: spec.args.to_string(),
        item_count: u32::try_from(spec.items.len()).unwrap_or(u32::MAX),
        after: spec.after.iter().map(|a| a.job.to_string()).collect(),
        container: spec.container.as_ref().map(|c| wit::Container {
            image: c.image.as_str().to_string(),
            mounts: c.mounts.iter().map(|m| m.as_str().to_string()).collect(),
            runtime: c.runtime,
            workdir: c.workdir.as_ref().map(|w| w.as_str().to_string()),
        }),
    }
}
