//! The job record plugins see, from the host's validated spec, and back ([`job_from_wit`], for what a
//! site policy returns): every value checked again by the rule that checks it in a Slurmfile. Enums
//! (job states, event and dependency kinds) need no conversion: the host uses the WIT's own types.

use std::collections::BTreeMap;

use crate::types::container::{Container, ContainerImage, ContainerPath, Mount};
use crate::types::names::{
    self as validate, Account, InvalidValue, JobId, JobName, Partition, Qos, Reservation,
};
use crate::types::spec::{ArraySpec, Dependency, DirectiveText, JobSpec, Payload};
use crate::types::units::{Memory, NodeCount, TimeLimit};
use crate::types::work::{MAX_ARGS_BYTES, RelativeGlob};
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

/// Why a job record a plugin returned cannot be used: the field (as the WIT names it, e.g.
/// `environment[2].name`) and the rule it breaks.
#[derive(Debug, thiserror::Error)]
pub enum AmendError {
    #[error("{source}")]
    Invalid { field: String, source: InvalidValue },
    #[error("{field} cannot be changed by a policy: {why}")]
    ReadOnly {
        field: &'static str,
        why: &'static str,
    },
}

impl AmendError {
    /// The field at fault.
    pub fn field(&self) -> &str {
        match self {
            AmendError::Invalid { field, .. } => field,
            AmendError::ReadOnly { field, .. } => field,
        }
    }
}

/// `check(value)` for `field`, its error naming the field.
fn checked<T>(field: impl Into<String>, result: Result<T, InvalidValue>) -> Result<T, AmendError> {
    result.map_err(|source| AmendError::Invalid {
        field: field.into(),
        source,
    })
}

fn opt<T>(
    field: &str,
    value: &Option<String>,
    parse: impl Fn(&str) -> Result<T, InvalidValue>,
) -> Result<Option<T>, AmendError> {
    value
        .as_deref()
        .map(|v| checked(field, parse(v)))
        .transpose()
}

