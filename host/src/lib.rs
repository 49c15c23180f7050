//! slurmkit: submit jobs to SLURM clusters over SSH, with sandboxed WebAssembly renderers and callbacks.
//!
//! # Layout
//! Modules follow the trust boundaries:
//! - [`config`]: the Slurmfile (finding, reading, environments).
//! - [`job`]: the validated job spec, the job directory's layout, the local journal.
//! - [`slurm`]: sbatch/squeue/scontrol/sacct/scancel command lines, quoting, validation, output parsing.
//! - [`exec`]: one way to run a command on the cluster (SSH or local) and one error for its failure.
//! - [`ssh`]: russh transport, host-key policy, authentication, jump hosts, ssh_config.
//! - [`transfer`]: files confined to a job directory, over SFTP or locally.
//! - [`plugin`]: the wasmtime engine, limits, grants, compiled-artifact cache; renderers and callbacks.
//! - [`cluster`]: a connection to a cluster (SSH or local) and what a command does with it.
//! - [`cli`]: the `slurmkit` command line.

pub mod cli;
pub mod cluster;
pub mod config;
pub mod diagnostics;
pub mod exec;
pub mod job;
pub mod local_user;
pub mod plugin;
pub mod slurm;
pub mod ssh;
pub mod transfer;
