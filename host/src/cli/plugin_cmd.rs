//! `slurmkit plugin inspect` and `slurmkit plugin check`.

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use super::args::PluginCommand;
use super::diagnostics::Failure;
use crate::config::{CallbackSettings, PolicySettings, RendererSettings, Slurmfile};
use crate::error::exit;
use crate::lifecycle::Plan;
use crate::lifecycle::event::{EventDetail, HostEvent, NodeDetails};
use crate::plugin::callbacks::CallbackPlugin;
use crate::plugin::convert::job_to_wit;
use crate::plugin::policy::PolicyPlugin;
use crate::plugin::renderer::Renderer;
use crate::plugin::{PluginEngine, PluginError, PluginSpec};
use crate::types::names::{JobId, JobName, Partition};
use crate::types::spec::{JobSpec, Payload};
use crate::types::status::{JobState, JobStatus, StatusSource};
use crate::wit::EventKind;

pub async fn run(command: PluginCommand, plan: &Plan) -> Result<ExitCode, Failure> {
    let engine = super::plugins::engine(plan)?;
    match command {
        PluginCommand::Inspect { file: path, json } => {
            let inspection = crate::plugin::inspect::inspect(&path)?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&inspection)?);
            } else {
                outln!("file:        {}", inspection.path);
                outln!("size:        {} bytes", inspection.size);
                outln!("sha256:      {}", inspection.sha256);
                outln!("world:       {}", inspection.world);
                outln!(
                    "WIT version: {}",
                    inspection
                        .wit_version
                        .as_deref()
                        .unwrap_or("(imports no slurmkit:plugin interface)")
                );
                outln!("imports:");
                for import in &inspection.imports {
                    outln!("  {import}");
                }
                outln!("exports:");
                for export in &inspection.exports {
                    outln!("  {export}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        PluginCommand::Check { file: path, job } => check(&engine, &path, plan, job).await,
    }
}

/// The plugin's settings (config, grants, limits) from the Slurmfile entry that names this file, if any.
fn configured_spec(path: &Path, file: Option<&Slurmfile>) -> Result<PluginSpec, PluginError> {
    let unconfigured = || PluginSpec::from_file(&crate::plugin::file_stem(path), path, None);
    let Some(file) = file else {
        return unconfigured();
    };
    let target = path.canonicalize().ok();
    let same = |written: &str| file.resolve_path(written).canonicalize().ok() == target;
    // `check` runs the file it is given, whatever the Slurmfile pins: it is how a new build is tried.
    if let Some(renderer) = file.settings.renderer.as_ref().filter(|r| same(&r.plugin)) {
        let settings = RendererSettings {
            sha256: None,
            ..renderer.clone()
        };
        return PluginSpec::renderer(file, &settings);
    }
    if let Some(callback) = file
        .settings
        .callbacks
        .iter()
        .flatten()
        .find(|c| same(&c.plugin))
    {
        let settings = CallbackSettings {
            sha256: None,
            ..callback.clone()
        };
        return PluginSpec::callback(file, &settings);
    }
    if let Some(policy) = file
        .settings
        .policy
        .iter()
        .flatten()
        .find(|p| same(&p.plugin))
    {
        let settings = PolicySettings {
            sha256: None,
            ..policy.clone()
        };
        return PluginSpec::policy(&file.dir, &settings);
    }
    unconfigured()
}

async fn check(
    engine: &PluginEngine,
    path: &Path,
    plan: &Plan,
    job: Option<String>,
) -> Result<ExitCode, Failure> {
    let inspection = crate::plugin::inspect::inspect(path)?;
    let spec = configured_spec(path, plan.file.as_ref())?;
    let job_spec = match job {
        Some(name) => plan.jobs(&[name])?.remove(0),
        None => sample_job(),
    };
    outln!(
        "{} ({}, {} bytes, sha256 {})",
        inspection.path,
        inspection.world,
        inspection.size,
        inspection.sha256
    );
    outln!(
        "limits: memory {} MiB, {:?} per call, {} bytes of output; compiling {:?} and {} MiB",
        spec.limits.memory >> 20,
        spec.limits.timeout,
        spec.limits.output,
        spec.limits.compile_time,
        spec.limits.compile_memory >> 20
    );
    let mut failures = 0;
    match inspection.world.as_str() {
        "renderer" => {
            let (loading, started) = (load_kind(engine, &spec), Instant::now());
            let renderer = Renderer::load(engine, spec).await?;
            outln!("ok    load: {loading} in {:?}", started.elapsed());
            let started = Instant::now();
            renderer.instantiate().await?;
            outln!("ok    instantiate: {:?}", started.elapsed());
            let started = Instant::now();
            match renderer.render(&job_spec).await {
                Ok(script) => outln!(
                    "ok    render: {} lines in {:?}",
                    script.lines().count(),
                    started.elapsed()
                ),
                Err(e) => {
                    failures += 1;
                    outln!("FAIL  render: {e}");
                }
            }
        }
        "callbacks" => {
            let (loading, started) = (load_kind(engine, &spec), Instant::now());
            let plugin = CallbackPlugin::load(engine, spec, None).await?;
            outln!(
                "ok    load: {loading} (and asked for its subscriptions) in {:?}",
                started.elapsed()
            );
            let events: Vec<&str> = plugin.events.iter().map(|k| k.as_str()).collect();
            outln!("ok    subscriptions: {}", events.join(", "));
            for kind in EventKind::ALL
                .iter()
                .copied()
                .filter(|k| plugin.events.contains(k))
            {
                match plugin
                    .deliver(&sample_event(kind, &job_spec).to_wit())
                    .await
                {
                    Ok(()) => outln!("ok    on-event({kind})"),
                    Err(failure) => {
                        failures += 1;
                        outln!("FAIL  on-event({kind}): {}", failure.message);
                    }
                }
            }
        }
        "policy" => {
            let (loading, started) = (load_kind(engine, &spec), Instant::now());
            let policy = PolicyPlugin::load(engine, spec).await?;
            outln!("ok    load: {loading} in {:?}", started.elapsed());
            let job = job_to_wit(&job_spec);
            let defaults = policy.setup_defaults(&job).await.map(drop);
            let verdict = policy.pre_submit(&job).await.map(|verdict| {
                use crate::wit::latest::types::Verdict;
                match verdict {
                    Verdict::Accept => "accept".to_string(),
                    Verdict::Amend(_) => "amend".to_string(),
                    Verdict::Refuse(message) => {
                        format!("refuse: {}", crate::types::text::bounded(&message, 512))
                    }
                }
            });
            let posted = policy.post_submit(&job, "12345").await.and_then(|r| {
                r.map_err(|message| PluginError::Failed {
                    plugin: policy.spec.name.clone(),
                    during: "post-submit".into(),
                    cause: crate::types::text::bounded(&message, 512),
                })
            });
            let verdict = verdict.map(|said| format!(" ({said})"));
            for (step, result) in [
                ("setup-defaults", defaults.map(|()| String::new())),
                ("pre-submit", verdict),
                ("post-submit", posted.map(|()| String::new())),
            ] {
                match result {
                    Ok(said) => outln!("ok    {step}{said}"),
                    Err(e) => {
                        failures += 1;
                        outln!("FAIL  {step}: {e}");
                    }
                }
            }
        }
        other => {
            return Err(PluginError::WrongWorld {
                name: inspection.path,
                expected: "renderer, callbacks or policy",
                found: format!("{other}: it exports none of `render`, `on-event` and `pre-submit`"),
            }
            .into());
        }
    }
    if failures == 0 {
        outln!("passed");
        Ok(ExitCode::SUCCESS)
    } else {
        outln!("{failures} check(s) failed");
        Ok(ExitCode::from(exit::PLUGIN))
    }
}

/// What loading `spec` is about to do: compile it, or read it from the cache.
fn load_kind(engine: &PluginEngine, spec: &PluginSpec) -> &'static str {
    if engine.is_cached(spec) {
        "read from the cache"
    } else {
        "compiled"
    }
}