/// The spec `returned` describes, from `base` (the spec that was sent as `sent`). Every value is
/// checked as a Slurmfile's would be; what only the host knows (the inputs' files here, the items, the
/// jobs it runs after) must come back unchanged. An `output` or `error` left as the host filled it in
/// stays the host's default.
pub fn job_from_wit(
    base: &JobSpec,
    sent: &wit::Job,
    returned: &wit::Job,
) -> Result<JobSpec, AmendError> {
    let read_only = |field, why| Err(AmendError::ReadOnly { field, why });
    if returned.inputs != sent.inputs {
        return read_only("inputs", "the host stages them from the Slurmfile's files");
    }
    if returned.item_count != sent.item_count {
        return read_only("item-count", "the items come from the Slurmfile");
    }
    if returned.after != sent.after {
        return read_only("after", "it names jobs of the Slurmfile");
    }
    let mut spec = base.clone();
    spec.name = checked("name", JobName::parse(&returned.name))?;
    spec.payload = match &returned.payload {
        wit::Payload::Command(argv) => {
            if argv.is_empty() {
                return Err(AmendError::Invalid {
                    field: "payload".into(),
                    source: InvalidValue {
                        what: "command",
                        value: String::new(),
                        rule: "a command needs at least the program to run",
                    },
                });
            }
            for (i, arg) in argv.iter().enumerate() {
                checked(
                    format!("payload.command[{i}]"),
                    validate::command_argument(arg),
                )?;
            }
            Payload::Command(argv.clone())
        }
        wit::Payload::Script(body) => {
            checked("payload.script", validate::script_text(body))?;
            Payload::Script(body.clone())
        }
    };
    spec.working_dir = opt("working-dir", &returned.working_dir, |v| {
        DirectiveText::parse("working_dir", v)
    })?;
    let mut environment = BTreeMap::new();
    for (i, (name, value)) in returned.environment.iter().enumerate() {
        checked(format!("environment[{i}].name"), validate::env_name(name))?;
        checked(
            format!("environment[{i}].value"),
            validate::env_value(value),
        )?;
        if environment.insert(name.clone(), value.clone()).is_some() {
            return Err(AmendError::Invalid {
                field: format!("environment[{i}].name"),
                source: InvalidValue {
                    what: "environment variable name",
                    value: name.clone(),
                    rule: "each variable may be set once",
                },
            });
        }
    }
    spec.environment = environment;
    for (i, module) in returned.modules.iter().enumerate() {
        checked(format!("modules[{i}]"), validate::module_name(module))?;
    }
    spec.modules = returned.modules.clone();
    spec.partition = opt("partition", &returned.partition, Partition::parse)?;
    spec.account = opt("account", &returned.account, Account::parse)?;
    spec.qos = opt("qos", &returned.qos, Qos::parse)?;
    spec.reservation = opt("reservation", &returned.reservation, Reservation::parse)?;
    spec.time_limit = returned
        .time_limit_seconds
        .map(|s| checked("time-limit-seconds", TimeLimit::parse(&format!("{s}s"))))
        .transpose()?;
    spec.nodes = returned
        .nodes
        .map(|n| {
            let text = match n.max {
                Some(max) => format!("{}-{max}", n.min),
                None => n.min.to_string(),
            };
            checked("nodes", NodeCount::parse(&text))
        })
        .transpose()?;
    spec.ntasks = returned.ntasks;
    spec.ntasks_per_node = returned.ntasks_per_node;
    spec.cpus_per_task = returned.cpus_per_task;
    let memory = |field: &str, mb: Option<u64>| {
        mb.map(|mb| checked(field, Memory::parse(&format!("{mb}M"))))
            .transpose()
    };
    spec.memory = memory("memory-mb", returned.memory_mb)?;
    spec.mem_per_cpu = memory("mem-per-cpu-mb", returned.mem_per_cpu_mb)?;
    spec.gpus = opt("gpus", &returned.gpus, |v| DirectiveText::parse("gpus", v))?;
    spec.gres = opt("gres", &returned.gres, |v| DirectiveText::parse("gres", v))?;
    spec.constraint = opt("constraint", &returned.constraint, |v| {
        DirectiveText::parse("constraint", v)
    })?;
    spec.exclusive = returned.exclusive;
    spec.array = opt("array", &returned.array, ArraySpec::parse)?;
    spec.dependencies = dependencies(&returned.dependencies)?;
    // The host filled these in; left as they were, they stay the host's default.
    if returned.output != sent.output {
        spec.output = opt("output", &returned.output, |v| {
            DirectiveText::parse("output", v)
        })?;
    }
    if returned.error != sent.error {
        spec.error = opt("error", &returned.error, |v| {
            DirectiveText::parse("error", v)
        })?;
    }
    for (i, directive) in returned.extra_directives.iter().enumerate() {
        checked(
            format!("extra-directives[{i}]"),
            validate::extra_directive(directive),
        )?;
    }
    spec.extra_directives = returned.extra_directives.clone();
    spec.outputs = returned
        .outputs
        .iter()
        .enumerate()
        .map(|(i, glob)| checked(format!("outputs[{i}]"), RelativeGlob::parse("output", glob)))
        .collect::<Result<_, _>>()?;
    if returned.args != sent.args {
        spec.args = checked("args", args(&returned.args))?;
    }
    spec.container = returned.container.as_ref().map(container).transpose()?;
    Ok(spec)
}

fn dependencies(returned: &[wit::Dependency]) -> Result<Vec<Dependency>, AmendError> {
    returned
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let job_ids = d
                .job_ids
                .iter()
                .enumerate()
                .map(|(j, id)| checked(format!("dependencies[{i}].job-ids[{j}]"), JobId::parse(id)))
                .collect::<Result<Vec<_>, _>>()?;
            let singleton = d.kind == crate::wit::DependencyKind::Singleton;
            if singleton != job_ids.is_empty() {
                return Err(AmendError::Invalid {
                    field: format!("dependencies[{i}]"),
                    source: InvalidValue {
                        what: "dependency",
                        value: format!("{}:{}", d.kind, d.job_ids.join(":")),
                        rule: "singleton takes no job ids; every other kind at least one",
                    },
                });
            }
            Ok(Dependency {
                kind: d.kind,
                job_ids,
            })
        })
        .collect()
}

