//! Host bindings for `slurmkit:plugin@0.1.0`, one module per world. The callbacks world reuses the
//! renderer world's `types` and `host` bindings so a job record is one Rust type.
//!
//! A future `@0.2.0` adds a sibling module (`v0_2_0`) and leaves this one as it is.

pub mod v0_1_0 {
    pub mod renderer {
        wasmtime::component::bindgen!({
            path: "../wit",
            world: "renderer",
            imports: { default: async | trappable },
            exports: { default: async },
        });
    }

    pub mod callbacks {
        wasmtime::component::bindgen!({
            path: "../wit",
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
    pub const VERSION: (u64, u64, u64) = (0, 1, 0);
}
