//! `slurmkit mcp`: an MCP server over stdio (the `rmcp` SDK), so an AI agent can submit and inspect
//! jobs. Each tool is a thin skin over the function the command of the same name calls, with the same
//! plan, policies, renderer and validation; each call opens its own session (as a command does) and is
//! journaled with its arguments and outcome. `--read-only` leaves out the tools that change anything.

use std::process::ExitCode;
use std::sync::Arc;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, Implementation, ServerCapabilities, ServerConfig};
use rmcp::{ServerHandler, ServiceExt, schemars, tool, tool_handler, tool_router};
use serde::Deserialize;

use super::diagnostics::{self, Failure};
use super::plugins::{engine, load_policies, load_renderer};
use super::session::in_session;
use crate::journal::Journal;
use crate::lifecycle::{LifecycleError, Plan, logs, observe, submit};
use crate::plugin::PluginEngine;
use crate::slurm::views::{self, QueueFilter};
use crate::types::names::JobId;

/// The tools that change something, left out by `--read-only`.
const WRITING_TOOLS: [&str; 3] = ["submit", "cancel", "fetch"];
/// Most of a log one call returns (the start of it; `offset` reads on).
const MAX_LOG_BYTES: u64 = 256 << 10;

#[derive(Clone)]
pub struct Server {
    plan: Arc<Plan>,
    engine: PluginEngine,
    tool_router: ToolRouter<Self>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct SubmitArgs {
    /// `[jobs.<name>]` entries of the Slurmfile to submit, with the jobs they run after (empty: its
    /// only job, or `[job]`).
    #[serde(default)]
    jobs: Vec<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct JobIds {
    /// Slurm job ids (`123`, or `123_4` for a task of an array).
    job_ids: Vec<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct OneJob {
    /// A Slurm job id (`123`, or `123_4` for a task of an array).
    job_id: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct LogArgs {
    /// A Slurm job id (`123_4` for a task of an array).
    job_id: String,
    /// The job's stderr instead of its stdout.
    #[serde(default)]
    stderr: bool,
    /// Where to start reading, in bytes (for a log longer than one call returns).
    #[serde(default)]
    offset: u64,
}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
struct ListArgs {
    /// Only the cluster user's own jobs.
    #[serde(default)]
    mine: bool,
    /// Only these users' jobs.
    #[serde(default)]
    users: Vec<String>,
    /// Only jobs in these partitions.
    #[serde(default)]
    partitions: Vec<String>,
    /// Only jobs in these states (PENDING, RUNNING, ...).
    #[serde(default)]
    states: Vec<String>,
    /// Only jobs with these names.
    #[serde(default)]
    names: Vec<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct FetchArgs {
    /// A Slurm job id submitted from here.
    job_id: String,
    /// Replace files already there.
    #[serde(default)]
    force: bool,
}

type ToolResult = Result<CallToolResult, rmcp::ErrorData>;

/// Job ids as a tool received them, checked as the command line checks them.
fn ids(raw: &[String]) -> Result<Vec<JobId>, Failure> {
    raw.iter()
        .map(|id| JobId::parse(id).map_err(|e| Failure::from(diagnostics::Refused(e.to_string()))))
        .collect()
}

fn one_id(raw: &str) -> Result<JobId, Failure> {
    JobId::parse(raw).map_err(|e| Failure::from(diagnostics::Refused(e.to_string())))
}

fn json(value: impl serde::Serialize) -> Result<String, Failure> {
    Ok(serde_json::to_string_pretty(&value).map_err(std::io::Error::other)?)
}

#[tool_router]
impl Server {
    /// Submit Slurmfile jobs (never free-form commands) through the configured policies and renderer.
    #[tool(
        description = "Submit jobs defined in the Slurmfile (by [jobs.<name>] entry; the jobs they run after go too), through the site's policies and renderer. Returns each job's id and job directory, or why it was not submitted."
    )]
    async fn submit(&self, Parameters(args): Parameters<SubmitArgs>) -> ToolResult {
        self.call("submit", &args.jobs, async |plan, engine| {
            let specs = plan.graph(&args.jobs, false)?;
            let policies = load_policies(engine, plan).await?;
            let renderer = load_renderer(engine, plan).await?;
            in_session(plan, plan.target().await?, engine, async |session| {
                let results = submit::submit(session, &renderer, &policies, &specs).await;
                let report: Vec<serde_json::Value> = specs
                    .iter()
                    .zip(results)
                    .map(|(spec, result)| match result {
                        Ok(job) => serde_json::json!({
                            "job": spec.name.as_str(),
                            "job_id": job.job_id.as_str(),
                            "job_dir": job.job_dir,
                        }),
                        Err(error) => serde_json::json!({
                            "job": spec.name.as_str(),
                            "error": diagnostics::render(&error),
                        }),
                    })
                    .collect();
                json(report)
            })
            .await
        })
        .await
    }

    #[tool(
        description = "The state, exit code and reason of jobs (one squeue for all; sacct for ended ones)."
    )]
    async fn status(&self, Parameters(args): Parameters<JobIds>) -> ToolResult {
        self.call("status", &args.job_ids, async |plan, engine| {
            let ids = ids(&args.job_ids)?;
            in_session(plan, plan.target().await?, engine, async |session| {
                json(observe::status(session, &ids).await?)
            })
            .await
        })
        .await
    }

    #[tool(description = "The cluster's queue (anyone's jobs), filtered.")]
    async fn jobs_list(&self, Parameters(args): Parameters<ListArgs>) -> ToolResult {
        let logged = [args.mine.to_string()];
        self.call("jobs_list", &logged, async |plan, engine| {
            let filter = QueueFilter {
                mine: args.mine,
                users: args.users.clone(),
                partitions: args.partitions.clone(),
                states: args.states.iter().map(|s| s.to_ascii_uppercase()).collect(),
                names: args.names.clone(),
            };
            in_session(plan, plan.target().await?, engine, async |session| {
                let rows = views::queue(&session.conn, &filter)
                    .await
                    .map_err(LifecycleError::from)?;
                json(rows)
            })
            .await
        })
        .await
    }

    #[tool(
        description = "Everything Slurm knows about one job (scontrol), and this machine's journal of it."
    )]
    async fn jobs_show(&self, Parameters(args): Parameters<OneJob>) -> ToolResult {
        self.call(
            "jobs_show",
            std::slice::from_ref(&args.job_id),
            async |plan, engine| {
                let id = one_id(&args.job_id)?;
                in_session(plan, plan.target().await?, engine, async |session| {
                    let records = views::job_records(&session.conn, &id)
                        .await
                        .map_err(LifecycleError::from)?;
                    let (key, asked) = (session.target.key.clone(), id.clone());
                    let journaled = session
                        .journal
                        .run(move |j| j.find_by_job_id(&key, &asked))
                        .await
                        .map_err(LifecycleError::from)?;
                    json(serde_json::json!({
                        "slurm": records,
                        "job_dir": journaled.as_ref().map(|s| s.job_dir.clone()),
                        "renderer": journaled.as_ref().map(|s| s.renderer.clone()),
                    }))
                })
                .await
            },
        )
        .await
    }

    #[tool(
        description = "A job's stdout (or stderr): up to 256 KiB from `offset`. Says when there is more."
    )]
    async fn logs(&self, Parameters(args): Parameters<LogArgs>) -> ToolResult {
        self.call(
            "logs",
            std::slice::from_ref(&args.job_id),
            async |plan, engine| {
                let id = one_id(&args.job_id)?;
                in_session(plan, plan.target().await?, engine, async |session| {
                    let bytes =
                        logs::read_log(session, &id, args.stderr, args.offset, MAX_LOG_BYTES + 1)
                            .await?;
                    let more = bytes.len() as u64 > MAX_LOG_BYTES;
                    let shown = &bytes[..bytes.len().min(MAX_LOG_BYTES as usize)];
                    let mut text = String::from_utf8_lossy(shown).into_owned();
                    if more {
                        text.push_str(&format!(
                            "\n[more: call logs again with offset {}]",
                            args.offset + MAX_LOG_BYTES
                        ));
                    }
                    Ok(text)
                })
                .await
            },
        )
        .await
    }

    #[tool(description = "Cancel jobs (scancel); jobs already ended are reported, not cancelled.")]
    async fn cancel(&self, Parameters(args): Parameters<JobIds>) -> ToolResult {
        self.call("cancel", &args.job_ids, async |plan, engine| {
            let ids = ids(&args.job_ids)?;
            in_session(plan, plan.target().await?, engine, async |session| {
                let found = observe::cancel(session, &ids).await?;
                json(serde_json::json!({
                    "cancelled": found.cancelled.iter().map(JobId::as_str).collect::<Vec<_>>(),
                    "not_running": found.ended.iter().map(|(id, _)| id).chain(&found.unknown).map(JobId::as_str).collect::<Vec<_>>(),
                }))
            })
            .await
        })
        .await
    }

    #[tool(
        description = "Copy a job's outputs (its `outputs` globs) into ./<name>-<id> where the server runs; nothing is replaced unless force is set."
    )]
    async fn fetch(&self, Parameters(args): Parameters<FetchArgs>) -> ToolResult {
        self.call(
            "fetch",
            std::slice::from_ref(&args.job_id),
            async |plan, engine| {
                let id = one_id(&args.job_id)?;
                in_session(plan, plan.target().await?, engine, async |session| {
                    let fetched =
                        crate::lifecycle::fetch::fetch(session, &id, None, args.force).await?;
                    json(serde_json::json!({
                        "into": fetched.dest,
                        "files": fetched.files,
                        "bytes": fetched.bytes,
                        "unmatched": fetched.unmatched,
                        "refused": fetched.refused,
                    }))
                })
                .await
            },
        )
        .await
    }

    #[tool(
        description = "The JSON result a job wrote to $SLURMKIT_RESULT (for an array: a list in task order)."
    )]
    async fn result(&self, Parameters(args): Parameters<OneJob>) -> ToolResult {
        self.call(
            "result",
            std::slice::from_ref(&args.job_id),
            async |plan, engine| {
                let id = one_id(&args.job_id)?;
                in_session(plan, plan.target().await?, engine, async |session| {
                    json(crate::lifecycle::results::result_json(session, &id).await?)
                })
                .await
            },
        )
        .await
    }
}

