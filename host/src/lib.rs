//! slurmkit: submit jobs to SLURM clusters over SSH, with sandboxed WebAssembly renderers and callbacks.
//!
//! # Layout
//! Modules sit on floors; a module imports only from its own floor or below, never from above.
//! - Command line: [`cli`] parses arguments and prints.
//! - Lifecycle: [`lifecycle`], a connection's session (plan, submit, reconcile, observe, wait, logs,
//!   the outbox of callback events), and [`runner`], the compute-node side of a job.
//! - Transports and engines: [`ssh`] (OpenSSH's semantics over russh), [`transfer`] (files confined
//!   to a job directory), [`plugin`] (the wasmtime sandbox), [`slurm`] (Slurm's commands and their
//!   output), [`journal`] (the local record of every submission and delivery).
//! - Configuration and values: [`config`] (the Slurmfile), [`types`] (validated values), [`wit`] (the
//!   plugin interface's generated types), [`exec`] (running a command, anywhere), [`error`] (exit codes
//!   and hints), [`local_user`].

pub mod cli;
pub mod config;
pub mod error;
pub mod exec;
pub mod journal;
pub mod lifecycle;
pub mod local_user;
pub mod plugin;
pub mod runner;
pub mod slurm;
pub mod ssh;
pub mod transfer;
pub mod types;
pub mod wit;
