//! Model configuration extension: the subset of Triton's `ModelConfig` oxserve reports.
//!
//! REST: `GET /v2/models/{m}[/versions/{v}]/config` answers [`ModelConfig`] as JSON in
//! Triton's form (`"data_type": "TYPE_FP32"`, numeric `dims`); gRPC: `ModelConfig` answers the
//! protobuf message. Datatypes map as `FP32` ↔ `"TYPE_FP32"` ↔ `TYPE_FP32 = 11`, except
//! `BYTES` ↔ `"TYPE_STRING"`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::datatype::DataType;
use crate::error::{ProtocolError, Result};
use crate::grpc::inference;
use crate::infer::{ModelMetadata, TensorMetadata};

/// The model configuration name of `datatype`, e.g. `"TYPE_FP32"`; BYTES is `"TYPE_STRING"`.
pub const fn config_type_name(datatype: DataType) -> &'static str {
    match datatype {
        DataType::Bool => "TYPE_BOOL",
        DataType::Uint8 => "TYPE_UINT8",
        DataType::Uint16 => "TYPE_UINT16",
        DataType::Uint32 => "TYPE_UINT32",
        DataType::Uint64 => "TYPE_UINT64",
        DataType::Int8 => "TYPE_INT8",
        DataType::Int16 => "TYPE_INT16",
        DataType::Int32 => "TYPE_INT32",
        DataType::Int64 => "TYPE_INT64",
        DataType::Fp16 => "TYPE_FP16",
        DataType::Fp32 => "TYPE_FP32",
        DataType::Fp64 => "TYPE_FP64",
        DataType::Bf16 => "TYPE_BF16",
        DataType::Bytes => "TYPE_STRING",
    }
}

/// The datatype named `name` in a model configuration (`"TYPE_FP32"`, `"TYPE_STRING"`, …).
pub fn datatype_from_config_name(name: &str) -> Option<DataType> {
    DataType::ALL.into_iter().find(|d| config_type_name(*d) == name)
}

impl From<DataType> for inference::DataType {
    fn from(d: DataType) -> Self {
        match d {
            DataType::Bool => inference::DataType::TypeBool,
            DataType::Uint8 => inference::DataType::TypeUint8,
            DataType::Uint16 => inference::DataType::TypeUint16,
            DataType::Uint32 => inference::DataType::TypeUint32,
            DataType::Uint64 => inference::DataType::TypeUint64,
            DataType::Int8 => inference::DataType::TypeInt8,
            DataType::Int16 => inference::DataType::TypeInt16,
            DataType::Int32 => inference::DataType::TypeInt32,
            DataType::Int64 => inference::DataType::TypeInt64,
            DataType::Fp16 => inference::DataType::TypeFp16,
            DataType::Fp32 => inference::DataType::TypeFp32,
            DataType::Fp64 => inference::DataType::TypeFp64,
            DataType::Bf16 => inference::DataType::TypeBf16,
            DataType::Bytes => inference::DataType::TypeString,
        }
    }
}

/// `TYPE_INVALID` has no datatype.
impl TryFrom<inference::DataType> for DataType {
    type Error = ProtocolError;

    fn try_from(d: inference::DataType) -> Result<Self> {
        datatype_from_config_name(d.as_str_name()).ok_or_else(|| {
            ProtocolError::invalid(format!("data type {} is not valid here", d.as_str_name()))
        })
    }
}

/// Serde for [`DataType`] in its model configuration spelling.
mod config_data_type {
    use super::*;

    pub fn serialize<S: serde::Serializer>(
        d: &DataType,
        s: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(config_type_name(*d))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> std::result::Result<DataType, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        datatype_from_config_name(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown data_type \"{s}\"")))
    }
}

/// An input of the model configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelConfigInput {
    pub name: String,
    #[serde(with = "config_data_type")]
    pub data_type: DataType,
    /// Without the batch dimension when `max_batch_size > 0`; `-1` is variable.
    pub dims: Vec<i64>,
}

