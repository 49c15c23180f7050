//! The WIT package plugins see (`wit/`), as Rust: one bindgen module per accepted version.
//!
//! The newest version's generated types are the host's own: a job state, an event kind or a dependency
//! kind is one type everywhere, with no hand-made copy to keep in step. Their names (the WIT's kebab
//! names for events and dependencies, Slurm's for job states), parsing and serde forms are written here,
//! next to the bindings. Each version has its own module; an older one stays as it was, so components
//! built against it keep loading through its own bindings (see `plugin::compat`).

use std::fmt;

/// The bindings of one accepted version of the WIT package, at `$path`.
macro_rules! bindings {
    ($path:literal, $version:expr) => {
        pub mod renderer {
            wasmtime::component::bindgen!({
                path: $path,
                world: "renderer",
                imports: { default: async | trappable },
                exports: { default: async },
                additional_derives: [PartialEq, Eq, Hash, PartialOrd, Ord],
            });
        }

        pub mod callbacks {
            wasmtime::component::bindgen!({
                path: $path,
                world: "callbacks",
                imports: { default: async | trappable },
                exports: { default: async },
                with: {
                    "slurmkit:plugin/types": super::renderer::slurmkit::plugin::types,
                    "slurmkit:plugin/host": super::renderer::slurmkit::plugin::host,
                },
            });
        }

        pub use renderer::slurmkit::plugin::{host, types};

        /// The package version these bindings implement.
        pub const VERSION: (u64, u64, u64) = $version;
    };
    // Since 0.2.0: site policies (0.1.x has no such world).
    ($path:literal, $version:expr, policy) => {
        bindings!($path, $version);

        pub mod policy {
            wasmtime::component::bindgen!({
                path: $path,
                world: "policy",
                imports: { default: async | trappable },
                exports: { default: async },
                with: {
                    "slurmkit:plugin/types": super::renderer::slurmkit::plugin::types,
                    "slurmkit:plugin/host": super::renderer::slurmkit::plugin::host,
                },
            });
        }
    };
}

/// `slurmkit:plugin@0.1.0`, frozen in `wit/0.1.0/`: components built against it keep loading.
pub mod v0_1_0 {
    bindings!("../wit/0.1.0", (0, 1, 0));
}

/// `slurmkit:plugin@0.2.0` (`wit/`): inputs, outputs, args, items, `after` and a container in the
/// job; where a compute-node event happened; the `policy` world.
pub mod v0_2_0 {
    bindings!("../wit", (0, 2, 0), policy);
}

/// The newest version: what the host itself speaks.
pub use v0_2_0 as latest;
pub use v0_2_0::types::{
    ContainerRuntime, DependencyKind, Emitter, Event, EventDetail, EventKind, Job, JobState,
    JobStatus as WitStatus,
};

/// Every version this host loads, newest first.
pub const ACCEPTED: &[(u64, u64, u64)] = &[v0_2_0::VERSION, v0_1_0::VERSION];

/// Names and parsing for the WIT enums the host uses as its own.
macro_rules! named_enum {
    ($ty:ident, $what:literal, [$($variant:ident => $name:literal),* $(,)?]) => {
        impl $ty {
            pub const ALL: &'static [$ty] = &[$($ty::$variant),*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $name,)*
                }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(self.as_str())
            }
        }

        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let name = String::deserialize(d)?;
                $ty::from_name(&name).ok_or_else(|| {
                    let known: Vec<&str> = $ty::ALL.iter().map(|k| k.as_str()).collect();
                    serde::de::Error::custom(format!(
                        concat!("unknown ", $what, " {:?}; ", $what, "s are: {}"),
                        name,
                        known.join(", ")
                    ))
                })
            }
        }
    };
}

named_enum!(EventKind, "event", [
    PackagingBegin => "packaging-begin",
    PackagingEnd => "packaging-end",
    SubmitBegin => "submit-begin",
    Submitted => "submitted",
    StatusChanged => "status-changed",
    RunBegin => "run-begin",
    RunEnd => "run-end",
    Completed => "completed",
    Failed => "failed",
    WorkflowBegin => "workflow-begin",
    WorkflowEnd => "workflow-end",
    WorkflowTaskSubmitted => "workflow-task-submitted",
    OutputsFetched => "outputs-fetched",
]);

impl EventKind {
    /// `status-changed`, or `status_changed` as a Slurmfile may write it.
    pub fn from_name(name: &str) -> Option<EventKind> {
        let name = name.replace('_', "-");
        EventKind::ALL.iter().copied().find(|k| k.as_str() == name)
    }
}

named_enum!(DependencyKind, "dependency kind", [
    After => "after",
    AfterAny => "afterany",
    AfterOk => "afterok",
    AfterNotOk => "afternotok",
    AfterCorr => "aftercorr",
    Singleton => "singleton",
]);

