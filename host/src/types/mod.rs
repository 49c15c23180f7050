//! The bottom floor's value types: everything validated, quoted or named, with no I/O and no imports
//! from above. Job specs and their units, Slurm names and ids, job states, the job directory's layout,
//! shell command lines, and the host-key policy.

pub mod container;
pub mod job_dir;
pub mod names;
pub mod shell;
pub mod spec;
pub mod status;
pub mod text;
pub mod units;
pub mod work;

/// What to do with a host whose key is not recorded. A key that changed, or is revoked, is refused
/// under every policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum HostKeyPolicy {
    /// Refuse hosts whose key is not recorded.
    Reject,
    /// Log the fingerprint of an unknown host and connect.
    Warn,
    /// Record the key of an unknown host and connect.
    Auto,
}

impl HostKeyPolicy {
    /// The policy when nothing sets one: the original SDK's default.
    pub const DEFAULT: HostKeyPolicy = HostKeyPolicy::Warn;

    pub fn as_str(self) -> &'static str {
        match self {
            HostKeyPolicy::Reject => "reject",
            HostKeyPolicy::Warn => "warn",
            HostKeyPolicy::Auto => "auto",
        }
    }
}