/// The job's arguments: a JSON object, as a Slurmfile's `args` table is, with no `null` (TOML has
/// none), at most [`MAX_ARGS_BYTES`].
fn args(text: &str) -> Result<serde_json::Value, InvalidValue> {
    let invalid = |rule| InvalidValue {
        what: "job arguments",
        value: crate::types::text::bounded(text, 256),
        rule,
    };
    if text.len() > MAX_ARGS_BYTES {
        return Err(invalid("arguments hold at most 1 MiB of JSON"));
    }
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|_| invalid("write a JSON object"))?;
    fn has_null(value: &serde_json::Value) -> bool {
        match value {
            serde_json::Value::Null => true,
            serde_json::Value::Array(items) => items.iter().any(has_null),
            serde_json::Value::Object(map) => map.values().any(has_null),
            _ => false,
        }
    }
    if !value.is_object() {
        return Err(invalid("write a JSON object"));
    }
    if has_null(&value) {
        return Err(invalid(
            "null has no place in a job's arguments; leave the key out",
        ));
    }
    Ok(value)
}

fn container(c: &wit::Container) -> Result<Container, AmendError> {
    Ok(Container {
        image: checked("container.image", ContainerImage::parse(&c.image))?,
        mounts: c
            .mounts
            .iter()
            .enumerate()
            .map(|(i, m)| checked(format!("container.mounts[{i}]"), Mount::parse(m)))
            .collect::<Result<_, _>>()?,
        runtime: c.runtime,
        workdir: opt("container.workdir", &c.workdir, ContainerPath::parse)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> JobSpec {
        let mut spec = JobSpec::new(
            JobName::parse("sample").unwrap(),
            Payload::Command(vec!["python3".into(), "train.py".into()]),
        );
        spec.environment
            .insert("OMP_NUM_THREADS".into(), "4".into());
        spec.partition = Some(Partition::parse("debug").unwrap());
        spec.time_limit = Some(TimeLimit::from_seconds(3600));
        spec.memory = Memory::parse("4G").ok();
        spec
    }

    #[test]
    fn an_unchanged_record_gives_back_the_same_spec() {
        let spec = base();
        let sent = job_to_wit(&spec);
        assert_eq!(job_from_wit(&spec, &sent, &sent).unwrap(), spec);
    }

    #[test]
    fn amended_values_are_checked_as_a_slurmfile_would_check_them() {
        let spec = base();
        let sent = job_to_wit(&spec);
        let mut ok = sent.clone();
        ok.partition = Some("gpu".into());
        ok.time_limit_seconds = Some(1800);
        ok.environment.push(("EXTRA".into(), "1".into()));
        let amended = job_from_wit(&spec, &sent, &ok).unwrap();
        assert_eq!(amended.partition.unwrap().as_str(), "gpu");
        assert_eq!(amended.time_limit.unwrap().seconds(), 1800);
        assert_eq!(amended.environment["EXTRA"], "1");
        assert_eq!(amended.output, None, "the host's default stays the default");

        type Change = fn(&mut wit::Job);
        let bad: [(Change, &str); 8] = [
            (|j| j.partition = Some("a b".into()), "partition"),
            (|j| j.time_limit_seconds = Some(0), "time-limit-seconds"),
            (
                |j| j.environment.push(("1X".into(), "v".into())),
                "environment[1].name",
            ),
            (|j| j.gres = Some("gpu\n".into()), "gres"),
            (
                |j| j.extra_directives.push("-x".into()),
                "extra-directives[0]",
            ),
            (|j| j.args = "[1]".into(), "args"),
            (|j| j.inputs.push("x".into()), "inputs"),
            (
                |j| {
                    j.nodes = Some(wit::NodeCount {
                        min: 3,
                        max: Some(2),
                    })
                },
                "nodes",
            ),
        ];
        for (change, field) in bad {
            let mut returned = sent.clone();
            change(&mut returned);
            let err = job_from_wit(&spec, &sent, &returned).unwrap_err();
            assert_eq!(err.field(), field, "{err}");
        }
    }
}
