//! Compiling a component, bounded. Cranelift cannot be interrupted and its memory is the host's, so a
//! component is first checked against a size budget (a huge component, or one huge function, is what
//! takes minutes and gigabytes to compile), then compiled in a child process (the slurmkit binary
//! itself, `slurmkit __compile-plugin`) under an address-space limit and killed at a deadline. The
//! child writes the compiled artifact into the cache; the host only ever loads artifacts, and never
//! compiles what the cache already holds.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};

use super::{PluginError, PluginSpec};

/// The first argument that makes the slurmkit binary a compiling child.
pub const CHILD_ARG: &str = "__compile-plugin";

/// Largest component accepted for compiling (the Python example is 18 MB).
pub const MAX_COMPONENT_BYTES: usize = 64 << 20;
/// Largest single function accepted (CPython's interpreter loop, the largest in the examples, is
/// 427 KB; compile time grows faster than linearly with a function's size).
pub const MAX_FUNCTION_BYTES: usize = 1 << 20;

/// The engine configuration of every compile and every run: the host's and the compiling child's must
/// be the same, or the child's artifact would not load.
pub(super) fn engine_config() -> wasmtime::Config {
    let mut config = wasmtime::Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    // Reserve address space in proportion to the default memory cap instead of wasmtime's 4 GiB per
    // memory: login nodes often limit virtual memory (`ulimit -v`). Memories past it move on growth.
    config.memory_reservation(super::caps::DEFAULT_MEMORY as u64);
    config.memory_guard_size(64 << 10);
    config.memory_reservation_for_growth(1 << 20);
    config.max_wasm_stack(1 << 20);
    config
}

/// Refuse a component whose compile would be unbounded, before compiling anything.
pub(super) fn check_budget(spec: &PluginSpec) -> Result<(), PluginError> {
    let too_large = |what: String, limit: usize| PluginError::TooLarge {
        name: spec.name.clone(),
        what,
        limit,
    };
    if spec.bytes.len() > MAX_COMPONENT_BYTES {
        return Err(too_large(
            format!("it is {} bytes", spec.bytes.len()),
            MAX_COMPONENT_BYTES,
        ));
    }
    for payload in wasmparser::Parser::new(0).parse_all(&spec.bytes) {
        if let Ok(wasmparser::Payload::CodeSectionEntry(body)) = payload
            && body.range().len() > MAX_FUNCTION_BYTES
        {
            return Err(too_large(
                format!("one of its functions is {} bytes", body.range().len()),
                MAX_FUNCTION_BYTES,
            ));
        }
    }
    Ok(())
}

/// Compile `spec` in a child process (`compiler __compile-plugin`) into `artifact`, within the plugin's
/// compile limits.
pub(super) async fn in_child(
    compiler: &Path,
    spec: &PluginSpec,
    artifact: &Path,
) -> Result<(), PluginError> {
    let limits = spec.limits;
    let mut child = tokio::process::Command::new(compiler)
        .arg(CHILD_ARG)
        .arg(limits.compile_memory.to_string())
        .arg(artifact)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| PluginError::Load {
            name: spec.name.clone(),
            message: format!("cannot start {} to compile it: {e}", compiler.display()),
        })?;
    let mut stdin = child.stdin.take().expect("piped");
    let bytes = spec.bytes.clone();
    let feed = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        let _ = stdin.write_all(&bytes).await;
    });
    let outcome = tokio::time::timeout(limits.compile_time, child.wait_with_output()).await;
    feed.abort();
    let limit_error =
        |limit: &'static str, value: String, setting: &'static str| PluginError::CompileLimit {
            name: spec.name.clone(),
            limit,
            value,
            setting,
        };
    let output = match outcome {
        // Dropping the child kills it.
        Err(_) => {
            return Err(limit_error(
                "time",
                format!("{:?}", limits.compile_time),
                "compile_time",
            ));
        }
        Ok(Err(e)) => {
            return Err(PluginError::Load {
                name: spec.name.clone(),
                message: format!("compiling it failed: {e}"),
            });
        }
        Ok(Ok(output)) => output,
    };
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    use std::os::unix::process::ExitStatusExt;
    let out_of_memory = output.status.signal().is_some()
        || stderr.contains("memory allocation")
        || stderr.contains("out of memory")
        || stderr.contains("Cannot allocate memory");
    if out_of_memory {
        return Err(limit_error(
            "memory",
            format!("{} MiB", limits.compile_memory >> 20),
            "compile_memory",
        ));
    }
    Err(PluginError::NotAComponent {
        name: spec.name.clone(),
        reason: crate::types::text::bounded(stderr.trim(), 1024),
    })
}

