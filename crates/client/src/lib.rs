//! An async Rust client for any Open Inference Protocol ("V2") server, over REST
//! ([`RestClient`]) and gRPC ([`GrpcClient`]).
//!
//! Both clients speak in the transport-independent types of `oxserve_protocol`
//! ([`InferRequest`], [`InferResponse`], metadata and the extension types) and offer the
//! same methods, so switching transport is a one-line change:
//!
//! ```no_run
//! use oxserve_client::{GrpcClient, RestClient};
//! use oxserve_protocol::{InferRequest, Tensor, TensorData};
//!
//! # async fn run() -> oxserve_client::Result<()> {
//! let request = InferRequest {
//!     inputs: vec![Tensor::new("x", vec![1, 2], TensorData::Fp32(vec![1.0, 2.0]))],
//!     ..InferRequest::default()
//! };
//! let rest = RestClient::new("http://127.0.0.1:8080")?;
//! let a = rest.infer("my-model", None, &request, true).await?;
//! let grpc = GrpcClient::connect("127.0.0.1:8081").await?;
//! let b = grpc.infer("my-model", None, &request, true).await?;
//! assert_eq!(a.outputs, b.outputs);
//! # Ok(())
//! # }
//! ```
//!
//! Errors the server answered are [`Error::Server`] with the server's message; the rest are
//! transport, decoding or argument errors.

mod binary;
pub mod error;
pub mod grpc;
pub mod rest;

pub use error::{Error, Result};
pub use grpc::GrpcClient;
pub use rest::RestClient;

pub use oxserve_protocol::{InferRequest, InferResponse, ModelMetadata, ServerMetadata};