/// A job exercising most fields.
pub fn sample_job() -> JobSpec {
    let argv = ["python3", "train.py", "--epochs", "3"]
        .map(String::from)
        .to_vec();
    let mut job = JobSpec::new(
        JobName::parse("sample").expect("valid"),
        Payload::Command(argv),
    );
    job.environment.insert("OMP_NUM_THREADS".into(), "4".into());
    job.modules = vec!["python/3.11".into()];
    job.partition = Some(Partition::parse("debug").expect("valid"));
    job.time_limit = Some(crate::types::units::TimeLimit::from_seconds(3600));
    job.ntasks = Some(1);
    job.cpus_per_task = Some(4);
    job.memory = crate::types::units::Memory::parse("4G").ok();
    job
}

fn sample_event(kind: EventKind, spec: &JobSpec) -> HostEvent {
    let job_id = JobId::parse("12345").expect("valid");
    let status = |state| JobStatus {
        job_id: job_id.clone(),
        state,
        exit_code: Some(0),
        signal: None,
        reason: None,
        source: StatusSource::Squeue,
    };
    let detail = match kind {
        EventKind::Submitted => EventDetail::Submitted(job_id.to_string()),
        EventKind::RunEnd => EventDetail::Run(crate::config::node::RunInfo {
            exit_code: Some(0),
            signal: None,
            elapsed_ms: 61_000,
            peak_memory_kib: Some(524_288),
        }),
        EventKind::StatusChanged | EventKind::Completed => EventDetail::Status {
            previous: Some(status(JobState::Running)),
            current: status(JobState::Completed),
        },
        EventKind::Failed => EventDetail::Status {
            previous: Some(status(JobState::Running)),
            current: status(JobState::Failed),
        },
        _ => EventDetail::None,
    };
    HostEvent {
        id: format!("check#{kind}"),
        kind,
        spec: spec.clone(),
        cluster: "check".into(),
        job_id: Some(job_id.to_string()),
        job_dir: Some("/home/user/slurm_jobs/sample-20260101T000000Z-000000".into()),
        timestamp_ms: 0,
        detail,
        node: matches!(kind, EventKind::RunBegin | EventKind::RunEnd).then(|| NodeDetails {
            node: "node001".into(),
            array_task_id: None,
            step: "batch".into(),
        }),
    }
}
