//! Builds the default renderer (plugins/renderer-default) for wasm32-wasip2 and leaves it in OUT_DIR,
//! where `plugin::renderer` embeds it, so `slurmkit` works with no plugin configured.
//!
//! The nested cargo uses its own target directory next to the outer one, so it never waits on the
//! outer build's lock and stays warm between builds. It inherits no encoded RUSTFLAGS meant for the
//! host target.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let repo = manifest_dir.parent().unwrap();
    let plugins = repo.join("plugins");
    for watched in [
        "plugins/Cargo.toml",
        "plugins/Cargo.lock",
        "plugins/renderer-default",
        "wit",
    ] {
        println!("cargo:rerun-if-changed={}", repo.join(watched).display());
    }
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let target_dir = plugin_target_dir(&out_dir);
    let wasm = build_guest(&plugins, &target_dir, "renderer-default");
    std::fs::copy(&wasm, out_dir.join("renderer-default.wasm")).unwrap();
}

/// `<target>/plugins`, found from OUT_DIR (`<target>/<profile>/build/<pkg>-<hash>/out`).
fn plugin_target_dir(out_dir: &Path) -> PathBuf {
    out_dir
        .ancestors()
        .nth(4)
        .map(|t| t.join("plugins"))
        .unwrap_or_else(|| out_dir.join("plugins"))
}

fn build_guest(workspace: &Path, target_dir: &Path, package: &str) -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(workspace)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "-p",
            package,
            "--target-dir",
        ])
        .arg(target_dir)
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .status()
        .expect("cannot run cargo to build the default renderer");
    assert!(
        status.success(),
        "building plugins/{package} for wasm32-wasip2 failed; if the target is missing, run `rustup target add wasm32-wasip2`"
    );
    target_dir
        .join("wasm32-wasip2/release")
        .join(format!("{}.wasm", package.replace('-', "_")))
}
