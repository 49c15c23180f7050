/work/main/plugins/target/release/deps/wit_bindgen_rust_macro-1f23e9a670fc68d9.d: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/wit-bindgen-rust-macro-0.63.0/src/lib.rs

/work/main/plugins/target/release/deps/libwit_bindgen_rust_macro-1f23e9a670fc68d9.so: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/wit-bindgen-rust-macro-0.63.0/src/lib.rs

/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/wit-bindgen-rust-macro-0.63.0/src/lib.rs:

# env-dep:DEBUG_OUTPUT_DIR=/work/main/plugins/target/release/build/wit-bindgen-rust-macro-0a24e0e1381ded7a/out
