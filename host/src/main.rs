//! The `slurmkit` binary: everything lives in the library (`slurmkit::cli`).

fn main() -> std::process::ExitCode {
    slurmkit::cli::main(std::env::args_os())
}
