//! The command line, as clap parses it. Nothing here does I/O; [`GlobalArgs::flags`] and
//! [`JobOverrides::flags`] hand it to the plan as plain values.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::BackendKind;
use crate::lifecycle::{Flags, JobFlags};
use crate::types::HostKeyPolicy;
use crate::types::names::JobId;

#[derive(Debug, Parser)]
#[command(
    name = "slurmkit",
    version,
    about = "Submit jobs to SLURM clusters over SSH, with sandboxed plugins"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// Parse `args` as clap does, except that `import` takes its environments from the command line
    /// only: a `SLURM_ENV` left set for the other commands does not narrow a conversion.
    pub fn parse_args(
        args: impl IntoIterator<Item = std::ffi::OsString>,
    ) -> Result<Cli, clap::Error> {
        use clap::{CommandFactory, FromArgMatches, parser::ValueSource};
        let matches = Cli::command().try_get_matches_from(args)?;
        let mut cli = Cli::from_arg_matches(&matches).map_err(|e| e.format(&mut Cli::command()))?;
        let ambient = matches
            .subcommand_matches("import")
            .and_then(|import| import.value_source("environment"))
            == Some(ValueSource::EnvVariable);
        if let Command::Import { environments, .. } = &mut cli.command
            && ambient
        {
            environments.clear();
        }
        Ok(cli)
    }
}

/// Flags every command takes; they override the Slurmfile.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// The Slurmfile to use (a file, or a directory to look in). Default: search from the current directory up.
    #[arg(long, global = true, env = "SLURMFILE", value_name = "PATH")]
    pub slurmfile: Option<PathBuf>,
    /// The Slurmfile environment to use (`[environments.<NAME>]`).
    #[arg(long = "env", global = true, env = "SLURM_ENV", value_name = "NAME")]
    pub environment: Option<String>,
    /// Cluster login host (or an alias from ~/.ssh/config).
    #[arg(long, global = true, value_name = "HOST", help_heading = "Connection")]
    pub hostname: Option<String>,
    /// User name on the cluster.
    #[arg(long, global = true, value_name = "USER", help_heading = "Connection")]
    pub username: Option<String>,
    /// SSH port of the login host.
    #[arg(long, global = true, value_name = "PORT", help_heading = "Connection")]
    pub port: Option<u16>,
    /// What to do with a host whose key is not recorded. A changed key is always refused.
    #[arg(
        long,
        global = true,
        value_enum,
        value_name = "POLICY",
        help_heading = "Connection"
    )]
    pub host_key_policy: Option<HostKeyPolicy>,
    /// Private key to authenticate with.
    #[arg(long, global = true, value_name = "PATH", help_heading = "Connection")]
    pub key_file: Option<PathBuf>,
    /// Jump hosts, as `ssh -J`: [user@]host[:port][,...].
    #[arg(
        long = "jump",
        global = true,
        value_name = "HOSTS",
        help_heading = "Connection"
    )]
    pub proxy_jump: Option<String>,
    /// `ssh` (default) or `local` (run sbatch on this machine).
    #[arg(
        long,
        global = true,
        value_enum,
        value_name = "BACKEND",
        help_heading = "Connection"
    )]
    pub backend: Option<BackendKind>,
    /// Where the journal lives (default: the user data directory).
    #[arg(long, global = true, env = "SLURMKIT_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Where compiled plugins are cached (default: the user cache directory).
    #[arg(long, global = true, env = "SLURMKIT_CACHE_DIR", value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// More log output (-v debug, -vv trace).
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors.
    #[arg(long, global = true)]
    pub quiet: bool,
}

