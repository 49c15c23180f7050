//! A renderer that imports the host interface under its real name and version, with `log` taking
//! different arguments: it must be refused at load time as a signature mismatch, not as a missing
//! import.

wit_bindgen::generate!({
    inline: "
        package slurmkit:plugin@0.1.0;

        interface host {
            log: func(message: string, repeat: u32);
        }

        world renderer {
            import host;
            export render: func(job: string) -> result<string, string>;
        }
    ",
    world: "renderer",
});

struct Mismatched;

impl Guest for Mismatched {
    fn render(job: String) -> Result<String, String> {
        slurmkit::plugin::host::log(&job, 2);
        Ok("#!/bin/bash\n".into())
    }
}

export!(Mismatched);
