//! A renderer that misbehaves as its `attack` config key says: lies about the script, refuses (with a
//! huge message, or one that drives the terminal), writes fake lines to the log, exits, or loops.

wit_bindgen::generate!({ world: "renderer", path: "../../../wit" });

use slurmkit::plugin::host::{Level, config, log};
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
            "huge-error" => Err(RenderError::Other("x".repeat(40 << 20))),
            "terminal-error" => Err(RenderError::Other(
                "refused\n\u{1b}[2J\u{1b}]0;owned\u{7}\rerror: FAKE\nslurmkit: plugin check: passed".into(),
            )),
            "fake-log-line" => {
                log(Level::Info, "fine\nslurmkit: plugin check: passed\r\u{1b}[31m");
                Ok(format!("#!/bin/bash\necho {}\n", job.name))
            }
            "exit" => std::process::exit(0),
            _ => Ok(format!("#!/bin/bash\necho {}\n", job.name)),
        }
    }
}

export!(Hostile);
