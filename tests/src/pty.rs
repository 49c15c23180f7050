//! A command run on a pseudo-terminal of its own (its controlling terminal, so `/dev/tty` is this
//! terminal), driven as a user at a keyboard would: wait for text, type, press Ctrl-C.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running command on its own pseudo-terminal.
pub struct Pty {
    child: Child,
    master: File,
    /// Kept open so the terminal's settings can be read after the command exits.
    slave: OwnedFd,
    output: Arc<Mutex<Vec<u8>>>,
    /// How much of the output earlier [`Pty::expect`] calls consumed.
    seen: usize,
}

impl Pty {
    /// Start `command` with the terminal as its stdin, stdout, stderr and controlling terminal.
    pub fn spawn(mut command: Command) -> Pty {
        let (mut master_fd, mut slave_fd) = (-1, -1);
        // SAFETY: openpty writes two descriptors; the name, termios and window size may be null.
        let rc = unsafe {
            libc::openpty(
                &mut master_fd,
                &mut slave_fd,
                std::ptr::null_mut(),
                std::ptr::null(),
                std::ptr::null(),
            )
        };
        assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
        // SAFETY: both descriptors were just opened by openpty and are owned here.
        let (master, slave) =
            unsafe { (File::from_raw_fd(master_fd), OwnedFd::from_raw_fd(slave_fd)) };
        let stdio = |fd: &OwnedFd| Stdio::from(fd.try_clone().unwrap());
        command
            .stdin(stdio(&slave))
            .stdout(stdio(&slave))
            .stderr(stdio(&slave));
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            command.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn().expect("spawn on a pseudo-terminal");
        let output = Arc::new(Mutex::new(Vec::new()));
        let mut reader = master.try_clone().unwrap();
        let sink = output.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Pty {
            child,
            master,
            slave,
            output,
            seen: 0,
        }
    }

    /// Everything the command wrote to the terminal so far.
    pub fn output(&self) -> String {
        String::from_utf8_lossy(&self.output.lock().unwrap()).into_owned()
    }

    /// Wait until `text` appears after what earlier calls consumed; panics with the output after
    /// `timeout`.
    #[track_caller]
    pub fn expect(&mut self, text: &str, timeout: Duration) {
        let started = Instant::now();
        loop {
            {
                let output = self.output.lock().unwrap();
                let rest =
                    String::from_utf8_lossy(&output[self.seen.min(output.len())..]).into_owned();
                if let Some(at) = rest.find(text) {
                    self.seen += rest[..at + text.len()].len();
                    return;
                }
            }
            if started.elapsed() > timeout {
                panic!(
                    "{text:?} did not appear within {timeout:?}; the terminal shows:\n{}",
                    self.output()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Set the terminal's size, as a terminal emulator does when its window changes (the command
    /// gets SIGWINCH).
    pub fn resize(&self, cols: u16, rows: u16) {
        let size = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads the winsize we pass, on a descriptor we own.
        let rc = unsafe { libc::ioctl(self.master.as_raw_fd(), libc::TIOCSWINSZ, &size) };
        assert_eq!(rc, 0, "TIOCSWINSZ: {}", std::io::Error::last_os_error());
    }

    /// Type bytes at the keyboard.
    pub fn send(&mut self, bytes: &[u8]) {
        self.master.write_all(bytes).unwrap();
        self.master.flush().unwrap();
    }

    /// Wait for the command to exit (killing it after `timeout`); its status and everything it wrote.
    #[track_caller]
    pub fn finish(&mut self, timeout: Duration) -> (ExitStatus, String) {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the reader drain what is left.
                std::thread::sleep(Duration::from_millis(100));
                return (status, self.output());
            }
            if started.elapsed() > timeout {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "still running after {timeout:?}; the terminal shows:\n{}",
                    self.output()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The terminal echoes what is typed and reads whole lines (its state as the command left it).
    pub fn echoes_lines(&self) -> bool {
        let mut termios = std::mem::MaybeUninit::<libc::termios>::uninit();
        // SAFETY: tcgetattr fills the struct when it returns 0.
        let rc = unsafe { libc::tcgetattr(self.slave.as_raw_fd(), termios.as_mut_ptr()) };
        assert_eq!(rc, 0, "tcgetattr: {}", std::io::Error::last_os_error());
        // SAFETY: initialised by the successful call above.
        let termios = unsafe { termios.assume_init() };
        termios.c_lflag & libc::ECHO != 0 && termios.c_lflag & libc::ICANON != 0
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
