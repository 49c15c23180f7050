//! The input store on the cluster: `<job_base_dir>/.slurmkit/store/<sha256>`, one read-only file per
//! content, hard-linked into the job directories that stage it. A large input sent once is not sent
//! again by a later submission while the store holds it: the exchange ([`super::submit`]) links it into
//! the new job directory instead, and links every large input it received into the store.
//!
//! Only inputs of at least [`STORE_THRESHOLD`] bytes go through the store: smaller ones are cheap to
//! send again, and every store entry costs a few processes on the login node. The exchange removes
//! entries that no job directory links to any more (link count 1) and that nobody used for
//! [`STORE_KEEP_DAYS`] days; asking for an entry ([`query`]) counts as a use.

use std::collections::HashMap;

use crate::exec::CommandOutput;
use crate::types::shell::ShellCommand;

/// Inputs of at least this many bytes (1 MiB) go through the store.
pub const STORE_THRESHOLD: u64 = 1 << 20;

/// The store, under the base directory.
pub const STORE_DIR: &str = ".slurmkit/store";

/// Entries no job links to are removed after this many days without use.
pub const STORE_KEEP_DAYS: u32 = 7;

/// Arguments: the nonce, the store directory, then sha256s. Prints `have <sha256> <size>` for each
/// regular file the store holds, and touches it so it is not collected as unused while this
/// submission needs it. An entry someone made writable by its owner again is not reported: it may
/// have been written to, so the input is sent and replaces it. One `ls` per entry held gives both.
const QUERY: &str = concat!(
    r#"n=$1; st=$2; shift 2; set -f; for h; do [ -f "$st/$h" ] && [ ! -L "$st/$h" ] || continue; "#,
    r#"set -- $(ls -ln -- "$st/$h" 2>/dev/null); case $1 in -?w*|'') continue;; esac; "#,
    r#"touch -c -- "$st/$h" 2>/dev/null; printf '%s have %s %s\n' "$n" "$h" "$5"; done"#,
);

/// Whether `value` is a sha256 as the store names its files (64 lowercase hex digits).
pub fn is_digest(value: &str) -> bool {
    value.len() == 64
        && value
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The command asking which of `digests` the store under `base` (absolute) holds, in one exec.
/// Anything that is not a digest is left out.
pub fn query(nonce: &str, base: &str, digests: &[String]) -> ShellCommand {
    let mut command = ShellCommand::sh("ask the input store", QUERY)
        .arg(nonce)
        .arg(format!("{base}/{STORE_DIR}"));
    for digest in digests.iter().filter(|d| is_digest(d)) {
        command = command.arg(digest);
    }
    command
}

/// The reply to [`query`]: the size of each entry the store holds.
pub fn held(nonce: &str, output: &CommandOutput) -> HashMap<String, u64> {
    let text = output.stdout_text();
    super::submit::complete_lines(&text)
        .filter_map(|line| {
            let rest = line.strip_prefix(nonce)?.strip_prefix(" have ")?;
            let (digest, size) = rest.split_once(' ')?;
            Some((digest.to_string(), size.trim().parse().ok()?))
        })
        .filter(|(digest, _)| is_digest(digest))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::Exit;

    #[test]
    fn the_query_reports_what_the_store_holds_through_a_real_shell() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join(STORE_DIR);
        std::fs::create_dir_all(&store).unwrap();
        let (a, b, c) = ("a".repeat(64), "b".repeat(64), "c".repeat(64));
        std::fs::write(store.join(&a), b"hello").unwrap();
        std::fs::write(store.join(&b), b"writable").unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        let read_only = std::fs::Permissions::from_mode(0o440);
        std::fs::set_permissions(store.join(&a), read_only).unwrap();
        std::os::unix::fs::symlink(store.join(&a), store.join(&c)).unwrap();
        let base = dir.path().display().to_string();
        let asked = [a.clone(), b.clone(), c, "../../etc/passwd".into()];
        let command = query("N", &base, &asked);
        let out = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(format!("echo 'have {b} 1'; {}", command.as_str()))
            .output()
            .unwrap();
        let output = CommandOutput {
            exit: Exit::Code(out.status.code().unwrap()),
            stdout: out.stdout,
            stderr: out.stderr,
        };
        let held = held("N", &output);
        assert_eq!(
            held.len(),
            1,
            "not a link, not a line without the nonce: {held:?}"
        );
        assert_eq!(held[&a], 5);
        assert!(
            !command.as_str().contains("passwd"),
            "not a digest: not asked"
        );
    }
}