/// The compiling child: `slurmkit __compile-plugin <address-space bytes> <artifact path>`, the
/// component on stdin. It limits its own address space first, so whatever Cranelift allocates is
/// bounded.
pub fn child_main(args: &[OsString]) -> ExitCode {
    match compile_child(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}

fn compile_child(args: &[OsString]) -> Result<(), String> {
    let [memory, artifact] = args else {
        return Err(format!("usage: slurmkit {CHILD_ARG} <bytes> <artifact>"));
    };
    let memory: u64 = memory
        .to_str()
        .and_then(|m| m.parse().ok())
        .ok_or("the memory limit is not a number")?;
    die_with_parent()?;
    limit_address_space(memory)?;
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut std::io::stdin(), &mut bytes).map_err(|e| e.to_string())?;
    let engine = wasmtime::Engine::new(&engine_config()).map_err(|e| e.to_string())?;
    let compiled = engine
        .precompile_component(&bytes)
        .map_err(|e| format!("{e:#}"))?;
    super::cache::store_artifact(&PathBuf::from(artifact), &compiled).map_err(|e| e.to_string())
}

/// Ask to be killed when the process that started us goes (Ctrl-C, or its deadline passing while it is
/// killed itself): an orphaned compile must not run on.
fn die_with_parent() -> Result<(), String> {
    // SAFETY: prctl with PR_SET_PDEATHSIG takes a signal number and changes only this process.
    let status = unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    // The parent may have gone before the request took effect: then we are adopted by another.
    if status != 0 || std::os::unix::process::parent_id() == 1 {
        return Err("the process that started the compile is gone".into());
    }
    Ok(())
}

fn limit_address_space(bytes: u64) -> Result<(), String> {
    let limit = libc::rlimit {
        rlim_cur: bytes,
        rlim_max: bytes,
    };
    // SAFETY: setrlimit reads the struct we pass and changes only this process's limits.
    let status = unsafe { libc::setrlimit(libc::RLIMIT_AS, &limit) };
    if status == 0 {
        Ok(())
    } else {
        Err(format!(
            "cannot limit the address space: {}",
            std::io::Error::last_os_error()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A component holding a core module with one function of about `size` bytes.
    fn component_with_function(size: usize) -> Vec<u8> {
        use wasm_encoder::{
            CodeSection, Component, FunctionSection, Instruction, Module, ModuleSection,
            TypeSection,
        };
        let mut types = TypeSection::new();
        types.ty().function([], []);
        let mut functions = FunctionSection::new();
        functions.function(0);
        let mut body = wasm_encoder::Function::new([]);
        for _ in 0..size {
            body.instruction(&Instruction::Nop);
        }
        body.instruction(&Instruction::End);
        let mut code = CodeSection::new();
        code.function(&body);
        let mut module = Module::new();
        module.section(&types).section(&functions).section(&code);
        let mut component = Component::new();
        component.section(&ModuleSection(&module));
        component.finish()
    }

    fn spec(bytes: Vec<u8>) -> PluginSpec {
        PluginSpec {
            name: "p".into(),
            origin: "test".into(),
            sha256: String::new(),
            bytes: std::sync::Arc::new(bytes),
            config: Vec::new(),
            capabilities: super::super::Capabilities::none(),
            limits: super::super::Limits::default(),
        }
    }

    #[test]
    fn one_huge_function_is_refused_before_compiling() {
        assert!(check_budget(&spec(component_with_function(4096))).is_ok());
        // A Nop is one byte; the body adds its local count and its end.
        let err = check_budget(&spec(component_with_function(3 << 20))).unwrap_err();
        assert!(
            err.to_string()
                .contains("one of its functions is 3145730 bytes, over the limit of 1048576 bytes"),
            "{err}"
        );
    }
}
