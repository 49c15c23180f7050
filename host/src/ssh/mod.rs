//! SSH to the cluster: OpenSSH's semantics for host keys, authentication and jump hosts, over russh.

pub mod auth;
pub mod config;
pub mod known_hosts;
pub mod policy;
pub mod session;

pub use policy::HostKeyPolicy;
pub use session::{Hop, Session, SshError, Transport};
