//! Compiles the gRPC service and model configuration protos with a vendored `protoc`, so
//! building needs no system protobuf compiler.

use std::io;

const PROTOS: [&str; 2] = ["proto/grpc_service.proto", "proto/model_config.proto"];

fn main() -> io::Result<()> {
    let protoc = protoc_bin_vendored::protoc_bin_path().map_err(io::Error::other)?;
    // SAFETY: the build script is single-threaded; nothing else reads the environment
    // concurrently. prost-build reads PROTOC to locate the compiler.
    unsafe { std::env::set_var("PROTOC", protoc) };
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        // The protocol crate does no I/O and does not enable tonic's `channel` feature, so
        // the generated client has no `connect`: wrap any channel with `new(channel)`.
        .build_transport(false)
        // Ordered maps, like `Parameters`, so encodings are deterministic.
        .btree_map(".")
        // `bytes::Bytes` for every bytes field: raw tensor contents are sliced out of the
        // received buffer instead of copied.
        .bytes(".")
        .compile_protos(&PROTOS, &["proto"])
}
