#!/usr/bin/env bash
# Build the C logger component: build.sh [OUTPUT.wasm].
# Needs: apt install clang lld wasi-libc libclang-rt-14-dev-wasm32; cargo install wit-bindgen-cli@0.63.0;
# rustup target add wasm32-wasip2 (for its wasm-component-ld, which turns the module into a component).
set -euo pipefail
cd "$(dirname "$0")"
out=${1:-c_logger.wasm}
sysroot=$(rustc --print sysroot)
component_ld="$sysroot/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/bin/wasm-component-ld"
[ -x "$component_ld" ] || { echo "missing $component_ld: rustup target add wasm32-wasip2" >&2; exit 1; }
rm -rf gen && wit-bindgen c ../../../wit --world callbacks --out-dir gen >/dev/null
clang --target=wasm32-wasi -O2 -mexec-model=reactor --sysroot=/usr \
  -fuse-ld="$component_ld" -Wl,--wasm-ld-path="$(command -v wasm-ld || command -v wasm-ld-14)" -Wl,--wasi-adapter=reactor \
  -o "$out" logger.c gen/callbacks.c gen/callbacks_component_type.o
