//! Transport-independent inference requests, responses and metadata.
//!
//! The REST and gRPC codecs both decode into [`InferRequest`] and encode from
//! [`InferResponse`]; the server core only ever sees these.

use serde::{Deserialize, Serialize};

use crate::datatype::DataType;
use crate::parameters::Parameters;
use crate::tensor::Tensor;

/// An output the client asked for, with its per-output parameters
/// (e.g. `binary_data: true`, `classification`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RequestedOutput {
    pub name: String,
    pub parameters: Parameters,
}

/// A decoded, validated inference request.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct InferRequest {
    /// Client-chosen identifier, echoed in the response.
    pub id: Option<String>,
    pub parameters: Parameters,
    pub inputs: Vec<Tensor>,
    /// Empty means "all outputs of the model".
    pub outputs: Vec<RequestedOutput>,
}

impl InferRequest {
    /// The input named `name`.
    pub fn input(&self, name: &str) -> Option<&Tensor> {
        self.inputs.iter().find(|t| t.name == name)
    }
}

/// An inference result.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct InferResponse {
    pub model_name: String,
    pub model_version: Option<String>,
    pub id: Option<String>,
    pub parameters: Parameters,
    pub outputs: Vec<Tensor>,
}

/// Name, datatype and shape of a model input or output (`-1` for a variable dimension).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TensorMetadata {
    pub name: String,
    pub datatype: DataType,
    pub shape: Vec<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Parameters>,
}

/// `GET /v2`: server metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerMetadata {
    pub name: String,
    pub version: String,
    pub extensions: Vec<String>,
}

/// `GET /v2/models/{m}`: model metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelMetadata {
    pub name: String,
    #[serde(default)]
    pub versions: Vec<String>,
    pub platform: String,
    pub inputs: Vec<TensorMetadata>,
    pub outputs: Vec<TensorMetadata>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Parameters>,
}
