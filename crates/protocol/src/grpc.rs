//! The V2 gRPC API: the generated `inference` package (Triton's numbering) and conversions
//! between its messages and the transport-independent types of this crate.

/// Messages, server and client of the `inference` protobuf package, generated from
/// `proto/grpc_service.proto` and `proto/model_config.proto`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod inference {
    tonic::include_proto!("inference");
}