impl GlobalArgs {
    pub fn flags(&self) -> Flags {
        Flags {
            slurmfile: self.slurmfile.clone(),
            environment: self.environment.clone(),
            hostname: self.hostname.clone(),
            username: self.username.clone(),
            port: self.port,
            host_key_policy: self.host_key_policy,
            key_file: self.key_file.clone(),
            proxy_jump: self.proxy_jump.clone(),
            backend: self.backend,
            data_dir: self.data_dir.clone(),
            cache_dir: self.cache_dir.clone(),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the sbatch script for a job; nothing is sent anywhere.
    Render {
        /// A `[jobs.<NAME>]` entry of the Slurmfile.
        job: Option<String>,
        #[command(flatten)]
        overrides: JobOverrides,
    },
    /// Submit jobs over one connection and print their ids, one per line in the order given.
    Submit {
        /// `[jobs.<NAME>]` entries of the Slurmfile (default: its only job, or `[job]`).
        #[arg(value_name = "JOB")]
        jobs: Vec<String>,
        #[command(flatten)]
        overrides: JobOverrides,
        /// Wait until the jobs end; the exit code reflects how they ended.
        #[arg(long)]
        wait: bool,
        /// With --wait: fetch each job's outputs once it ends (into ./<name>-<id>).
        #[arg(long, requires = "wait")]
        fetch: bool,
        /// Submit only the named jobs, not the jobs they run after: those are taken from the latest
        /// submission of each from here.
        #[arg(long)]
        only: bool,
    },
    /// Print a job's result: the JSON it wrote to $SLURMKIT_RESULT (for an array, a list in task
    /// order, null where a task wrote none). Exit code: 15 no result written, 16 not JSON, 17 not ended
    /// yet, 10-13 the job failed.
    Result {
        /// The job (`123`, or `123_4` for a task of an array).
        job_id: JobId,
    },
    /// Copy a job's outputs (its `outputs` globs) from its job directory. Nothing is replaced unless
    /// --force is given (exit code 18 otherwise).
    Fetch {
        /// The job (`123`, or `123_4` for a task of an array).
        job_id: JobId,
        /// Where to put them (default: ./<name>-<id>).
        #[arg(long, value_name = "DIR")]
        to: Option<PathBuf>,
        /// Replace files that are already there.
        #[arg(long)]
        force: bool,
    },
    /// Show the state of jobs (default: the ones submitted recently from here).
    Status {
        /// Job ids (`123`, or `123_4` for a task of an array).
        job_ids: Vec<JobId>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Wait until jobs end, with one shared query per round. Exit code: 0 COMPLETED, 8 the timeout ran
    /// out, 10 FAILED, 11 CANCELLED, 12 TIMEOUT, 13 OUT_OF_MEMORY, 14 a job Slurm does not know (the
    /// worst of several jobs).
    Wait {
        /// Job ids (`123`, or `123_4` for a task of an array).
        #[arg(required = true, value_name = "JOB_ID")]
        job_ids: Vec<JobId>,
        /// Give up after this many seconds (exit code 8).
        #[arg(long, value_name = "SECONDS")]
        timeout: Option<u64>,
    },
    /// Cancel jobs.
    Cancel {
        /// Job ids (`123`, or `123_4` for a task of an array).
        #[arg(required = true)]
        job_ids: Vec<JobId>,
    },
    /// Print a job's output: from its job directory for a job submitted from here, else from the path
    /// Slurm reports for it.
    Logs {
        /// The job (`123`, or `123_4` for a task of an array).
        job_id: JobId,
        /// The job's stderr instead of its stdout.
        #[arg(long)]
        stderr: bool,
        /// Keep printing new output until the job ends.
        #[arg(long, short = 'f')]
        follow: bool,
    },
    /// A shell in a running job's allocation (on a terminal), or one command there with `-- CMD...`.
    /// Waits until the job runs. Exit code: the remote shell's or command's.
    Connect {
        /// The job (`123`, or `123_4` for a task of an array).
        job_id: JobId,
        /// One of the job's nodes (default: its first).
        #[arg(long, value_name = "NODE")]
        node: Option<String>,
        /// The command to run instead of a shell, without a terminal.
        #[arg(last = true, value_name = "CMD")]
        command: Vec<String>,
    },
    /// Forward a local port to a port on a running job's node, through every jump host; waits until
    /// the job runs, prints the local URL, and ends with the job or on Ctrl-C.
    Tunnel {
        /// The job (`123`, or `123_4` for a task of an array).
        job_id: JobId,
        /// `[LOCAL_PORT:]REMOTE_PORT`; the local port defaults to the remote one, 0 picks a free one.
        #[arg(value_name = "[LOCAL_PORT:]REMOTE_PORT", value_parser = parse_ports)]
        ports: Ports,
        /// One of the job's nodes (default: its first).
        #[arg(long, value_name = "NODE")]
        node: Option<String>,
        /// The local address to listen on; other machines can reach the tunnel when it is not loopback.
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1")]
        bind: std::net::IpAddr,
    },
    /// The whole queue (anyone's jobs): list, show one, or watch.
    #[command(subcommand)]
    Jobs(JobsCommand),
    /// The cluster's partitions, nodes by state, free CPUs and GPUs.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Check each step of reaching the cluster and say how to fix the first that fails.
    Doctor {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Inspect and check WebAssembly plugins.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// A terminal dashboard: the queue, your jobs with live state, a job's log tail, cancel (with a
    /// confirmation). Keys: q quit, tab switch, arrows select, l log, c cancel, r refresh.
    Dash {
        /// Seconds between refreshes.
        #[arg(long, value_name = "SECONDS", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
        interval: u64,
    },
    /// Serve the Model Context Protocol on stdin/stdout, so an AI agent can submit (Slurmfile jobs
    /// only) and inspect jobs; every tool call is journaled.
    Mcp {
        /// Offer only the tools that change nothing (no submit, cancel or fetch).
        #[arg(long)]
        read_only: bool,
    },
    /// Convert the Python SDK's Slurmfile (or a pyproject.toml with [tool.slurm]) into a slurmkit
    /// Slurmfile on stdout; what cannot be carried over is listed with why, on stderr and as comments
    /// at its top. Exit code 3: not TOML, or not the SDK's schema; 18: --output exists.
    Import {
        /// The SDK's Slurmfile, or a pyproject.toml with a [tool.slurm] table.
        #[arg(value_name = "PATH")]
        path: PathBuf,
        /// Convert only this environment (repeat for more; default: all of them). `default`, the base
        /// of every environment, is always converted.
        #[arg(long = "env", id = "environment", value_name = "NAME")]
        environments: Vec<String>,
        /// Write the Slurmfile to FILE (atomically) instead of stdout.
        #[arg(long, short = 'o', value_name = "FILE")]
        output: Option<PathBuf>,
        /// Replace FILE when it exists (otherwise exit code 18).
        #[arg(long, requires = "output")]
        force: bool,
    },
    /// Print a shell completion script: `slurmkit completions bash > /etc/bash_completion.d/slurmkit`.
    Completions {
        /// The shell to complete in.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff): `slurmkit man > ~/.local/share/man/man1/slurmkit.1`.
    Man,
}

#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// The queue (one squeue), filtered.
    List {
        #[command(flatten)]
        filter: QueueArgs,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Everything Slurm knows about a job, and what this machine's journal knows (job directory,
    /// plugins with their sha256, callback events).
    Show {
        /// The job (`123`, or `123_4` for a task of an array).
        job_id: JobId,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// The queue, refreshed in place (one squeue per round) until Ctrl-C.
    Watch {
        #[command(flatten)]
        filter: QueueArgs,
        /// Seconds between rounds.
        #[arg(long, value_name = "SECONDS", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
        interval: u64,
    },
}

/// Which jobs of the queue to show.
#[derive(Debug, Clone, Default, Args)]
pub struct QueueArgs {
    /// Only your own jobs on the cluster.
    #[arg(long)]
    pub mine: bool,
    /// Only these users' jobs.
    #[arg(long, value_name = "USER", value_delimiter = ',')]
    pub user: Vec<String>,
    /// Only jobs in these partitions.
    #[arg(long, value_name = "PARTITION", value_delimiter = ',')]
    pub partition: Vec<String>,
    /// Only jobs in these states (PENDING, RUNNING, ...; `all` for finished ones Slurm still knows too).
    #[arg(long, value_name = "STATE", value_delimiter = ',', value_parser = parse_state)]
    pub state: Vec<String>,
    /// Only jobs with these names.
    #[arg(long, value_name = "NAME", value_delimiter = ',')]
    pub name: Vec<String>,
}

fn parse_state(text: &str) -> Result<String, String> {
    let upper = text.trim().to_ascii_uppercase();
    if upper == "ALL"
        || crate::types::status::JobState::parse(&upper) != crate::types::status::JobState::Unknown
    {
        Ok(upper)
    } else {
        Err(format!(
            "{text:?} is not a Slurm job state (PENDING, RUNNING, COMPLETED, FAILED, ..., or all)"
        ))
    }
}

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Partitions with their nodes by state, CPUs and GPUs (one sinfo).
    Show {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// The same, refreshed in place (one sinfo per round) until Ctrl-C.
    Watch {
        /// Seconds between rounds.
        #[arg(long, value_name = "SECONDS", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
        interval: u64,
    },
}

/// `tunnel`'s ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    pub local: u16,
    pub remote: u16,
}

fn parse_ports(text: &str) -> Result<Ports, String> {
    let port = |p: &str, zero: bool| match p.parse::<u16>() {
        Ok(0) if !zero => Err("the remote port cannot be 0".to_string()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("{p:?} is not a port number (0-65535)")),
    };
    match text.split_once(':') {
        Some((local, remote)) => Ok(Ports {
            local: port(local, true)?,
            remote: port(remote, false)?,
        }),
        None => {
            let remote = port(text, false)?;
            Ok(Ports {
                local: remote,
                remote,
            })
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Show the world, WIT version, imports, exports, size and sha256 of a plugin.
    Inspect {
        /// The `.wasm` component.
        file: PathBuf,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Load a plugin under its limits and run it on sample input (every event, for callbacks).
    Check {
        /// The `.wasm` component.
        file: PathBuf,
        /// Render or send events for this Slurmfile job instead of a sample job.
        #[arg(long, value_name = "JOB")]
        job: Option<String>,
    },
}

/// Quick overrides of a job's Slurmfile settings.
#[derive(Debug, Clone, Default, Args)]
pub struct JobOverrides {
    /// Job name.
    #[arg(short = 'J', long = "job-name", alias = "name", value_name = "NAME")]
    pub name: Option<String>,
    /// Partition to submit to.
    #[arg(short = 'p', long)]
    pub partition: Option<String>,
    /// Time limit: minutes, [D-]HH:MM:SS, or with a unit (30m, 2h).
    #[arg(short = 't', long)]
    pub time: Option<String>,
    /// Account to charge.
    #[arg(short = 'A', long)]
    pub account: Option<String>,
    /// Quality of service.
    #[arg(short = 'q', long)]
    pub qos: Option<String>,
    /// Nodes: a count, or MIN-MAX.
    #[arg(short = 'N', long)]
    pub nodes: Option<String>,
    /// Tasks.
    #[arg(short = 'n', long)]
    pub ntasks: Option<u32>,
    /// CPUs per task.
    #[arg(short = 'c', long)]
    pub cpus_per_task: Option<u32>,
    /// Memory per node (e.g. 4G).
    #[arg(long)]
    pub mem: Option<String>,
    /// Memory per CPU (e.g. 2G).
    #[arg(long)]
    pub mem_per_cpu: Option<String>,
    /// Generic resources (e.g. gpu:2).
    #[arg(long)]
    pub gres: Option<String>,
    /// GPUs (e.g. 2, or a100:2).
    #[arg(long)]
    pub gpus: Option<String>,
    /// Node features required.
    #[arg(short = 'C', long)]
    pub constraint: Option<String>,
    /// An array of tasks (e.g. 0-9, 1,3,5, 0-99%10).
    #[arg(long)]
    pub array: Option<String>,
    /// Jobs to run after, in sbatch's syntax (afterok:123,afterany:456).
    #[arg(long)]
    pub dependency: Option<String>,
    /// Where the job's stdout goes (Slurm's patterns, relative to the job directory).
    #[arg(short = 'o', long)]
    pub output: Option<String>,
    /// Where the job's stderr goes.
    #[arg(short = 'e', long)]
    pub error: Option<String>,
    /// The directory the job runs in (default: its job directory).
    #[arg(short = 'D', long)]
    pub chdir: Option<String>,
    /// A job argument, as KEY=JSON (`--arg lr=0.1 --arg 'layers=[64,64]'`), over the Slurmfile's `args`.
    #[arg(long = "arg", value_name = "KEY=JSON")]
    pub args: Vec<String>,
    /// Run this command instead of the Slurmfile's (everything after `--`).
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

impl JobOverrides {
    pub fn flags(&self) -> JobFlags {
        JobFlags {
            name: self.name.clone(),
            partition: self.partition.clone(),
            account: self.account.clone(),
            qos: self.qos.clone(),
            time: self.time.clone(),
            options: [
                ("nodes", "--nodes", self.nodes.clone()),
                ("ntasks", "--ntasks", self.ntasks.map(|n| n.to_string())),
                (
                    "cpus_per_task",
                    "--cpus-per-task",
                    self.cpus_per_task.map(|n| n.to_string()),
                ),
                ("mem", "--mem", self.mem.clone()),
                ("mem_per_cpu", "--mem-per-cpu", self.mem_per_cpu.clone()),
                ("gres", "--gres", self.gres.clone()),
                ("gpus", "--gpus", self.gpus.clone()),
                ("constraint", "--constraint", self.constraint.clone()),
                ("array", "--array", self.array.clone()),
                ("dependency", "--dependency", self.dependency.clone()),
                ("output", "--output", self.output.clone()),
                ("error", "--error", self.error.clone()),
                ("working_dir", "--chdir", self.chdir.clone()),
            ]
            .into_iter()
            .filter_map(|(key, flag, value)| value.map(|value| (key, flag, value)))
            .collect(),
            args: self.args.clone(),
            command: self.command.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Every flag and argument of every command says what it is for.
    #[test]
    fn every_argument_has_help() {
        fn check(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            let path = format!("{path} {}", command.get_name());
            if command.get_about().is_none() && !command.is_hide_set() {
                missing.push(format!("{path} (the command)"));
            }
            for arg in command.get_arguments() {
                let builtin = matches!(arg.get_id().as_str(), "help" | "version");
                if !builtin && arg.get_help().is_none() && !arg.is_hide_set() {
                    missing.push(format!("{path} {}", arg.get_id()));
                }
            }
            for sub in command.get_subcommands() {
                check(sub, &path, missing);
            }
        }
        let mut missing = Vec::new();
        check(&Cli::command(), "", &mut missing);
        assert!(missing.is_empty(), "without help: {missing:#?}");
    }

    /// `import --env` takes several names, where every other command takes one.
    #[test]
    fn import_takes_several_environments() {
        let cli = Cli::try_parse_from([
            "slurmkit",
            "import",
            "Slurmfile",
            "--env",
            "prod",
            "--env",
            "dev",
        ])
        .unwrap();
        let Command::Import { environments, .. } = cli.command else {
            panic!("{cli:?}")
        };
        assert_eq!(environments, ["prod", "dev"]);
        let cli = Cli::try_parse_from(["slurmkit", "import", "Slurmfile"]).unwrap();
        let Command::Import { environments, .. } = cli.command else {
            panic!("{cli:?}")
        };
        assert!(environments.is_empty());
        let cli = Cli::try_parse_from(["slurmkit", "--env", "prod", "render"]).unwrap();
        assert_eq!(cli.global.environment.as_deref(), Some("prod"));
        assert!(Cli::try_parse_from(["slurmkit", "import", "x", "--force"]).is_err());
    }

    #[test]
    fn tunnel_ports_read_as_ssh_minus_l_does() {
        assert_eq!(
            parse_ports("8888").unwrap(),
            Ports {
                local: 8888,
                remote: 8888
            }
        );
        assert_eq!(
            parse_ports("0:8888").unwrap(),
            Ports {
                local: 0,
                remote: 8888
            }
        );
        assert!(parse_ports("8888:0").is_err());
        assert!(parse_ports("x:1").is_err());
    }
}