/// An output of the model configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelConfigOutput {
    pub name: String,
    #[serde(with = "config_data_type")]
    pub data_type: DataType,
    /// Without the batch dimension when `max_batch_size > 0`; `-1` is variable.
    pub dims: Vec<i64>,
}

/// The dynamic batcher's settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DynamicBatching {
    #[serde(default)]
    pub preferred_batch_size: Vec<i32>,
    #[serde(default)]
    pub max_queue_delay_microseconds: u64,
}

/// A user parameter of the configuration: `{"string_value": "…"}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigParameter {
    pub string_value: String,
}

/// A model configuration in Triton's JSON form.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelConfig {
    pub name: String,
    #[serde(default)]
    pub platform: String,
    #[serde(default)]
    pub backend: String,
    /// 0: the model does not batch and `dims` are full shapes.
    #[serde(default)]
    pub max_batch_size: i32,
    #[serde(default)]
    pub input: Vec<ModelConfigInput>,
    #[serde(default)]
    pub output: Vec<ModelConfigOutput>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dynamic_batching: Option<DynamicBatching>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub parameters: BTreeMap<String, ConfigParameter>,
}

/// How a model is batched: what the server's batcher is configured with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchingSettings {
    /// 0 disables batching.
    pub max_batch_size: u32,
    /// Batch sizes the batcher closes a batch at as soon as it can form one.
    pub preferred_batch_sizes: Vec<u32>,
    /// How long a request may wait for others to join its batch.
    pub max_queue_delay: Duration,
}

impl ModelConfig {
    /// The configuration of a model with `metadata` batched per `batching` (`None`: no
    /// batching). With `max_batch_size > 0` the leading batch dimension is left out of `dims`
    /// and `dynamic_batching` is set, as Triton reports it.
    pub fn from_metadata(
        metadata: &ModelMetadata,
        batching: Option<&BatchingSettings>,
    ) -> ModelConfig {
        let batching = batching.filter(|b| b.max_batch_size > 0);
        let dims = |t: &TensorMetadata| -> Vec<i64> {
            match batching {
                Some(_) => t.shape.get(1..).unwrap_or_default().to_vec(),
                None => t.shape.clone(),
            }
        };
        ModelConfig {
            name: metadata.name.clone(),
            platform: metadata.platform.clone(),
            backend: backend_for_platform(&metadata.platform).to_owned(),
            max_batch_size: batching.map_or(0, |b| saturating_i32(b.max_batch_size)),
            input: metadata
                .inputs
                .iter()
                .map(|t| ModelConfigInput {
                    name: t.name.clone(),
                    data_type: t.datatype,
                    dims: dims(t),
                })
                .collect(),
            output: metadata
                .outputs
                .iter()
                .map(|t| ModelConfigOutput {
                    name: t.name.clone(),
                    data_type: t.datatype,
                    dims: dims(t),
                })
                .collect(),
            dynamic_batching: batching.map(|b| DynamicBatching {
                preferred_batch_size: b
                    .preferred_batch_sizes
                    .iter()
                    .map(|&s| saturating_i32(s))
                    .collect(),
                max_queue_delay_microseconds: u64::try_from(b.max_queue_delay.as_micros())
                    .unwrap_or(u64::MAX),
            }),
            parameters: BTreeMap::new(),
        }
    }

    /// The gRPC `ModelConfigResponse` for this configuration.
    pub fn to_proto_response(&self) -> inference::ModelConfigResponse {
        inference::ModelConfigResponse { config: Some(self.clone().into()) }
    }
}

/// Triton names backends after the first word of the platform
/// (`onnxruntime_onnx` → `onnxruntime`).
fn backend_for_platform(platform: &str) -> &str {
    platform.split('_').next().unwrap_or(platform)
}

