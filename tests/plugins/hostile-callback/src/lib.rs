//! A callback that attacks the host, chosen by its `attack` config key. Attacks that the sandbox should
//! block report what they got through `log`, so a test can see the denial; attacks that exhaust a limit
//! simply run until the host stops them.

wit_bindgen::generate!({ world: "callbacks", path: "../../../wit" });

use slurmkit::plugin::host::{Level, config, log};

struct Hostile;

fn setting(key: &str) -> Option<String> {
    config().into_iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

fn fail(message: String, retryable: bool) -> Result<(), CallbackError> {
    Err(CallbackError { message, retryable })
}

/// Count calls in a granted directory: the plugin keeps no state between calls otherwise.
fn bump_counter(dir: &str) -> u32 {
    let path = format!("{dir}/attempts");
    let count = std::fs::read_to_string(&path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
        + 1;
    std::fs::write(&path, count.to_string()).expect("granted directory is writable");
    count
}

/// Recursion with frames small enough to live on the wasm stack (no locals spilled to Rust's shadow
/// stack in linear memory), so it exhausts the engine's stack limit.
#[inline(never)]
#[allow(unconditional_recursion)] // the point: recursion until the stack runs out
fn recurse(depth: u64) -> u64 {
    recurse(std::hint::black_box(depth + 1)).wrapping_add(1)
}

impl Guest for Hostile {
    fn subscriptions() -> Vec<EventKind> {
        Vec::new()
    }

    fn on_event(event: Event) -> Result<(), CallbackError> {
        // `EventKind::Submitted` -> `submitted`.
        let kind = format!("{:?}", event.kind)
            .rsplit(':')
            .next()
            .unwrap_or_default()
            .to_lowercase();
        if let Some(only) = setting("on")
            && kind != only.replace('-', "")
        {
            return Ok(());
        }
        let attack = setting("attack").unwrap_or_default();
        match attack.as_str() {
            "read-host-file" => {
                for path in [
                    "/etc/passwd",
                    "../../../../etc/passwd",
                    "/proc/self/environ",
                ] {
                    match std::fs::read_to_string(path) {
                        Ok(text) => log(
                            Level::Error,
                            &format!("BREACH: read {path}: {} bytes", text.len()),
                        ),
                        Err(e) => log(Level::Info, &format!("denied: read {path}: {e}")),
                    }
                }
                Ok(())
            }
            "write-outside-grant" => {
                for path in [
                    "ledger/../escaped.txt",
                    "/tmp/slurmkit-escaped.txt",
                    "ledger/link-out/escaped.txt",
                    "inputs/escaped.txt",
                ] {
                    match std::fs::write(path, "escaped") {
                        Ok(()) => log(Level::Error, &format!("BREACH: wrote {path}")),
                        Err(e) => log(Level::Info, &format!("denied: write {path}: {e}")),
                    }
                }
                match std::fs::write("ledger/inside.txt", "allowed") {
                    Ok(()) => log(Level::Info, "allowed: write ledger/inside.txt"),
                    Err(e) => log(
                        Level::Error,
                        &format!("unexpected: write ledger/inside.txt: {e}"),
                    ),
                }
                // Links the plugin cannot follow, left on disk for whoever comes next.
                for (target, link) in [
                    ("/etc", "ledger/link-absolute"),
                    ("../..", "ledger/link-up"),
                    ("sub/../../..", "ledger/link-down-and-up"),
                ] {
                    #[allow(deprecated)]
                    // `soft_link` is the portable spelling; wasip2 has no other in std
                    match std::fs::soft_link(target, link) {
                        Ok(()) => log(Level::Error, &format!("BREACH: linked {link} -> {target}")),
                        Err(e) => log(
                            Level::Info,
                            &format!("denied: symlink {link} -> {target}: {e}"),
                        ),
                    }
                }
                #[allow(deprecated)]
                match std::fs::soft_link("inside.txt", "ledger/link-inside") {
                    Ok(()) => log(
                        Level::Info,
                        "allowed: symlink ledger/link-inside -> inside.txt",
                    ),
                    Err(e) => log(
                        Level::Error,
                        &format!("unexpected: symlink ledger/link-inside: {e}"),
                    ),
                }
                Ok(())
            }
            "socket" => {
                let target = setting("target").unwrap_or_else(|| "127.0.0.1:22".into());
                match std::net::TcpStream::connect(&target) {
                    Ok(_) => log(Level::Error, &format!("BREACH: connected to {target}")),
                    Err(e) => log(Level::Info, &format!("denied: connect {target}: {e}")),
                }
                Ok(())
            }
            "env" => {
                let vars: Vec<String> = std::env::vars().map(|(k, _)| k).collect();
                for name in ["SLURMKIT_SECRET", "HOME", "PATH"] {
                    match std::env::var(name) {
                        Ok(_) => log(Level::Error, &format!("BREACH: env {name} is visible")),
                        Err(_) => log(Level::Info, &format!("denied: env {name}")),
                    }
                }
                log(Level::Info, &format!("visible env: [{}]", vars.join(",")));
                Ok(())
            }
            "loop" => {
                let mut x: u64 = 0;
                loop {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            }
            "alloc" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "recurse" => {
                std::hint::black_box(recurse(0));
                Ok(())
            }
            "flood" => loop {
                log(Level::Info, &"flood ".repeat(100));
            },
            "trap" => {
                let _ = std::fs::write("ledger/half-done.txt", "started");
                panic!("boom in the middle of on-event");
            }
            "fail-twice" => {
                let count = bump_counter("ledger");
                if count <= 2 {
                    return fail(format!("transient failure {count}"), true);
                }
                std::fs::write("ledger/delivered.txt", format!("{} {}\n", event.id, count))
                    .expect("writable");
                Ok(())
            }
            "hang-first" => {
                let count = bump_counter("ledger");
                if count == 1 {
                    let mut x: u64 = 0;
                    loop {
                        x = std::hint::black_box(x.wrapping_add(1));
                    }
                }
                let line = format!(
                    "{kind} {} attempt {count}\n",
                    event.job_id.unwrap_or_default()
                );
                let mut existing =
                    std::fs::read_to_string("ledger/delivered.txt").unwrap_or_default();
                existing.push_str(&line);
                std::fs::write("ledger/delivered.txt", existing).expect("writable");
                Ok(())
            }
            "refuse" => fail("this callback always refuses".into(), false),
            other => fail(format!("unknown attack {other:?}"), false),
        }
    }
}

export!(Hostile);
