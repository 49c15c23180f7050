//! A renderer built against a future major version of the WIT package: the host must refuse it by name.

wit_bindgen::generate!({
    inline: "
        package slurmkit:plugin@1.0.0;

        interface host {
            log: func(message: string);
        }

        world renderer {
            import host;
            export render: func(job: string) -> result<string, string>;
        }
    ",
    world: "renderer",
});

struct Future;

impl Guest for Future {
    fn render(job: String) -> Result<String, String> {
        slurmkit::plugin::host::log(&job);
        Ok("#!/bin/bash\n".into())
    }
}

export!(Future);
