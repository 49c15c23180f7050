//! One function per command. Each resolves its plan first (no I/O before the plan is valid), opens
//! at most one session, and reuses its connection for every step; the session is finished (due
//! callbacks delivered, connection closed) on every path.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use super::args::{Cli, Command, JobOverrides};
use super::diagnostics::{self, Failure};
use super::plugins::{engine, load_policies, load_renderer};
use super::session::in_session;
use crate::error::{Diagnose, exit};
use crate::lifecycle::{LifecycleError, Plan, logs, observe, stage, submit};
use crate::types::names::JobId;
use crate::types::status::{JobState, JobStatus};

pub async fn run(cli: Cli) -> Result<ExitCode, Failure> {
    // Generated from the command line's own definition: nothing to resolve first.
    match &cli.command {
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut command = Cli::command();
            clap_complete::generate(*shell, &mut command, "slurmkit", &mut std::io::stdout());
            return Ok(ExitCode::SUCCESS);
        }
        Command::Man => {
            use clap::CommandFactory;
            clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout())?;
            return Ok(ExitCode::SUCCESS);
        }
        // Reads the SDK's file, not a slurmkit Slurmfile: nothing to resolve either.
        Command::Import {
            path,
            environments,
            output,
            force,
        } => {
            let (path, environments, output, force) =
                (path.clone(), environments.clone(), output.clone(), *force);
            return tokio::task::spawn_blocking(move || {
                super::import::run(&path, &environments, output.as_deref(), force)
            })
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        }
        _ => {}
    }
    let cwd = std::env::current_dir().map_err(crate::lifecycle::PlanError::CurrentDir)?;
    let overrides = match &cli.command {
        Command::Render { overrides, .. } | Command::Submit { overrides, .. } => overrides.clone(),
        _ => JobOverrides::default(),
    };
    // Reading the Slurmfile is file I/O: off the async threads, like every other blocking step.
    let (flags, job_flags) = (cli.global.flags(), overrides.flags());
    let plan = tokio::task::spawn_blocking(move || Plan::resolve(&flags, &job_flags, &cwd))
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))??;
    match cli.command {
        Command::Render { job, .. } => render(&plan, job).await,
        Command::Submit {
            jobs,
            wait,
            fetch,
            only,
            ..
        } => submit(&plan, &jobs, wait, fetch, only).await,
        Command::Result { job_id } => super::work::result(&plan, &job_id).await,
        Command::Fetch { job_id, to, force } => {
            super::work::fetch(&plan, &job_id, to.as_deref(), force).await
        }
        Command::Status { job_ids, json } => status(&plan, &job_ids, json).await,
        Command::Wait { job_ids, timeout } => wait(&plan, &job_ids, timeout).await,
        Command::Cancel { job_ids } => cancel(&plan, &job_ids).await,
        Command::Logs {
            job_id,
            stderr,
            follow,
        } => print_logs(&plan, &job_id, stderr, follow).await,
        Command::Connect {
            job_id,
            node,
            command,
        } => super::allocation::connect(&plan, &job_id, node.as_deref(), &command).await,
        Command::Tunnel {
            job_id,
            ports,
            node,
            bind,
        } => super::allocation::tunnel(&plan, &job_id, ports, node.as_deref(), bind).await,
        Command::Dash { interval } => super::dash::dash(&plan, interval).await,
        Command::Mcp { read_only } => super::mcp::serve(&plan, read_only).await,
        Command::Jobs(command) => super::views::jobs(&plan, command).await,
        Command::Cluster(command) => super::views::cluster(&plan, command).await,
        Command::Doctor { json } => super::doctor::run(&plan, json).await,
        Command::Plugin(command) => super::plugin_cmd::run(command, &plan).await,
        Command::Completions { .. } | Command::Man | Command::Import { .. } => {
            unreachable!("handled before the plan")
        }
    }
}