impl DependencyKind {
    /// sbatch's own word for it (`afterok`).
    pub fn from_name(name: &str) -> Option<DependencyKind> {
        DependencyKind::ALL
            .iter()
            .copied()
            .find(|k| k.as_str() == name)
    }
}

named_enum!(ContainerRuntime, "container runtime", [
    Pyxis => "pyxis",
    Apptainer => "apptainer",
]);

impl ContainerRuntime {
    pub fn from_name(name: &str) -> Option<ContainerRuntime> {
        ContainerRuntime::ALL
            .iter()
            .copied()
            .find(|k| k.as_str() == name)
    }
}

named_enum!(JobState, "job state", [
    Pending => "PENDING",
    Configuring => "CONFIGURING",
    Running => "RUNNING",
    Completing => "COMPLETING",
    Suspended => "SUSPENDED",
    Requeued => "REQUEUED",
    Completed => "COMPLETED",
    Failed => "FAILED",
    Cancelled => "CANCELLED",
    Timeout => "TIMEOUT",
    OutOfMemory => "OUT_OF_MEMORY",
    NodeFail => "NODE_FAIL",
    Preempted => "PREEMPTED",
    BootFail => "BOOT_FAIL",
    Deadline => "DEADLINE",
    Unknown => "UNKNOWN",
]);

impl JobState {
    /// Parse a state as any Slurm command prints it: long (`OUT_OF_MEMORY`), short (`OOM`, `CA`),
    /// or with a suffix (`CANCELLED by 1000`, `COMPLETING+`).
    pub fn parse(raw: &str) -> JobState {
        let word = raw
            .split(|c: char| c.is_whitespace() || c == '+')
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        match word.as_str() {
            "PENDING" | "PD" | "REQUEUE_HOLD" | "RH" | "REQUEUE_FED" | "RF" | "RESV_DEL_HOLD"
            | "RD" => JobState::Pending,
            "CONFIGURING" | "CF" => JobState::Configuring,
            "RUNNING" | "R" | "SIGNALING" | "SI" | "STAGE_OUT" | "SO" | "RESIZING" | "RS" => {
                JobState::Running
            }
            "COMPLETING" | "CG" => JobState::Completing,
            "SUSPENDED" | "S" | "STOPPED" | "ST" => JobState::Suspended,
            "REQUEUED" | "RQ" => JobState::Requeued,
            "COMPLETED" | "CD" => JobState::Completed,
            "FAILED" | "F" | "SPECIAL_EXIT" | "SE" | "REVOKED" | "RV" => JobState::Failed,
            "CANCELLED" | "CA" => JobState::Cancelled,
            "TIMEOUT" | "TO" => JobState::Timeout,
            "OUT_OF_MEMORY" | "OOM" => JobState::OutOfMemory,
            "NODE_FAIL" | "NF" => JobState::NodeFail,
            "PREEMPTED" | "PR" => JobState::Preempted,
            "BOOT_FAIL" | "BF" => JobState::BootFail,
            "DEADLINE" | "DL" => JobState::Deadline,
            _ => JobState::Unknown,
        }
    }

    fn from_name(name: &str) -> Option<JobState> {
        JobState::ALL.iter().copied().find(|k| k.as_str() == name)
    }

    /// The job will not change state again.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobState::Completed
                | JobState::Failed
                | JobState::Cancelled
                | JobState::Timeout
                | JobState::OutOfMemory
                | JobState::NodeFail
                | JobState::Preempted
                | JobState::BootFail
                | JobState::Deadline
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_serde() {
        for kind in EventKind::ALL {
            let json = serde_json::to_string(kind).unwrap();
            assert_eq!(serde_json::from_str::<EventKind>(&json).unwrap(), *kind);
        }
        for state in JobState::ALL {
            assert_eq!(JobState::parse(state.as_str()), *state);
        }
        for kind in DependencyKind::ALL {
            assert_eq!(DependencyKind::from_name(kind.as_str()), Some(*kind));
        }
        assert_eq!(
            EventKind::from_name("status_changed"),
            Some(EventKind::StatusChanged)
        );
        let err = serde_json::from_str::<EventKind>("\"submited\"").unwrap_err();
        assert!(
            err.to_string().contains("unknown event \"submited\""),
            "{err}"
        );
    }

    #[test]
    fn states_from_every_vocabulary() {
        assert_eq!(JobState::parse("CANCELLED by 1000"), JobState::Cancelled);
        assert_eq!(JobState::parse("OOM"), JobState::OutOfMemory);
        assert_eq!(JobState::parse("COMPLETING+"), JobState::Completing);
        assert_eq!(JobState::parse("PD"), JobState::Pending);
        assert_eq!(JobState::parse("weird"), JobState::Unknown);
        assert!(JobState::Timeout.is_terminal() && !JobState::Running.is_terminal());
    }
}
