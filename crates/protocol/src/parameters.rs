//! Request, input and output parameters: a string-keyed map of scalar values.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One parameter value. JSON carries these as plain scalars; gRPC as `InferParameter`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Parameter {
    Bool(bool),
    Int64(i64),
    Uint64(u64),
    Double(f64),
    String(String),
}

/// A parameters map; ordered so encodings are deterministic.
pub type Parameters = BTreeMap<String, Parameter>;

impl Parameter {
    /// The value as a non-negative integer, when it is one.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Parameter::Int64(i) => u64::try_from(i).ok(),
            Parameter::Uint64(u) => Some(u),
            _ => None,
        }
    }

    /// The value as a bool, when it is one.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Parameter::Bool(b) => Some(b),
            _ => None,
        }
    }

    /// The value as a string, when it is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Parameter::String(s) => Some(s),
            _ => None,
        }
    }
}
