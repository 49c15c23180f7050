//! Symlinks in write grants. WASI lets a plugin with a write grant create a symlink to any target; it
//! cannot follow one out of its grant, but the link stays on disk for the user, a job or another tool
//! to follow later. So a link is created only when its target stays below the link itself: relative,
//! no `..`. The plugin gets `not-permitted` for any other, and the refusal is logged.

use std::path::{Component, Path};

use wasmtime::component::{Linker, Resource};
use wasmtime_wasi::filesystem::WasiFilesystemView;
use wasmtime_wasi::p2::bindings::filesystem::types::{self, Descriptor, ErrorCode, HostDescriptor};

use super::PluginState;
use crate::types::text::escape_controls;

/// The WASI function replaced, in the WASI version wasmtime-wasi defines (guests built against older
/// 0.2.x versions are linked to it).
const INTERFACE: &str = "wasi:filesystem/types@0.2.12";
const FUNCTION: &str = "[method]descriptor.symlink-at";

/// Replace WASI's `symlink-at` with one that refuses targets leading out of the link's directory.
pub(super) fn guard(linker: &mut Linker<PluginState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let result = linker.instance(INTERFACE)?.func_wrap_async(
        FUNCTION,
        |mut store,
         (fd, target, link): (Resource<Descriptor>, String, String)|
         -> Box<dyn Future<Output = wasmtime::Result<(Result<(), ErrorCode>,)>> + Send> {
            Box::new(async move {
                let state = store.data_mut();
                if !stays_below(&target) {
                    tracing::warn!(
                        "plugin {}: refused to create the symlink {} -> {}: a link in a granted directory may only point below itself (relative, without `..`)",
                        escape_controls(&state.name),
                        escape_controls(&link),
                        escape_controls(&target)
                    );
                    return Ok((Err(ErrorCode::NotPermitted),));
                }
                let mut view = state.filesystem();
                match HostDescriptor::symlink_at(&mut view, fd, target, link).await {
                    Ok(()) => Ok((Ok(()),)),
                    Err(error) => Ok((Err(types::Host::convert_error_code(&mut view, error)?),)),
                }
            })
        },
    );
    linker.allow_shadowing(false);
    result
}

/// A symlink target that resolves below the link's own directory, whatever that directory is.
fn stays_below(target: &str) -> bool {
    let path = Path::new(target);
    !target.is_empty()
        && path
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_targets_below_the_link_are_allowed() {
        for ok in ["file", "sub/file", "./file", "a/./b"] {
            assert!(stays_below(ok), "{ok}");
        }
        for refused in ["", "/etc/passwd", "../x", "a/../../x", "a/..", "..", "//x"] {
            assert!(!stays_below(refused), "{refused}");
        }
    }
}