fn saturating_i32(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

impl From<ModelConfig> for inference::ModelConfig {
    fn from(c: ModelConfig) -> Self {
        inference::ModelConfig {
            name: c.name,
            platform: c.platform,
            backend: c.backend,
            max_batch_size: c.max_batch_size,
            input: c
                .input
                .into_iter()
                .map(|i| inference::ModelInput {
                    name: i.name,
                    data_type: inference::DataType::from(i.data_type).into(),
                    dims: i.dims,
                    ..Default::default()
                })
                .collect(),
            output: c
                .output
                .into_iter()
                .map(|o| inference::ModelOutput {
                    name: o.name,
                    data_type: inference::DataType::from(o.data_type).into(),
                    dims: o.dims,
                    ..Default::default()
                })
                .collect(),
            scheduling_choice: c.dynamic_batching.map(|d| {
                inference::model_config::SchedulingChoice::DynamicBatching(
                    inference::ModelDynamicBatching {
                        preferred_batch_size: d.preferred_batch_size,
                        max_queue_delay_microseconds: d.max_queue_delay_microseconds,
                        ..Default::default()
                    },
                )
            }),
            parameters: c
                .parameters
                .into_iter()
                .map(|(k, v)| (k, inference::ModelParameter { string_value: v.string_value }))
                .collect(),
            ..Default::default()
        }
    }
}

/// Reads the `data_type` of tensor `name` from its protobuf enum value.
fn proto_datatype(name: &str, value: i32) -> Result<DataType> {
    let d = inference::DataType::try_from(value).map_err(|_| {
        ProtocolError::invalid(format!("tensor \"{name}\": unknown data_type {value}"))
    })?;
    DataType::try_from(d)
        .map_err(|e| ProtocolError::invalid(format!("tensor \"{name}\": {}", e.message)))
}

impl TryFrom<inference::ModelConfig> for ModelConfig {
    type Error = ProtocolError;

    fn try_from(c: inference::ModelConfig) -> Result<Self> {
        Ok(ModelConfig {
            input: c
                .input
                .into_iter()
                .map(|i| {
                    Ok(ModelConfigInput {
                        data_type: proto_datatype(&i.name, i.data_type)?,
                        name: i.name,
                        dims: i.dims,
                    })
                })
                .collect::<Result<_>>()?,
            output: c
                .output
                .into_iter()
                .map(|o| {
                    Ok(ModelConfigOutput {
                        data_type: proto_datatype(&o.name, o.data_type)?,
                        name: o.name,
                        dims: o.dims,
                    })
                })
                .collect::<Result<_>>()?,
            dynamic_batching: c.scheduling_choice.map(|s| match s {
                inference::model_config::SchedulingChoice::DynamicBatching(d) => DynamicBatching {
                    preferred_batch_size: d.preferred_batch_size,
                    max_queue_delay_microseconds: d.max_queue_delay_microseconds,
                },
            }),
            parameters: c
                .parameters
                .into_iter()
                .map(|(k, v)| (k, ConfigParameter { string_value: v.string_value }))
                .collect(),
            name: c.name,
            platform: c.platform,
            backend: c.backend,
            max_batch_size: c.max_batch_size,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn metadata() -> ModelMetadata {
        ModelMetadata {
            name: "iris".into(),
            versions: vec!["1".into()],
            platform: "onnxruntime_onnx".into(),
            inputs: vec![TensorMetadata {
                name: "x".into(),
                datatype: DataType::Fp32,
                shape: vec![-1, 4],
                parameters: None,
            }],
            outputs: vec![TensorMetadata {
                name: "label".into(),
                datatype: DataType::Bytes,
                shape: vec![-1],
                parameters: None,
            }],
            parameters: None,
        }
    }

    #[test]
    fn datatype_names_and_enum() {
        assert_eq!(config_type_name(DataType::Bytes), "TYPE_STRING");
        assert_eq!(datatype_from_config_name("TYPE_STRING"), Some(DataType::Bytes));
        assert_eq!(datatype_from_config_name("TYPE_BYTES"), None);
        for d in DataType::ALL {
            let proto = inference::DataType::from(d);
            assert_eq!(proto.as_str_name(), config_type_name(d));
            assert_eq!(DataType::try_from(proto).unwrap(), d);
        }
        assert_eq!(inference::DataType::from(DataType::Fp32) as i32, 11);
        assert_eq!(inference::DataType::from(DataType::Bytes) as i32, 13);
        assert_eq!(inference::DataType::from(DataType::Bf16) as i32, 14);
        assert_eq!(
            DataType::try_from(inference::DataType::TypeInvalid).unwrap_err().message,
            "data type TYPE_INVALID is not valid here"
        );
    }

    #[test]
    fn batched_config_json_shape() {
        let batching = BatchingSettings {
            max_batch_size: 8,
            preferred_batch_sizes: vec![4, 8],
            max_queue_delay: Duration::from_millis(2),
        };
        let c = ModelConfig::from_metadata(&metadata(), Some(&batching));
        assert_eq!(
            serde_json::to_value(&c).unwrap(),
            json!({
                "name": "iris",
                "platform": "onnxruntime_onnx",
                "backend": "onnxruntime",
                "max_batch_size": 8,
                "input": [{"name": "x", "data_type": "TYPE_FP32", "dims": [4]}],
                "output": [{"name": "label", "data_type": "TYPE_STRING", "dims": []}],
                "dynamic_batching": {"preferred_batch_size": [4, 8], "max_queue_delay_microseconds": 2000}
            })
        );
        let back: ModelConfig = serde_json::from_value(serde_json::to_value(&c).unwrap()).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn unbatched_config_keeps_full_shapes() {
        for batching in [None, Some(BatchingSettings::default())] {
            let c = ModelConfig::from_metadata(&metadata(), batching.as_ref());
            assert_eq!(
                serde_json::to_value(&c).unwrap(),
                json!({
                    "name": "iris",
                    "platform": "onnxruntime_onnx",
                    "backend": "onnxruntime",
                    "max_batch_size": 0,
                    "input": [{"name": "x", "data_type": "TYPE_FP32", "dims": [-1, 4]}],
                    "output": [{"name": "label", "data_type": "TYPE_STRING", "dims": [-1]}]
                })
            );
        }
    }

    #[test]
    fn unknown_json_data_type_is_refused() {
        let e = serde_json::from_value::<ModelConfigInput>(
            json!({"name": "x", "data_type": "FP32", "dims": []}),
        )
        .unwrap_err();
        assert!(e.to_string().contains("unknown data_type \"FP32\""), "{e}");
    }

    #[test]
    fn proto_round_trip() {
        let batching = BatchingSettings {
            max_batch_size: 4,
            preferred_batch_sizes: vec![2],
            max_queue_delay: Duration::from_micros(150),
        };
        let mut c = ModelConfig::from_metadata(&metadata(), Some(&batching));
        c.parameters.insert("k".into(), ConfigParameter { string_value: "v".into() });
        let resp = c.to_proto_response();
        let proto = resp.config.clone().unwrap();
        assert_eq!(proto.max_batch_size, 4);
        assert_eq!(proto.input[0].data_type, 11);
        assert_eq!(proto.output[0].data_type, 13);
        assert_eq!(proto.input[0].dims, [4]);
        match &proto.scheduling_choice {
            Some(inference::model_config::SchedulingChoice::DynamicBatching(d)) => {
                assert_eq!(d.max_queue_delay_microseconds, 150);
                assert_eq!(d.preferred_batch_size, [2]);
            }
            None => panic!("dynamic batching missing"),
        }
        assert_eq!(ModelConfig::try_from(proto.clone()).unwrap(), c);
        let mut bad = proto;
        bad.input[0].data_type = 99;
        assert_eq!(
            ModelConfig::try_from(bad.clone()).unwrap_err().message,
            "tensor \"x\": unknown data_type 99"
        );
        bad.input[0].data_type = 0;
        assert_eq!(
            ModelConfig::try_from(bad).unwrap_err().message,
            "tensor \"x\": data type TYPE_INVALID is not valid here"
        );
    }
}
