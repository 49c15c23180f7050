//! Questions on the controlling terminal: passphrases, passwords and one-time codes. Read from /dev/tty
//! (never argv or the environment), without echo for secrets, and never logged.

use std::io::{BufRead, Write};

use crate::ssh::auth::Prompter;

pub struct TerminalPrompter;

impl Prompter for TerminalPrompter {
    fn banner(&self, text: &str) {
        eprint!("{text}");
        if !text.ends_with('\n') {
            eprintln!();
        }
    }

    fn instructions(&self, text: &str) {
        eprintln!("{text}");
    }

    fn ask(&self, prompt: &str, echo: bool) -> std::io::Result<String> {
        if !echo {
            return rpassword::prompt_password(prompt);
        }
        let tty = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/tty")?;
        let mut writer = &tty;
        writer.write_all(prompt.as_bytes())?;
        writer.flush()?;
        let mut line = String::new();
        std::io::BufReader::new(&tty).read_line(&mut line)?;
        Ok(line.trim_end_matches(['\r', '\n']).to_string())
    }
}
