/work/main/plugins/target/wasm32-wasip2/release/deps/renderer_default.d: renderer-default/src/lib.rs /work/main/wit/worlds.wit /work/main/wit/types.wit

/work/main/plugins/target/wasm32-wasip2/release/deps/renderer_default.wasm: renderer-default/src/lib.rs /work/main/wit/worlds.wit /work/main/wit/types.wit

/work/main/plugins/target/wasm32-wasip2/release/deps/librenderer_default.rlib: renderer-default/src/lib.rs /work/main/wit/worlds.wit /work/main/wit/types.wit

renderer-default/src/lib.rs:
/work/main/wit/worlds.wit:
/work/main/wit/types.wit:

# env-dep:CARGO_PKG_VERSION=0.1.0
