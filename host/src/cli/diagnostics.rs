//! How failures reach the user: `error:` with the cause chain, then `hint:` lines with the next step,
//! and the error's own exit code (see [`crate::error`]), so scripts can tell failures apart.

use std::fmt::Write as _;
use std::process::ExitCode;

use crate::error::{Diagnose, exit, hints};

/// A command's failure: any error that knows its exit code and hint. Only such errors convert into it,
/// so an error type without a diagnosis cannot reach the user unnoticed.
pub struct Failure(Box<dyn Diagnose>);

impl Failure {
    pub fn error(&self) -> &dyn Diagnose {
        self.0.as_ref()
    }

    /// Whether it comes down to writing into a closed pipe.
    pub fn is_broken_pipe(&self) -> bool {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(self.error());
        while let Some(error) = cause {
            if error
                .downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
            {
                return true;
            }
            cause = error.source();
        }
        false
    }
}

impl<E: Diagnose> From<E> for Failure {
    fn from(error: E) -> Self {
        Failure(Box::new(error))
    }
}

impl std::fmt::Debug for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&render(self.error()))
    }
}

/// Something the command line itself refuses (exit code 3).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

impl Diagnose for Refused {
    fn exit_code(&self) -> u8 {
        exit::CONFIG
    }
}

/// `error: …`, `  caused by: …`, `hint: …` — the text printed for a failed command.
pub fn render(error: &dyn Diagnose) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "error: {}",
        indent_continuation(&error.to_string(), "       ")
    );
    let mut previous = error.to_string();
    let mut cause = error.source();
    while let Some(current) = cause {
        let text = current.to_string();
        // `transparent` and `#[from]` wrappers often repeat their source's text.
        if !previous.contains(&text) {
            let _ = writeln!(
                out,
                "  caused by: {}",
                indent_continuation(&text, "             ")
            );
            previous = text;
        }
        cause = current.source();
    }
    for hint in hints(error) {
        let _ = writeln!(out, "hint: {}", indent_continuation(&hint, "      "));
    }
    out
}

/// Continuation lines indented under the first; every other control character in the text (from a
/// hostile value, or a remote command's output) shown, not obeyed.
fn indent_continuation(text: &str, indent: &str) -> String {
    text.split('\n')
        .map(crate::types::text::escape_controls)
        .collect::<Vec<_>>()
        .join(&format!("\n{indent}"))
}

/// Print a failure to stderr and return its exit code.
pub fn report(error: &dyn Diagnose) -> ExitCode {
    eprint!("{}", render(error));
    let code = error.exit_code();
    if code == exit::INTERNAL {
        tracing::debug!("{error:?}");
    }
    ExitCode::from(code)
}

#[cfg(test)]
mod tests;
