//! Wire types of the Open Inference Protocol ("V2", REST and gRPC) and the V1 API, the typed
//! tensor every path shares, and the codecs between them.
//!
//! This crate does no I/O: it turns bytes into validated [`InferRequest`]s and
//! [`InferResponse`]s into bytes. The server, client and conformance suite all build on it.

pub mod datatype;
pub mod error;
pub mod extensions;
pub mod grpc;
pub mod infer;
pub mod parameters;
pub mod raw;
pub mod rest;
pub mod tensor;
pub mod v1;

pub use datatype::DataType;
pub use error::{ErrorCode, ProtocolError, Result};
pub use infer::{
    InferRequest, InferResponse, ModelMetadata, RequestedOutput, ServerMetadata, TensorMetadata,
};
pub use parameters::{Parameter, Parameters};
pub use tensor::{Tensor, TensorData};
