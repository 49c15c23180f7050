//! Questions on the controlling terminal: passphrases, passwords and one-time codes. Read from /dev/tty
//! (never argv or the environment) and never logged.
//!
//! As OpenSSH's readpassphrase does, the terminal is switched to its answering mode (echo off for
//! secrets) *before* the question is written, with pending input discarded, so an answer typed early
//! never shows. The line is read byte by byte with signals off, so Ctrl-C is seen as the user's answer
//! ("interrupted") rather than killing a process whose terminal still has echo off; every exit path
//! restores the terminal, and [`restore`] covers the ones that leave without returning here.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Mutex;

use crate::ssh::auth::Prompter;

/// The longest answer read; more is a paste gone wrong, not a password.
const MAX_ANSWER: usize = 4096;

/// The terminal settings to put back, while a question is being asked.
static SAVED: Mutex<Option<(RawFd, libc::termios)>> = Mutex::new(None);

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

    fn ask(&self, prompt: &str, echo: bool) -> io::Result<String> {
        let tty = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/tty")?;
        let answering = Answering::start(&tty)?;
        let mut out = &tty;
        out.write_all(prompt.as_bytes())?;
        out.flush()?;
        let answer = read_answer(&tty, echo);
        drop(answering);
        // The Enter that ended the answer was not echoed.
        let _ = out.write_all(b"\r\n");
        answer
    }
}

/// Put the terminal back as it was before a question, if one is being asked. For exits that do not
/// return through the prompter (a signal handled elsewhere, a panic).
pub fn restore() {
    let saved = SAVED.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some((fd, termios)) = saved {
        // SAFETY: `termios` was filled by tcgetattr on this descriptor, which is still open while
        // SAVED holds it (it is cleared before the descriptor is closed).
        unsafe { libc::tcsetattr(fd, libc::TCSAFLUSH, &termios) };
    }
}

/// The terminal in answering mode; restored on drop.
struct Answering;

impl Answering {
    fn start(tty: &File) -> io::Result<Answering> {
        let fd = tty.as_raw_fd();
        let mut original = std::mem::MaybeUninit::<libc::termios>::uninit();
        // SAFETY: tcgetattr fills the struct when it returns 0.
        if unsafe { libc::tcgetattr(fd, original.as_mut_ptr()) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: initialised by the successful tcgetattr above.
        let original = unsafe { original.assume_init() };
        let mut answering = original;
        // Byte by byte (we edit the line ourselves), no signals (Ctrl-C arrives as a byte), and no
        // echo by the terminal: we echo what should be seen.
        answering.c_lflag &= !(libc::ICANON | libc::ISIG | libc::ECHO | libc::ECHONL);
        answering.c_cc[libc::VMIN] = 1;
        answering.c_cc[libc::VTIME] = 0;
        *SAVED.lock().unwrap_or_else(|e| e.into_inner()) = Some((fd, original));
        // TCSAFLUSH drops what was typed before the question, as OpenSSH does.
        // SAFETY: a valid descriptor and a valid termios.
        if unsafe { libc::tcsetattr(fd, libc::TCSAFLUSH, &answering) } != 0 {
            let error = io::Error::last_os_error();
            restore();
            return Err(error);
        }
        Ok(Answering)
    }
}

impl Drop for Answering {
    fn drop(&mut self) {
        restore();
    }
}

/// Read one line: Enter ends it, Backspace and Ctrl-U edit it, Ctrl-C interrupts, Ctrl-D on an empty
/// line is the end of input. Other control bytes are dropped.
fn read_answer(tty: &File, echo: bool) -> io::Result<String> {
    let mut input = tty;
    let mut output = tty;
    let mut line: Vec<u8> = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        if input.read(&mut byte)? == 0 {
            if line.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the terminal closed",
                ));
            }
            break;
        }
        match byte[0] {
            b'\r' | b'\n' => break,
            0x03 => {
                return Err(io::Error::new(io::ErrorKind::Interrupted, "interrupted"));
            }
            0x04 if line.is_empty() => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "end of input at the prompt",
                ));
            }
            0x7f | 0x08 => {
                if pop_char(&mut line) && echo {
                    output.write_all(b"\x08 \x08")?;
                }
            }
            0x15 => {
                while pop_char(&mut line) {
                    if echo {
                        output.write_all(b"\x08 \x08")?;
                    }
                }
            }
            b if b < 0x20 && b != b'\t' => {}
            b => {
                if line.len() >= MAX_ANSWER {
                    continue;
                }
                line.push(b);
                // Echo whole characters only: a multi-byte one once its last byte arrived.
                if echo && std::str::from_utf8(last_char(&line)).is_ok() {
                    output.write_all(last_char(&line))?;
                }
            }
        }
    }
    String::from_utf8(line)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "the answer is not UTF-8"))
}

/// The bytes of the last (possibly incomplete) UTF-8 character.
fn last_char(line: &[u8]) -> &[u8] {
    let start = line.iter().rposition(|b| b & 0xC0 != 0x80).unwrap_or(0);
    &line[start..]
}

/// Remove the last character; false when the line was empty.
fn pop_char(line: &mut Vec<u8>) -> bool {
    if line.is_empty() {
        return false;
    }
    let keep = line.len() - last_char(line).len();
    line.truncate(keep);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backspace_removes_a_whole_character() {
        let mut line = "aé".as_bytes().to_vec();
        assert!(pop_char(&mut line));
        assert_eq!(line, b"a");
        assert!(pop_char(&mut line));
        assert!(!pop_char(&mut line));
    }
}
