/work/main/plugins/target/wasm32-wasip2/release/librenderer_default.rlib: /work/main/plugins/renderer-default/src/lib.rs /work/main/wit/types.wit /work/main/wit/worlds.wit