async fn render(plan: &Plan, job: Option<String>) -> Result<ExitCode, Failure> {
    let spec = plan.jobs(&job.into_iter().collect::<Vec<_>>())?.remove(0);
    let engine = engine(plan)?;
    let policies = load_policies(&engine, plan).await?;
    let renderer = load_renderer(&engine, plan).await?;
    // As it would be submitted: through the site policies first.
    let spec = policies.apply(&spec).await?.spec;
    let script = renderer.render(&spec).await?;
    // As submitted: with slurmkit's prologue, each dependency's directory shown by its job's name.
    let dependencies: Vec<stage::DependencyDir> = spec
        .after
        .iter()
        .map(|after| stage::DependencyDir {
            variable: crate::types::work::dependency_variable(&after.job),
            dir: format!("<the job directory of {} when submitted>", after.job),
        })
        .collect();
    let script = stage::with_prologue(
        &spec,
        &script,
        &stage::prologue(&spec, &dependencies, None, None),
    )?;
    let mut out = std::io::stdout().lock();
    out.write_all(script.as_bytes())?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

async fn submit(
    plan: &Plan,
    jobs: &[String],
    wait_for_end: bool,
    fetch: bool,
    only: bool,
) -> Result<ExitCode, Failure> {
    // The whole plan first: nothing is compiled or contacted for a job or cluster that cannot work.
    let specs = plan.graph(jobs, only)?;
    let target = plan.target().await?;
    let engine = engine(plan)?;
    let policies = load_policies(&engine, plan).await?;
    let renderer = load_renderer(&engine, plan).await?;
    in_session(plan, target, &engine, async |session| {
        // A bar on a terminal while inputs go up (indicatif draws nothing when stderr is not one);
        // only for transfers big enough to watch.
        let bar = indicatif::ProgressBar::with_draw_target(
            None,
            indicatif::ProgressDrawTarget::stderr_with_hz(4),
        );
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "staging {bytes}/{total_bytes} {wide_bar} {binary_bytes_per_sec} {eta}",
            )
            .expect("a valid template"),
        );
        let shown = bar.clone();
        session.progress = Some(Arc::new(move |sent, total| {
            if total >= 8 << 20 {
                shown.set_length(total);
                shown.set_position(sent);
            }
        }));
        let results = submit::submit(session, &renderer, &policies, &specs).await;
        bar.finish_and_clear();
        let mut first_failure = None;
        let mut submitted = Vec::new();
        let mut out = std::io::stdout().lock();
        for (spec, result) in specs.iter().zip(results) {
            match result {
                Ok(job) => {
                    writeln!(out, "{}", job.job_id)?;
                    eprintln!(
                        "Submitted job {} ({}) in {}",
                        job.job_id, spec.name, job.job_dir
                    );
                    if !job.parts.is_empty() {
                        let parts: Vec<&str> = job.parts.iter().map(JobId::as_str).collect();
                        eprintln!(
                            "  its {} items are more than one array may hold here, so it was split: job {} runs the first, then {} (`wait`, `status`, `result` and `cancel` of {} take them all in)",
                            spec.items.len(),
                            job.job_id,
                            parts.join(", "),
                            job.job_id
                        );
                    }
                    // A part missing would leave items unrun: said, and the exit code says so.
                    for (code, message) in &job.parts_failed {
                        eprintln!(
                            "error: a part of job {} (its later items) was not submitted: {message}",
                            job.job_id
                        );
                        first_failure.get_or_insert(*code);
                    }
                    submitted.push(job.job_id);
                }
                Err(error) => {
                    // Queued but not recorded: the id still goes out, with the warning.
                    if let LifecycleError::NotRecorded { job_id, .. } = &error {
                        writeln!(out, "{job_id}")?;
                        eprintln!(
                            "job {job_id} ({}) is queued but not recorded here: do not resubmit; `slurmkit status` will pick it up",
                            spec.name
                        );
                    }
                    out.flush()?;
                    diagnostics::report(&error);
                    first_failure.get_or_insert(error.exit_code());
                }
            }
        }
        out.flush()?;
        drop(out);
        if let Some(code) = first_failure {
            return Ok(ExitCode::from(code));
        }
        if !wait_for_end {
            return Ok(ExitCode::SUCCESS);
        }
        session.outbox.deliver_due().await;
        let statuses = observe::wait(session, &submitted, None).await?;
        let code = report_final(&statuses);
        if fetch {
            for (spec, id) in specs.iter().zip(&submitted) {
                if spec.outputs.is_empty() {
                    continue;
                }
                if let Err(error) = super::work::fetch_into(session, id, None, false).await {
                    diagnostics::report(&error);
                    return Ok(ExitCode::from(error.exit_code()));
                }
            }
        }
        Ok(code)
    })
    .await
}

async fn status(plan: &Plan, ids: &[JobId], json: bool) -> Result<ExitCode, Failure> {
    let engine = engine(plan)?;
    in_session(plan, plan.target().await?, &engine, async |session| {
        let ids: Vec<JobId> = if ids.is_empty() {
            let key = session.target.key.clone();
            session
                .journal
                .run(move |j| j.recent(&key, 20))
                .await
                .map_err(LifecycleError::from)?
                .into_iter()
                .filter_map(|s| s.job_id)
                .collect()
        } else {
            ids.to_vec()
        };
        let statuses = observe::status(session, &ids).await?;
        if json {
            let mut out = std::io::stdout().lock();
            writeln!(out, "{}", serde_json::to_string_pretty(&statuses)?)?;
        } else if statuses.is_empty() {
            eprintln!("No jobs submitted from here to {} yet.", session.target.key);
        } else {
            print_table(&statuses)?;
        }
        Ok(ExitCode::SUCCESS)
    })
    .await
}

async fn wait(plan: &Plan, ids: &[JobId], timeout: Option<u64>) -> Result<ExitCode, Failure> {
    let engine = engine(plan)?;
    in_session(plan, plan.target().await?, &engine, async |session| {
        let statuses = observe::wait(session, ids, timeout.map(Duration::from_secs)).await?;
        Ok(report_final(&statuses))
    })
    .await
}