impl Server {
    /// Journal the call, run it, journal how it went; a failure is the tool's error text (what the
    /// command would print), not a protocol error.
    async fn call(
        &self,
        tool: &str,
        arguments: &[String],
        run: impl AsyncFnOnce(&Plan, &PluginEngine) -> Result<String, Failure>,
    ) -> ToolResult {
        let journal = self.plan.dirs.journal();
        let arguments = serde_json::to_string(arguments).unwrap_or_default();
        let tool_name = tool.to_string();
        let journal_path = journal.clone();
        let id = tokio::task::spawn_blocking(move || {
            Journal::open(&journal_path).and_then(|j| j.begin_tool_call(&tool_name, &arguments))
        })
        .await
        .ok()
        .and_then(|r| {
            r.map_err(|e| tracing::error!("cannot journal the tool call: {e}"))
                .ok()
        });
        let outcome = run(&self.plan, &self.engine).await;
        let (result, error) = match outcome {
            Ok(text) => (
                CallToolResult::success(vec![ContentBlock::text(text)]),
                None,
            ),
            Err(failure) => {
                let text = diagnostics::render(failure.error());
                (
                    CallToolResult::error(vec![ContentBlock::text(text.clone())]),
                    Some(text),
                )
            }
        };
        if let Some(id) = id {
            let _ = tokio::task::spawn_blocking(move || {
                let journal = Journal::open(&journal)?;
                let outcome = if error.is_some() { "error" } else { "ok" };
                journal.end_tool_call(id, outcome, error.as_deref())
            })
            .await;
        }
        Ok(result)
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Server {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("slurmkit", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Submit and inspect SLURM jobs on the cluster of the Slurmfile this server was started with. Submit only names Slurmfile jobs; use status or jobs_list to follow them, logs and result to read what they produced.",
            )
    }
}

/// Serve MCP on stdin/stdout until the client goes away.
pub async fn serve(plan: &Plan, read_only: bool) -> Result<ExitCode, Failure> {
    let mut tool_router = Server::tool_router();
    if read_only {
        for tool in WRITING_TOOLS {
            tool_router.remove_route(tool);
        }
    }
    let server = Server {
        plan: Arc::new(plan.clone()),
        engine: engine(plan)?,
        tool_router,
    };
    let running = server
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| diagnostics::Refused(format!("the MCP session did not start: {e}")))?;
    running
        .waiting()
        .await
        .map_err(|e| diagnostics::Refused(format!("the MCP session ended with an error: {e}")))?;
    Ok(ExitCode::SUCCESS)
}
