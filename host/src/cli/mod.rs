//! The `slurmkit` command line. `main` parses arguments, sets up logging and a runtime, runs one
//! command and turns its outcome into an exit code; the commands themselves are in `commands`.

/// `println!` that returns a closed stdout as the command's error (`?`) instead of panicking.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)?
    }};
}

mod allocation;
pub mod args;
mod commands;
mod dash;
pub mod diagnostics;
mod doctor;
mod import;
mod mcp;
mod plugin_cmd;
mod plugins;
mod session;
#[cfg(test)]
mod snapshot;
mod terminal;
mod views;
mod work;

use std::ffi::OsString;
use std::process::ExitCode;

use crate::error::exit;

pub use diagnostics::Failure;
pub use terminal::TerminalPrompter;

/// Run the CLI with `args` (including the program name).
pub fn main(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let args: Vec<OsString> = args.into_iter().collect();
    // The compiling child this binary starts to compile a plugin under limits.
    if args
        .get(1)
        .is_some_and(|a| a == crate::plugin::compile::CHILD_ARG)
    {
        return crate::plugin::compile::child_main(&args[2..]);
    }
    // The node-side runner a job's script hands itself to (not for people: no help, no Slurmfile).
    if args.get(1).is_some_and(|a| a == crate::runner::RUNNER_ARG) {
        return crate::runner::main(&args[2..]);
    }
    let cli = match args::Cli::parse_args(args) {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return ExitCode::from(if error.use_stderr() {
                exit::USAGE
            } else {
                exit::SUCCESS
            });
        }
    };
    init_logging(cli.global.verbose, cli.global.quiet);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => return diagnostics::report(&error),
    };
    let outcome = runtime.block_on(async {
        tokio::select! {
            // The command's own result.
            outcome = commands::run(cli) => outcome,
            // Ctrl-C: whatever was submitted is already journaled; exit like a shell does. Blocking
            // work (compiling a plugin, reading ssh_config, the journal) runs on other threads, so
            // this is seen at once whatever step the command is at.
            _ = tokio::signal::ctrl_c() => Ok(ExitCode::from(exit::INTERRUPTED)),
        }
    });
    // Do not wait for background tasks (an SSH keepalive, a stuck plugin call, a compile) on the way out.
    runtime.shutdown_background();
    // A question may have been on the screen with echo off when the command ended.
    terminal::restore();
    match outcome {
        Ok(code) => code,
        // The reader went away (`slurmkit ... | head`): end quietly, as a shell tool killed by SIGPIPE
        // reports it.
        Err(failure) if failure.is_broken_pipe() => ExitCode::from(exit::BROKEN_PIPE),
        Err(failure) => diagnostics::report(failure.error()),
    }
}

fn init_logging(verbose: u8, quiet: bool) {
    let default = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn,slurmkit::plugin=info",
        (false, 1) => "info,slurmkit=debug",
        (false, _) => "debug,slurmkit=trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("SLURMKIT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    use std::io::IsTerminal;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .without_time()
        .try_init();
}