/// Cancel what is still queued or running; say which ids Slurm does not know (exit code 14) and which
/// jobs had already ended. One query for all, then one scancel.
async fn cancel(plan: &Plan, ids: &[JobId]) -> Result<ExitCode, Failure> {
    let engine = engine(plan)?;
    in_session(plan, plan.target().await?, &engine, async |session| {
        let found = observe::cancel(session, ids).await?;
        for id in &found.unknown {
            eprintln!("job {id} is not known to Slurm: nothing to cancel");
        }
        for (id, state) in &found.ended {
            eprintln!("job {id} had already ended ({state})");
        }
        if !found.cancelled.is_empty() {
            let cancelled: Vec<&str> = found.cancelled.iter().map(JobId::as_str).collect();
            eprintln!("Cancelled {}", cancelled.join(", "));
        }
        Ok(if found.unknown.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(exit::JOB_UNKNOWN)
        })
    })
    .await
}

async fn print_logs(
    plan: &Plan,
    id: &JobId,
    stderr: bool,
    follow: bool,
) -> Result<ExitCode, Failure> {
    let engine = engine(plan)?;
    in_session(plan, plan.target().await?, &engine, async |session| {
        let mut out = std::io::stdout().lock();
        let mut write = |bytes: &[u8]| {
            out.write_all(bytes)?;
            out.flush()
        };
        logs::copy_log(session, id, stderr, follow, &mut write).await?;
        Ok(ExitCode::SUCCESS)
    })
    .await
}

/// Print the outcome and pick the exit code of the worst task.
fn report_final(statuses: &[JobStatus]) -> ExitCode {
    let _ = print_table(statuses);
    for status in statuses.iter().filter(|s| s.never_runs()) {
        eprintln!(
            "job {0} never runs: a job it runs after did not end the way its dependency requires. Slurm keeps it pending until it is cancelled: `slurmkit cancel {0}`",
            status.job_id
        );
    }
    let worst = statuses
        .iter()
        .map(|s| {
            if s.never_runs() {
                exit::JOB_FAILED
            } else {
                exit_code_for_state(s.state)
            }
        })
        .max()
        .unwrap_or(exit::JOB_FAILED);
    ExitCode::from(worst)
}

/// The exit code for a job that reached `state`.
pub fn exit_code_for_state(state: JobState) -> u8 {
    exit::for_state(state)
}

fn print_table(statuses: &[JobStatus]) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:<14} {:<14} {:>5}  REASON",
        "JOB ID", "STATE", "EXIT"
    )?;
    for status in statuses {
        let exit = match (status.exit_code, status.signal) {
            (Some(code), None) => code.to_string(),
            (Some(code), Some(signal)) => format!("{code}:{signal}"),
            _ => "-".into(),
        };
        writeln!(
            out,
            "{:<14} {:<14} {:>5}  {}",
            status.job_id,
            status.state,
            exit,
            status.reason.as_deref().unwrap_or("")
        )?;
    }
    for line in array_counts(statuses) {
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// For each array with tasks listed, one line of counts per state: `3884: 3 tasks, 2 COMPLETED, 1 RUNNING`.
fn array_counts(statuses: &[JobStatus]) -> Vec<String> {
    let mut arrays: Vec<(String, std::collections::BTreeMap<String, usize>, usize)> = Vec::new();
    for status in statuses {
        let base = match status.job_id.as_str().split_once('_') {
            Some((base, _)) => base,
            None => continue,
        };
        let index = match arrays.iter().position(|(b, _, _)| b == base) {
            Some(i) => i,
            None => {
                arrays.push((base.to_string(), Default::default(), 0));
                arrays.len() - 1
            }
        };
        let (_, counts, total) = &mut arrays[index];
        *counts.entry(status.state.to_string()).or_default() += 1;
        *total += 1;
    }
    arrays
        .into_iter()
        .filter(|(_, _, total)| *total > 1)
        .map(|(base, counts, total)| {
            let states: Vec<String> = counts.iter().map(|(s, n)| format!("{n} {s}")).collect();
            format!("{base}: {total} tasks, {}", states.join(", "))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrays_are_counted_per_state() {
        let status = |id: &str, state| {
            JobStatus::new(
                JobId::parse(id).unwrap(),
                state,
                crate::types::status::StatusSource::Squeue,
            )
        };
        let lines = array_counts(&[
            status("7_0", JobState::Completed),
            status("7_1", JobState::Running),
            status("7_2", JobState::Completed),
            status("8", JobState::Pending),
        ]);
        assert_eq!(lines, ["7: 3 tasks, 2 COMPLETED, 1 RUNNING"]);
    }

    #[test]
    fn job_states_map_to_exit_codes() {
        assert_eq!(exit_code_for_state(JobState::Completed), 0);
        assert_eq!(exit_code_for_state(JobState::Failed), exit::JOB_FAILED);
        assert_eq!(
            exit_code_for_state(JobState::Cancelled),
            exit::JOB_CANCELLED
        );
        assert_eq!(exit_code_for_state(JobState::NodeFail), exit::JOB_FAILED);
    }
}
