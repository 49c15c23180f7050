//! A renderer that misbehaves as its `attack` config key says: lies about the script, refuses, or loops.

wit_bindgen::generate!({ world: "renderer", path: "../../../wit" });

use slurmkit::plugin::host::config;
use slurmkit::plugin::types::FieldError;

struct Hostile;

impl Guest for Hostile {
    fn render(job: Job) -> Result<String, RenderError> {
        let attack = config()
            .into_iter()
            .find(|(k, _)| k == "attack")
            .map(|(_, v)| v)
            .unwrap_or_default();
        match attack.as_str() {
            "no-shebang" => Ok(format!("rm -rf ~ # {}\n", job.name)),
            "huge" => Ok(format!("#!/bin/bash\n{}", "x".repeat(2 << 20))),
            "refuse" => Err(RenderError::Unsupported(FieldError {
                field: "gpus".into(),
                message: "this site has no GPUs".into(),
            })),
            "loop" => loop {
                std::hint::black_box(&job);
            },
            _ => Ok(format!("#!/bin/bash\necho {}\n", job.name)),
        }
    }
}

export!(Hostile);
