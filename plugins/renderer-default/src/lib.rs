//! slurmkit's default renderer: turns the job record into a bash sbatch script.
//!
//! Every value lands either in an `#SBATCH` line (double-quoted, the one quoting sbatch's directive parser
//! understands) or in the script body (single-quoted for bash). A value that neither quoting can carry
//! safely is refused with the field's name: nothing is silently dropped. A job with a container runs
//! its payload in it ([`container`]), after the module loads and exports.

wit_bindgen::generate!({ world: "renderer", path: "../../wit" });

mod container;

use slurmkit::plugin::types::{Dependency, DependencyKind, FieldError, Payload};

struct DefaultRenderer;

impl Guest for DefaultRenderer {
    fn render(job: Job) -> Result<String, RenderError> {
        render_script(&job)
    }
}

export!(DefaultRenderer);

/// The whole script for `job`.
pub fn render_script(job: &Job) -> Result<String, RenderError> {
    let mut out = String::from("#!/bin/bash\n");
    for (option, value) in directives(job)? {
        out.push_str("#SBATCH ");
        out.push_str(&option);
        if let Some(value) = value {
            out.push('=');
            out.push_str(&value);
        }
        out.push('\n');
    }
    out.push_str("# Rendered by slurmkit renderer-default ");
    out.push_str(env!("CARGO_PKG_VERSION"));
    out.push_str(".\n\n");

    // One module at a time, so a failure names its module; the job never runs without its modules.
    for module in &job.modules {
        let module = shell_quote(module);
        out.push_str(&format!(
            "module load {module} || {{ echo 'slurmkit: module load failed, so the job does not run:' {module} >&2; exit 1; }}\n"
        ));
    }
    for (index, (name, value)) in job.environment.iter().enumerate() {
        if !is_env_name(name) {
            return Err(invalid(
                &format!("environment[{index}].name"),
                &format!(
                    "{name:?} is not a shell variable name (letters, digits and _, not starting with a digit)"
                ),
            ));
        }
        out.push_str(&format!("export {name}={}\n", shell_quote(value)));
    }
    if let Some(container) = &job.container {
        out.push_str(&container::payload_line(container, &job.payload)?);
        return Ok(out);
    }
    match &job.payload {
        Payload::Command(argv) => {
            if argv.is_empty() {
                return Err(invalid("command", "is empty: give the program to run"));
            }
            let words: Vec<String> = argv.iter().map(|a| shell_quote(a)).collect();
            out.push_str(&format!("exec {}\n", words.join(" ")));
        }
        Payload::Script(body) => {
            out.push_str(body);
            if !body.ends_with('\n') {
                out.push('\n');
            }
        }
    }
    Ok(out)
}

/// `(option, value)` pairs in a fixed order; each value already quoted for the directive parser.
fn directives(job: &Job) -> Result<Vec<(String, Option<String>)>, RenderError> {
    let mut lines = Vec::new();
    let mut push = |option: &str, field: &str, value: &str| -> Result<(), RenderError> {
        lines.push((option.to_string(), Some(directive_quote(field, value)?)));
        Ok(())
    };
    push("--job-name", "name", &job.name)?;
    let optional_strings = [
        ("--partition", "partition", &job.partition),
        ("--account", "account", &job.account),
        ("--qos", "qos", &job.qos),
        ("--reservation", "reservation", &job.reservation),
        ("--chdir", "working-dir", &job.working_dir),
        ("--gpus", "gpus", &job.gpus),
        ("--gres", "gres", &job.gres),
        ("--constraint", "constraint", &job.constraint),
        ("--array", "array", &job.array),
        ("--output", "output", &job.output),
        ("--error", "error", &job.error),
    ];
    for (option, field, value) in optional_strings {
        if let Some(value) = value {
            push(option, field, value)?;
        }
    }
    if let Some(seconds) = job.time_limit_seconds {
        if seconds == 0 {
            return Err(invalid("time-limit-seconds", "must be greater than zero"));
        }
        push("--time", "time-limit-seconds", &slurm_duration(seconds))?;
    }
    if let Some(nodes) = &job.nodes {
        let value = match nodes.max {
            Some(max) if max < nodes.min => {
                return Err(invalid(
                    "nodes",
                    &format!("maximum {max} is below minimum {}", nodes.min),
                ));
            }
            Some(max) => format!("{}-{max}", nodes.min),
            None => nodes.min.to_string(),
        };
        push("--nodes", "nodes", &value)?;
    }
    let counts = [
        ("--ntasks", "ntasks", job.ntasks),
        ("--ntasks-per-node", "ntasks-per-node", job.ntasks_per_node),
        ("--cpus-per-task", "cpus-per-task", job.cpus_per_task),
    ];
    for (option, field, value) in counts {
        match value {
            Some(0) => return Err(invalid(field, "must be at least 1")),
            Some(n) => push(option, field, &n.to_string())?,
            None => {}
        }
    }
    match (job.memory_mb, job.mem_per_cpu_mb) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                "mem-per-cpu-mb",
                "cannot be combined with memory-mb: Slurm treats --mem and --mem-per-cpu as exclusive",
            ));
        }
        (Some(mb), None) => push("--mem", "memory-mb", &format!("{mb}M"))?,
        (None, Some(mb)) => push("--mem-per-cpu", "mem-per-cpu-mb", &format!("{mb}M"))?,
        (None, None) => {}
    }
    if !job.dependencies.is_empty() {
        push(
            "--dependency",
            "dependencies",
            &dependency_spec(&job.dependencies)?,
        )?;
    }
    if job.exclusive {
        lines.push(("--exclusive".to_string(), None));
    }
    for (index, extra) in job.extra_directives.iter().enumerate() {
        let field = format!("extra-directives[{index}]");
        let (option, value) = match extra.split_once('=') {
            Some((option, value)) => (option, Some(value)),
            None => (extra.as_str(), None),
        };
        let valid_option = option.len() > 2
            && option.starts_with("--")
            && option[2..]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-');
        if !valid_option {
            return Err(invalid(
                &field,
                &format!(
                    "{extra:?} is not a long sbatch option (write it as --name or --name=value)"
                ),
            ));
        }
        let value = value.map(|v| directive_quote(&field, v)).transpose()?;
        lines.push((option.to_string(), value));
    }
    Ok(lines)
}

