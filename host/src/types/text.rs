//! Text that came from somewhere untrusted (a plugin, a remote command, a hostile value), made safe to
//! print: bounded in length, and with every control character shown rather than obeyed, so it cannot
//! clear the screen, set a window title, or start a line that looks like slurmkit's own.

use std::fmt::Write as _;

/// `text` with control characters (C0, DEL and C1, line breaks included) written as escapes: `\n`,
/// `\r`, `\t`, `\e`, or `\x1b`-style hex.
pub fn escape_controls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{1b}' => out.push_str("\\e"),
            c if c.is_control() => {
                let _ = write!(out, "\\x{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// At most `limit` bytes of `text` (cut at a character boundary, with a marker saying how much was
/// left out), control characters escaped.
pub fn bounded(text: &str, limit: usize) -> String {
    if text.len() <= limit {
        return escape_controls(text);
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "{}… [{} more bytes cut]",
        escape_controls(&text[..end]),
        text.len() - end
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_are_shown_not_obeyed() {
        assert_eq!(
            escape_controls("ok\n\u{1b}[2Jslurmkit: plugin check: passed\r\u{7}\u{9b}x\u{7f}"),
            "ok\\n\\e[2Jslurmkit: plugin check: passed\\r\\x{7}\\x{9b}x\\x{7f}"
        );
        assert_eq!(escape_controls("naïve ✓ tab\there"), "naïve ✓ tab\\there");
    }

    #[test]
    fn long_text_is_cut_at_a_character_boundary_with_a_marker() {
        assert_eq!(bounded("short", 10), "short");
        assert_eq!(bounded("ééé", 3), "é… [4 more bytes cut]");
        let huge = "x".repeat(40 << 20);
        let cut = bounded(&huge, 1024);
        assert!(cut.len() < 1100, "{}", cut.len());
        assert!(cut.ends_with(&format!("[{} more bytes cut]", (40 << 20) - 1024)));
    }
}
