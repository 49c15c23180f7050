//! The payload run inside a container: through pyxis (`srun --container-image=...`) or apptainer
//! (`apptainer exec ... IMAGE`). A command's words follow the runtime's own; a script runs as
//! `bash -c <body>`. Every value is one single-quoted word, so nothing in it reaches the batch shell.

use crate::slurmkit::plugin::types::{Container, ContainerRuntime, Payload};
use crate::{RenderError, invalid, shell_quote};

/// The line that runs `payload` in `container` (the last line of the script).
pub fn payload_line(container: &Container, payload: &Payload) -> Result<String, RenderError> {
    check(container)?;
    let mut words = match container.runtime {
        ContainerRuntime::Pyxis => pyxis(container),
        ContainerRuntime::Apptainer => apptainer(container),
    };
    match payload {
        Payload::Command(argv) => {
            let Some(program) = argv.first() else {
                return Err(invalid("command", "is empty: give the program to run"));
            };
            if program.starts_with('-') {
                return Err(invalid(
                    "command[0]",
                    &format!(
                        "{program:?} starts with '-', so the container runtime would read it as its own option"
                    ),
                ));
            }
            words.extend(argv.iter().map(|a| shell_quote(a)));
        }
        Payload::Script(body) => {
            words.extend(["bash".to_string(), "-c".to_string(), shell_quote(body)]);
        }
    }
    Ok(format!("exec {}\n", words.join(" ")))
}

/// `srun --container-image=IMAGE [--container-mounts=M1,M2] [--container-workdir=DIR]`.
fn pyxis(container: &Container) -> Vec<String> {
    let mut words = vec![
        "srun".to_string(),
        format!("--container-image={}", shell_quote(&container.image)),
    ];
    if !container.mounts.is_empty() {
        words.push(format!(
            "--container-mounts={}",
            shell_quote(&container.mounts.join(","))
        ));
    }
    if let Some(dir) = &container.workdir {
        words.push(format!("--container-workdir={}", shell_quote(dir)));
    }
    words
}

/// `apptainer exec [--bind M1 --bind M2] [--pwd DIR] IMAGE`.
fn apptainer(container: &Container) -> Vec<String> {
    let mut words = vec!["apptainer".to_string(), "exec".to_string()];
    for mount in &container.mounts {
        words.extend(["--bind".to_string(), shell_quote(mount)]);
    }
    if let Some(dir) = &container.workdir {
        words.extend(["--pwd".to_string(), shell_quote(dir)]);
    }
    words.push(shell_quote(&container.image));
    words
}

/// What quoting alone cannot make right: an image read as an option, and a mount that the runtime's
/// comma-separated list would split in two.
fn check(container: &Container) -> Result<(), RenderError> {
    if container.image.is_empty() || container.image.starts_with('-') {
        return Err(invalid(
            "container.image",
            &format!(
                "{:?} is not an image (empty, or starting with '-' and so read as an option)",
                container.image
            ),
        ));
    }
    for (index, mount) in container.mounts.iter().enumerate() {
        if mount.is_empty() || mount.contains(',') {
            return Err(invalid(
                &format!("container.mounts[{index}]"),
                &format!(
                    "{mount:?} is empty or contains ',', which the runtime reads as the end of a mount"
                ),
            ));
        }
    }
    if container.workdir.as_deref() == Some("") {
        return Err(invalid("container.workdir", "is empty"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOSTILE: &str = "it's $(touch /tmp/slurmkit-pwned) `id`\nnext line; echo pwned";

    fn container(runtime: ContainerRuntime) -> Container {
        Container {
            image: format!("docker://ubuntu {HOSTILE}"),
            mounts: vec!["/data:/data:ro".into(), format!("/a {HOSTILE}:/b")],
            runtime,
            workdir: Some(format!("/work {HOSTILE}")),
        }
    }

    /// The arguments the rendered line passes to `program`, as bash parses it: `program` is a shell
    /// function printing each argument followed by a NUL (an argument may hold a newline), and `exec`
    /// one that calls it (the real `exec` runs only programs on disk).
    fn arguments(line: &str, program: &str) -> Vec<String> {
        let stub =
            format!("exec() {{ \"$@\"; }}\n{program}() {{ printf '%s\\0' \"$@\"; }}\n{line}");
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg(stub)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let text = String::from_utf8(out.stdout).unwrap();
        let mut args: Vec<String> = text.split('\0').map(str::to_string).collect();
        assert_eq!(args.pop().as_deref(), Some(""), "ends with a NUL");
        args
    }

    #[test]
    fn pyxis_runs_a_command_with_each_value_one_word() {
        let c = container(ContainerRuntime::Pyxis);
        let command = Payload::Command(vec!["python".into(), HOSTILE.into()]);
        let line = payload_line(&c, &command).unwrap();
        assert!(line.starts_with("exec srun --container-image='docker://ubuntu it'\\''s"));
        assert_eq!(
            arguments(&line, "srun"),
            [
                format!("--container-image=docker://ubuntu {HOSTILE}"),
                format!("--container-mounts=/data:/data:ro,/a {HOSTILE}:/b"),
                format!("--container-workdir=/work {HOSTILE}"),
                "python".into(),
                HOSTILE.into(),
            ]
        );
    }

    #[test]
    fn apptainer_runs_a_script_through_bash_with_the_body_one_word() {
        let c = container(ContainerRuntime::Apptainer);
        let body = format!("echo {HOSTILE}\nexit 3\n");
        let line = payload_line(&c, &Payload::Script(body.clone())).unwrap();
        assert!(line.starts_with("exec apptainer exec --bind '/data:/data:ro' --bind "));
        assert_eq!(
            arguments(&line, "apptainer"),
            [
                "exec".to_string(),
                "--bind".into(),
                "/data:/data:ro".into(),
                "--bind".into(),
                format!("/a {HOSTILE}:/b"),
                "--pwd".into(),
                format!("/work {HOSTILE}"),
                format!("docker://ubuntu {HOSTILE}"),
                "bash".into(),
                "-c".into(),
                body,
            ]
        );
    }

    #[test]
    fn optional_values_are_left_out() {
        let c = Container {
            image: "x.sif".into(),
            mounts: vec![],
            runtime: ContainerRuntime::Apptainer,
            workdir: None,
        };
        let command = Payload::Command(vec!["true".into()]);
        assert_eq!(
            payload_line(&c, &command).unwrap(),
            "exec apptainer exec 'x.sif' 'true'\n"
        );
        let c = Container {
            runtime: ContainerRuntime::Pyxis,
            ..c
        };
        assert_eq!(
            payload_line(&c, &command).unwrap(),
            "exec srun --container-image='x.sif' 'true'\n"
        );
    }

    #[test]
    fn refuses_what_quoting_cannot_make_right() {
        let field = |c: &Container, payload: &Payload| match payload_line(c, payload) {
            Err(RenderError::InvalidField(f)) => f.field,
            other => panic!("{other:?}"),
        };
        let command = Payload::Command(vec!["true".into()]);
        for runtime in [ContainerRuntime::Pyxis, ContainerRuntime::Apptainer] {
            let mut c = container(runtime);
            c.mounts.push("/a,/b:/c".into());
            assert_eq!(field(&c, &command), "container.mounts[2]");
            let mut c = container(runtime);
            c.image = "--writable".into();
            assert_eq!(field(&c, &command), "container.image");
            let c = container(runtime);
            assert_eq!(
                field(&c, &Payload::Command(vec!["--help".into()])),
                "command[0]"
            );
            assert_eq!(field(&c, &Payload::Command(vec![])), "command");
        }
    }
}