fn dependency_spec(dependencies: &[Dependency]) -> Result<String, RenderError> {
    let mut parts = Vec::new();
    for (index, dependency) in dependencies.iter().enumerate() {
        let kind = match dependency.kind {
            DependencyKind::After => "after",
            DependencyKind::AfterAny => "afterany",
            DependencyKind::AfterOk => "afterok",
            DependencyKind::AfterNotOk => "afternotok",
            DependencyKind::AfterCorr => "aftercorr",
            DependencyKind::Singleton => {
                parts.push("singleton".to_string());
                continue;
            }
        };
        if dependency.job_ids.is_empty() {
            return Err(invalid(
                &format!("dependencies[{index}]"),
                &format!("{kind} needs at least one job id"),
            ));
        }
        for id in &dependency.job_ids {
            let valid = !id.is_empty() && id.chars().all(|c| c.is_ascii_digit() || c == '_');
            if !valid {
                return Err(invalid(
                    &format!("dependencies[{index}]"),
                    &format!("{id:?} is not a Slurm job id"),
                ));
            }
        }
        parts.push(format!("{kind}:{}", dependency.job_ids.join(":")));
    }
    Ok(parts.join(","))
}

/// Slurm's `D-HH:MM:SS`, rounded up to whole seconds already.
fn slurm_duration(seconds: u64) -> String {
    let (days, rest) = (seconds / 86_400, seconds % 86_400);
    let (hours, minutes, secs) = (rest / 3600, rest % 3600 / 60, rest % 60);
    if days > 0 {
        format!("{days}-{hours:02}:{minutes:02}:{secs:02}")
    } else {
        format!("{hours:02}:{minutes:02}:{secs:02}")
    }
}

/// Quote a value for an `#SBATCH` line. sbatch's directive parser honours double quotes but has no escape
/// for a double quote or backslash inside them, and a line break would end the directive and start shell
/// code, so those characters are refused.
fn directive_quote(field: &str, value: &str) -> Result<String, RenderError> {
    if value.is_empty() {
        return Err(invalid(field, "is empty"));
    }
    if let Some(bad) = value
        .chars()
        .find(|c| c.is_control() || *c == '"' || *c == '\\')
    {
        return Err(invalid(
            field,
            &format!("{value:?} contains {bad:?}, which an #SBATCH line cannot carry"),
        ));
    }
    Ok(format!("\"{value}\""))
}

