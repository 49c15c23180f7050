//! SSH to the cluster: OpenSSH's semantics for host keys, authentication and jump hosts, over russh.

pub mod auth;
pub mod authenticator;
pub mod channels;
pub mod config;
pub mod config_file;
pub mod handler;
pub mod known_hosts;
pub mod policy;
mod questions;
pub mod session;
mod signer;
mod tokens;

pub use session::{Hop, Session, SshError, Transport};
