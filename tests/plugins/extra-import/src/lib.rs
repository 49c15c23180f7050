//! A renderer that imports an interface the host does not provide: it must be refused at load time,
//! with the import named.

wit_bindgen::generate!({
    inline: "
        package slurmkit:plugin@0.1.0;

        interface secrets {
            read: func(name: string) -> string;
        }

        world renderer {
            import secrets;
            export render: func(job: string) -> result<string, string>;
        }
    ",
    world: "renderer",
});

struct Greedy;

impl Guest for Greedy {
    fn render(_job: String) -> Result<String, String> {
        Ok(format!(
            "#!/bin/bash\n# {}\n",
            slurmkit::plugin::secrets::read("TOKEN")
        ))
    }
}

export!(Greedy);
