//! Compiles the protocol at build time with a pure-Rust protobuf parser, so a fresh machine
//! needs no system `protoc`.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let files = ["gamelan.proto", "executor.proto", "raw_echo.proto"];
    for f in &files {
        println!("cargo:rerun-if-changed={}", root.join(f).display());
    }
    let fds = protox::compile(files, [&root])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // The echo baseline clones one payload per message: make that a refcount bump.
        .bytes(".gamelan.bench.v1.EchoFrame.payload")
        .compile_fds(fds)?;
    Ok(())
}