/// Quote a word for bash: single quotes, with each embedded `'` written as `'\''`.
fn shell_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn invalid(field: &str, message: &str) -> RenderError {
    RenderError::InvalidField(FieldError {
        field: field.to_string(),
        message: message.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> Job {
        Job {
            name: "hello".into(),
            payload: Payload::Command(vec!["echo".into(), "it's $HOME".into()]),
            working_dir: None,
            environment: vec![],
            modules: vec![],
            partition: Some("debug".into()),
            account: None,
            qos: None,
            reservation: None,
            time_limit_seconds: Some(90),
            nodes: None,
            ntasks: None,
            ntasks_per_node: None,
            cpus_per_task: Some(2),
            memory_mb: Some(512),
            mem_per_cpu_mb: None,
            gpus: None,
            gres: None,
            constraint: None,
            exclusive: false,
            array: None,
            dependencies: vec![],
            output: Some("/jobs/hello dir/slurm-%j.out".into()),
            error: None,
            extra_directives: vec![],
            inputs: vec![],
            outputs: vec![],
            args: "{}".into(),
            item_count: 0,
            after: vec![],
            container: None,
        }
    }

    #[test]
    fn renders_directives_and_quoted_command() {
        let script = render_script(&job()).unwrap();
        assert!(script.starts_with("#!/bin/bash\n#SBATCH --job-name=\"hello\"\n"));
        assert!(script.contains("#SBATCH --partition=\"debug\"\n"));
        assert!(script.contains("#SBATCH --time=\"00:01:30\"\n"));
        assert!(script.contains("#SBATCH --mem=\"512M\"\n"));
        assert!(script.contains("#SBATCH --output=\"/jobs/hello dir/slurm-%j.out\"\n"));
        assert!(script.ends_with("exec 'echo' 'it'\\''s $HOME'\n"));
    }

    /// The script as bash runs it, with a `module` command that knows only `gcc/13`: a module that
    /// fails to load ends the job before its payload, naming the module.
    #[test]
    fn a_module_that_fails_to_load_stops_the_job() {
        let mut j = job();
        j.modules = vec!["gcc/13".into(), "no such/1".into()];
        j.payload = Payload::Command(vec!["echo".into(), "payload ran".into()]);
        let script = render_script(&j).unwrap();
        let with_module = format!(
            "module() {{ [ \"$1\" = load ] && [ \"$2\" = gcc/13 ]; }}\n{}",
            script.trim_start_matches("#!/bin/bash\n")
        );
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg(with_module)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        assert!(out.stdout.is_empty(), "the payload must not run");
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            "slurmkit: module load failed, so the job does not run: no such/1\n"
        );
    }

    /// Modules and exports stay in the batch shell, before the container runs the payload.
    #[test]
    fn a_container_runs_the_payload_after_modules_and_exports() {
        let mut j = job();
        j.modules = vec!["cuda/12".into()];
        j.environment = vec![("A".into(), "1".into())];
        j.container = Some(slurmkit::plugin::types::Container {
            image: "nvcr.io#nvidia/pytorch:24.05-py3".into(),
            mounts: vec!["/data:/data:ro".into()],
            runtime: slurmkit::plugin::types::ContainerRuntime::Pyxis,
            workdir: None,
        });
        let script = render_script(&j).unwrap();
        let body = script.split_once("\n\n").unwrap().1;
        assert!(body.starts_with("module load 'cuda/12' || "), "{body}");
        assert!(
            body.ends_with(
                "export A='1'\nexec srun --container-image='nvcr.io#nvidia/pytorch:24.05-py3' --container-mounts='/data:/data:ro' 'echo' 'it'\\''s $HOME'\n"
            ),
            "{body}"
        );
    }

    #[test]
    fn refuses_a_newline_in_a_directive() {
        let mut j = job();
        j.partition = Some("debug\necho pwned".into());
        let err = render_script(&j).unwrap_err();
        assert!(matches!(err, RenderError::InvalidField(f) if f.field == "partition"));
    }

    #[test]
    fn refuses_a_bad_variable_name() {
        let mut j = job();
        j.environment = vec![("A;rm".into(), "x".into())];
        assert!(
            matches!(render_script(&j).unwrap_err(), RenderError::InvalidField(f) if f.field == "environment[0].name")
        );
    }

    #[test]
    fn formats_days_and_dependencies() {
        assert_eq!(slurm_duration(2 * 86_400 + 3661), "2-01:01:01");
        let deps = vec![
            Dependency {
                kind: DependencyKind::AfterOk,
                job_ids: vec!["12".into(), "13_2".into()],
            },
            Dependency {
                kind: DependencyKind::Singleton,
                job_ids: vec![],
            },
        ];
        assert_eq!(dependency_spec(&deps).unwrap(), "afterok:12:13_2,singleton");
    }

    #[test]
    fn refuses_mem_and_mem_per_cpu_together() {
        let mut j = job();
        j.mem_per_cpu_mb = Some(100);
        assert!(render_script(&j).is_err());
    }
}
