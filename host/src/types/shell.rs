//! Building shell command lines that are safe to hand to a remote shell.
//!
//! SSH carries one command string, not an argv: the remote user's shell parses it. Every command slurmkit
//! runs, over SSH or locally, is built here, from program names that are compile-time constants and
//! arguments that are always single-quoted. Nothing else produces a command string.

use std::fmt;

/// A shell command line whose every user-supplied word is quoted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShellCommand {
    line: String,
    /// What a script does, shown in messages instead of its text.
    label: Option<&'static str>,
}

impl ShellCommand {
    /// Start a command. The program is a `&'static str` so that it can never come from user input.
    pub fn new(program: &'static str) -> Self {
        ShellCommand {
            line: program.to_string(),
            label: None,
        }
    }

    /// A constant POSIX `sh` script run as `sh -c '<script>' sh`; `.arg()`s become its `$1`, `$2`, ...
    /// The script runs under `sh` whatever the user's login shell is, and every user value reaches it
    /// only as a quoted positional parameter, never as script text. `label` names it in messages.
    pub fn sh(label: &'static str, script: &'static str) -> Self {
        ShellCommand {
            line: format!("sh -c {} sh", quote(script)),
            label: Some(label),
        }
    }

    /// Append one argument, quoted.
    pub fn arg(mut self, arg: impl AsRef<str>) -> Self {
        self.line.push(' ');
        self.line.push_str(&quote(arg.as_ref()));
        self
    }

    pub fn args<I, S>(self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        args.into_iter().fold(self, |command, arg| command.arg(arg))
    }

    /// Run in `dir`: `cd -- 'dir' && <command>`.
    pub fn in_dir(self, dir: &str) -> Self {
        ShellCommand {
            line: format!("cd -- {} && {}", quote(dir), self.line),
            label: self.label,
        }
    }

    /// Redirect standard output to `path` (quoted).
    pub fn stdout_to(mut self, path: &str) -> Self {
        self.line.push_str(" > ");
        self.line.push_str(&quote(path));
        self
    }

    /// `self && next`.
    pub fn and_then(self, next: ShellCommand) -> Self {
        ShellCommand {
            line: format!("{} && {}", self.line, next.line),
            label: self.label.or(next.label),
        }
    }

    /// `self || next`: run `next` only if `self` failed.
    pub fn or_else(self, next: ShellCommand) -> Self {
        ShellCommand {
            line: format!("{} || {}", self.line, next.line),
            label: self.label.or(next.label),
        }
    }

    /// `self; next`: run `next` whatever `self` returned.
    pub fn then(self, next: ShellCommand) -> Self {
        ShellCommand {
            line: format!("{}; {}", self.line, next.line),
            label: self.label.or(next.label),
        }
    }

    /// The command line itself, as the remote shell receives it.
    pub fn as_str(&self) -> &str {
        &self.line
    }
}

/// The command line, or a script's label (its text is long and says little to a user).
impl fmt::Display for ShellCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.label {
            Some(label) => write!(f, "{label} (sh script)"),
            None => f.write_str(&self.line),
        }
    }
}

/// Quote one word for a POSIX shell: wrap in single quotes and write each `'` as `'\''`.
/// Words made only of characters no shell treats specially are left bare, for readable logs.
pub fn quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-./=:,+@%".contains(&b));
    if plain {
        word.to_string()
    } else {
        // `!` leaves the quotes too: csh and tcsh expand history inside single quotes.
        format!("'{}'", word.replace('\'', r"'\''").replace('!', r"'\!'"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_only_what_needs_it() {
        assert_eq!(quote("sbatch"), "sbatch");
        assert_eq!(quote("--parsable"), "--parsable");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("x; rm -rf ~"), "'x; rm -rf ~'");
        assert_eq!(quote("$(id)"), "'$(id)'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote("a\nb"), "'a\nb'");
        assert_eq!(quote("a!b"), r"'a'\!'b'");
    }

    #[test]
    fn builds_a_command_in_a_directory() {
        let cmd = ShellCommand::new("sbatch")
            .arg("--parsable")
            .arg("job.sbatch")
            .stdout_to(".job id")
            .in_dir("/home/u/slurm_jobs/x y");
        assert_eq!(
            cmd.as_str(),
            "cd -- '/home/u/slurm_jobs/x y' && sbatch --parsable job.sbatch > '.job id'"
        );
    }

    #[test]
    fn scripts_take_values_only_as_positional_parameters() {
        let cmd = ShellCommand::sh("echo", r#"printf '%s|' "$@""#)
            .arg("x; rm -rf ~")
            .arg("$(id)");
        let out = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(cmd.as_str())
            .output()
            .unwrap();
        assert_eq!(String::from_utf8(out.stdout).unwrap(), "x; rm -rf ~|$(id)|");
    }

    /// The quoted form must come back out of a real shell as the same single word.
    #[test]
    fn round_trips_through_sh() {
        let nasty = [
            "x; rm -rf ~",
            "$(touch /tmp/pwned)",
            "`id`",
            "a'b\"c",
            "line1\nline2",
            "*",
            "~",
            "-n",
            "a!b!!",
        ];
        for word in nasty {
            let cmd = ShellCommand::new("printf").arg("%s").arg(word);
            let out = std::process::Command::new("/bin/sh")
                .arg("-c")
                .arg(cmd.as_str())
                .output()
                .unwrap();
            assert_eq!(String::from_utf8(out.stdout).unwrap(), word, "{cmd}");
        }
    }
}
