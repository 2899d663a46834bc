//! The ONNX runtime: serves `.onnx` models (including scikit-learn pipelines converted with
//! skl2onnx) through ONNX Runtime via the `ort` crate.
//!
//! ONNX Runtime is a shared library loaded at run time, the first time an ONNX model loads
//! (see [`library`] for where it is looked for; `cargo xtask setup` installs it). When it
//! cannot be found or loaded, every ONNX model fails to load with an error saying so, and
//! models in other formats keep serving.
//!
//! `ort` runs a session through `&mut self`, so a model holds a small pool of sessions
//! ([`OnnxOptions::sessions`]) and a request takes a free one, waiting only when all are
//! busy: concurrent requests run in parallel.
//!
//! Element types map one to one onto the protocol's datatypes (ONNX `string` is `BYTES`,
//! which must then be UTF-8); symbolic or unknown dimensions are advertised as `-1`.
//!
//! # scikit-learn classifiers and ZipMap
//! skl2onnx ends classifiers with a `ZipMap` operator by default, whose output is a
//! sequence of `{class: probability}` maps rather than a tensor. Such an output is converted
//! to an FP32 tensor `[N, num_classes]` with its columns in class order, under the same
//! name, and advertised as FP32 `[-1, num_classes]` (see [`zipmap`]). Any other sequence or
//! map output cannot be served: export the model without ZipMap instead, e.g.
//! `to_onnx(model, X, options={id(model): {"zipmap": False}})`.
//!
//! # Native evaluation of small scikit-learn graphs
//! A model whose graph is a linear scikit-learn model and its pre/post-processing
//! (`LinearClassifier`, `LinearRegressor`, `Normalizer`, `Scaler`, `Cast`, `Identity`,
//! `ZipMap`; see [`native`]) is still loaded by ONNX Runtime, which gives its metadata and
//! validates it, but requests are then computed by [`native::Plan`] in Rust, with the same
//! outputs: for such tiny graphs a session run is mostly fixed overhead. Any graph the
//! plan compiler does not reproduce exactly keeps running on ONNX Runtime; so does every
//! model whose settings turn it off ([`OnnxOptions::native`]). The engine in use, and why
//! a graph is not evaluated natively, are logged per model.
//!
//! # GPU
//! With the `gpu` feature the CUDA execution provider is tried first for every model and
//! CPU is used when it cannot be registered; the provider in use is logged per model.

pub mod library;
pub mod native;
pub mod zipmap;

#[cfg(test)]
mod tests;

use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use ort::session::{Session, SessionInputValue, SessionOutputs};
use ort::value::{DynMapValueType, DynSequenceValueType, DynValue, TensorElementType, ValueType};
use oxserve_protocol::{DataType, InferRequest, ModelMetadata, Tensor, TensorData, TensorMetadata};
use parking_lot::Mutex;

use self::zipmap::{Columns, Labels};
use crate::error::{Error, Result};
use crate::model::Model;

/// The platform name advertised in model metadata.
pub const PLATFORM: &str = "onnxruntime_onnx";

/// How an ONNX model is run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnnxOptions {
    /// Threads ONNX Runtime may use inside one operator of one request.
    pub intra_op_threads: usize,
    /// Sessions kept per model: how many requests run at the same time. Each holds its own
    /// copy of the weights.
    pub sessions: usize,
    /// Whether a graph the [`native`] evaluator supports is computed by it rather than by
    /// ONNX Runtime (`parameters.onnx_native` in `model-settings.json`).
    pub native: bool,
}

impl Default for OnnxOptions {
    /// One intra-op thread and one session per available core: parallelism comes from
    /// running requests side by side rather than from splitting each one.
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        OnnxOptions { intra_op_threads: 1, sessions: cores, native: true }
    }
}

/// An output as the model produces it.
#[derive(Debug)]
enum OutputKind {
    Tensor,
    /// A `ZipMap` sequence of maps, served as FP32 `[N, columns.len()]`.
    ZipMap(Columns),
}

/// What computes a model's requests.
enum Engine {
    /// ONNX Runtime sessions, used in turn.
    Runtime { sessions: Vec<Mutex<Session>>, next: AtomicUsize },
    /// The native evaluator.
    Native(native::Plan),
}

/// The largest model file the native evaluator is tried on: linear models are small, and
/// anything bigger is not worth reading a second time.
const NATIVE_MAX_FILE_BYTES: u64 = 64 << 20;

/// A loaded ONNX model.
pub struct OnnxModel {
    name: String,
    metadata: ModelMetadata,
    outputs: Vec<OutputKind>,
    engine: Engine,
    provider: &'static str,
    file_bytes: u64,
}

impl std::fmt::Debug for OnnxModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sessions = match &self.engine {
            Engine::Runtime { sessions, .. } => sessions.len(),
            Engine::Native(_) => 0,
        };
        f.debug_struct("OnnxModel")
            .field("name", &self.name)
            .field("sessions", &sessions)
            .field("provider", &self.execution_provider())
            .finish_non_exhaustive()
    }
}

/// Loads the ONNX model file at `path` as model `name`.
///
/// Loads ONNX Runtime first if this is the first ONNX model of the process.
pub fn load(name: &str, path: &Path, options: &OnnxOptions) -> Result<OnnxModel> {
    let runtime = library::runtime().map_err(|e| Error::load(name, e))?;
    let file_bytes = std::fs::metadata(path)
        .map_err(|e| Error::load(name, format!("reading {}: {e}", path.display())))?
        .len();
    let new_session = || {
        guarded(|| create_session(&runtime.environment, path, options))
            .and_then(|r| r)
            .map_err(|e| Error::load(name, format!("{}: {e}", path.display())))
    };
    // The first session validates the model and describes it, whichever engine runs it.
    let (first, provider) = new_session()?;
    let (inputs, outputs, kinds) = describe(path, &first).map_err(|e| Error::load(name, e))?;
    let plan = if options.native {
        native_plan(path, file_bytes, &inputs, &outputs)
    } else {
        Err("disabled by the model settings".to_owned())
    };
    let engine = match plan {
        Ok(plan) => {
            tracing::info!(model = name, engine = "native", "loaded onnx model");
            Engine::Native(plan)
        }
        Err(reason) => {
            let count = options.sessions.max(1);
            let mut sessions = Vec::with_capacity(count);
            sessions.push(Mutex::new(first));
            for _ in 1..count {
                sessions.push(Mutex::new(new_session()?.0));
            }
            tracing::info!(
                model = name,
                engine = "onnxruntime",
                provider,
                sessions = count,
                native = %reason,
                "loaded onnx model"
            );
            Engine::Runtime { sessions, next: AtomicUsize::new(0) }
        }
    };
    Ok(OnnxModel {
        name: name.to_owned(),
        metadata: ModelMetadata {
            name: name.to_owned(),
            versions: Vec::new(),
            platform: PLATFORM.to_owned(),
            inputs,
            outputs,
            parameters: None,
        },
        outputs: kinds,
        engine,
        provider,
        file_bytes,
    })
}

/// The native plan of the model at `path` when its graph is one the native evaluator runs
/// and the plan agrees with what ONNX Runtime reports (`inputs`, `outputs`); else why not.
fn native_plan(
    path: &Path,
    file_bytes: u64,
    inputs: &[TensorMetadata],
    outputs: &[TensorMetadata],
) -> std::result::Result<native::Plan, String> {
    if file_bytes > NATIVE_MAX_FILE_BYTES {
        return Err(format!("the file is larger than {NATIVE_MAX_FILE_BYTES} bytes"));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let mut plan = guarded(|| native::compile(&bytes)).and_then(|r| r)?;
    let same_inputs = plan.inputs().len() == inputs.len()
        && plan
            .inputs()
            .iter()
            .zip(inputs)
            .all(|(p, m)| p.name == m.name && p.elem.datatype() == m.datatype);
    if !same_inputs {
        return Err("the graph's inputs differ from what onnx runtime reports".to_owned());
    }
    let names: Vec<&str> = outputs.iter().map(|m| m.name.as_str()).collect();
    if !plan.reorder_outputs(&names)
        || plan.outputs().iter().zip(outputs).any(|(p, m)| p.elem.datatype() != m.datatype)
    {
        return Err("the graph's outputs differ from what onnx runtime reports".to_owned());
    }
    Ok(plan)
}

/// Runs `f`, turning a panic inside `ort` into an error. `ort` reports a few states it
/// considers impossible (e.g. a map whose key and value counts differ) by panicking; no
/// model file or request may take the server down, and the sessions involved hold no
/// half-updated Rust state, so continuing is sound.
fn guarded<T>(f: impl FnOnce() -> T) -> std::result::Result<T, String> {
    std::panic::catch_unwind(AssertUnwindSafe(f))
        .map_err(|_| "onnx runtime failed unexpectedly".to_owned())
}

/// One session with the configured threads and, with `gpu`, CUDA when it can be used.
/// Returns the session and the name of the execution provider in use.
fn create_session(
    environment: &ort::environment::Environment,
    path: &Path,
    options: &OnnxOptions,
) -> std::result::Result<(Session, &'static str), String> {
    let builder = Session::builder(environment)
        .map_err(|e| e.to_string())?
        .with_intra_threads(options.intra_op_threads.max(1))
        .map_err(|e| e.to_string())?
        .with_inter_threads(1)
        .map_err(|e| e.to_string())?;
    #[cfg(feature = "gpu")]
    let (mut builder, provider) = {
        let cuda = ort::ep::CUDA::default().build().error_on_failure();
        match builder.with_execution_providers([cuda]) {
            Ok(b) => (b, "CUDA"),
            Err(e) => {
                tracing::warn!(error = %e, "cuda execution provider unavailable, using cpu");
                (e.recover(), "CPU")
            }
        }
    };
    #[cfg(not(feature = "gpu"))]
    let (mut builder, provider) = (builder, "CPU");
    let session = builder.commit_from_file(path).map_err(|e| e.to_string())?;
    Ok((session, provider))
}

type Described = (Vec<TensorMetadata>, Vec<TensorMetadata>, Vec<OutputKind>);

/// Inputs and outputs of `session` in protocol terms.
fn describe(path: &Path, session: &Session) -> std::result::Result<Described, String> {
    let mut inputs = Vec::new();
    for input in session.inputs() {
        let (datatype, shape) = match input.dtype() {
            ValueType::Tensor { ty, shape, .. } => (
                datatype_of(*ty).map_err(|e| format!("input \"{}\": {e}", input.name()))?,
                dims(shape),
            ),
            other => {
                return Err(format!(
                    "input \"{}\" has type {other}, only tensor inputs are supported",
                    input.name()
                ));
            }
        };
        inputs.push(TensorMetadata {
            name: input.name().to_owned(),
            datatype,
            shape,
            parameters: None,
        });
    }
    let mut outputs = Vec::new();
    let mut kinds = Vec::new();
    let mut zipmaps = None;
    for output in session.outputs() {
        let name = output.name();
        match output.dtype() {
            ValueType::Tensor { ty, shape, .. } => {
                let datatype = datatype_of(*ty).map_err(|e| format!("output \"{name}\": {e}"))?;
                outputs.push(TensorMetadata {
                    name: name.to_owned(),
                    datatype,
                    shape: dims(shape),
                    parameters: None,
                });
                kinds.push(OutputKind::Tensor);
            }
            ValueType::Sequence(element)
                if matches!(
                    **element,
                    ValueType::Map {
                        key: TensorElementType::Int64 | TensorElementType::String,
                        value: TensorElementType::Float32
                    }
                ) =>
            {
                if zipmaps.is_none() {
                    let bytes = std::fs::read(path)
                        .map_err(|e| format!("reading {}: {e}", path.display()))?;
                    zipmaps = Some(zipmap::find_zipmaps(&bytes)?);
                }
                let labels = zipmaps
                    .as_ref()
                    .and_then(|z| z.get(name))
                    .ok_or_else(|| unsupported(name, output.dtype()))?;
                let columns = Columns::new(labels).ok_or_else(|| {
                    format!("output \"{name}\": zipmap has repeated class labels")
                })?;
                if matches!(
                    (labels, &**element),
                    (Labels::Int64(_), ValueType::Map { key: TensorElementType::String, .. })
                        | (Labels::String(_), ValueType::Map { key: TensorElementType::Int64, .. })
                ) {
                    return Err(format!(
                        "output \"{name}\": zipmap labels do not match the map key type"
                    ));
                }
                outputs.push(TensorMetadata {
                    name: name.to_owned(),
                    datatype: DataType::Fp32,
                    shape: vec![-1, columns.len() as i64],
                    parameters: None,
                });
                kinds.push(OutputKind::ZipMap(columns));
            }
            other => return Err(unsupported(name, other)),
        }
    }
    Ok((inputs, outputs, kinds))
}

fn unsupported(name: &str, ty: &ValueType) -> String {
    format!(
        "output \"{name}\" has type {ty}, which cannot be served as a tensor; export the model with \
         tensor outputs only (for scikit-learn classifiers: to_onnx(model, X, \
         options={{id(model): {{\"zipmap\": False}}}}))"
    )
}

/// Dimensions as advertised: symbolic and unknown ones are `-1`.
fn dims(shape: &[i64]) -> Vec<i64> {
    shape.iter().map(|&d| if d < 0 { -1 } else { d }).collect()
}

/// The protocol datatype of an ONNX element type.
fn datatype_of(ty: TensorElementType) -> std::result::Result<DataType, String> {
    Ok(match ty {
        TensorElementType::Bool => DataType::Bool,
        TensorElementType::Uint8 => DataType::Uint8,
        TensorElementType::Uint16 => DataType::Uint16,
        TensorElementType::Uint32 => DataType::Uint32,
        TensorElementType::Uint64 => DataType::Uint64,
        TensorElementType::Int8 => DataType::Int8,
        TensorElementType::Int16 => DataType::Int16,
        TensorElementType::Int32 => DataType::Int32,
        TensorElementType::Int64 => DataType::Int64,
        TensorElementType::Float16 => DataType::Fp16,
        TensorElementType::Float32 => DataType::Fp32,
        TensorElementType::Float64 => DataType::Fp64,
        TensorElementType::Bfloat16 => DataType::Bf16,
        TensorElementType::String => DataType::Bytes,
        other => return Err(format!("element type {other} has no protocol datatype")),
    })
}

/// An `ort` input value that owns (takes over) the request's buffer.
fn to_value(tensor: Tensor) -> Result<DynValue> {
    let Tensor { name, shape, data, .. } = tensor;
    let bad = |e: ort::Error| Error::invalid(format!("input \"{name}\": {e}"));
    macro_rules! owned {
        ($v:expr) => {
            ort::value::Tensor::from_array((shape.clone(), $v)).map(|t| t.into_dyn()).map_err(bad)
        };
    }
    match data {
        TensorData::Bool(v) => owned!(v),
        TensorData::Uint8(v) => owned!(v),
        TensorData::Uint16(v) => owned!(v),
        TensorData::Uint32(v) => owned!(v),
        TensorData::Uint64(v) => owned!(v),
        TensorData::Int8(v) => owned!(v),
        TensorData::Int16(v) => owned!(v),
        TensorData::Int32(v) => owned!(v),
        TensorData::Int64(v) => owned!(v),
        TensorData::Fp16(v) => owned!(v),
        TensorData::Fp32(v) => owned!(v),
        TensorData::Fp64(v) => owned!(v),
        TensorData::Bf16(v) => owned!(v),
        TensorData::Bytes(v) => {
            let strings = v
                .into_iter()
                .enumerate()
                .map(|(i, b)| match std::str::from_utf8(&b) {
                    Ok(_) => Ok(Utf8Bytes(b)),
                    Err(_) => Err(Error::invalid(format!(
                        "input \"{name}\": element {i} is not valid utf-8, which string inputs require"
                    ))),
                })
                .collect::<Result<Vec<Utf8Bytes>>>()?;
            // ONNX Runtime copies the strings into its own tensor.
            ort::value::Tensor::from_string_array((shape.clone(), strings.as_slice()))
                .map(|t| t.into_dyn())
                .map_err(bad)
        }
    }
}

/// A `BYTES` element already checked to be UTF-8, handed to ONNX Runtime without copying.
#[derive(Clone)]
struct Utf8Bytes(Bytes);

impl ort::value::Utf8Data for Utf8Bytes {
    fn as_utf8_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl OnnxModel {
    /// Where the model's requests run: `"native"` for the [`native`] evaluator, else ONNX
    /// Runtime's execution provider (`"CPU"` or `"CUDA"`).
    pub fn execution_provider(&self) -> &'static str {
        match self.engine {
            Engine::Native(_) => "native",
            Engine::Runtime { .. } => self.provider,
        }
    }

    /// True when requests are computed by the [`native`] evaluator.
    pub fn is_native(&self) -> bool {
        matches!(self.engine, Engine::Native(_))
    }

    /// Takes a free session, or waits for one when all are busy. Starting points rotate so
    /// that sessions are used evenly.
    fn session<'a>(
        sessions: &'a [Mutex<Session>],
        next: &AtomicUsize,
    ) -> parking_lot::MutexGuard<'a, Session> {
        let n = sessions.len().max(1);
        let start = next.fetch_add(1, Ordering::Relaxed) % n;
        for i in 0..n {
            if let Some(guard) = sessions.get((start + i) % n).and_then(|s| s.try_lock()) {
                return guard;
            }
        }
        sessions[start].lock()
    }

    fn runtime_error(&self, e: ort::Error) -> Error {
        // ONNX Runtime says INVALID_ARGUMENT when the inputs do not fit the graph (wrong
        // type, rank or dimension): that is the client's mistake, not the server's.
        if e.code() == ort::ErrorCode::InvalidArgument {
            Error::invalid(format!("model \"{}\": {e}", self.name))
        } else {
            Error::runtime(&self.name, e)
        }
    }

    /// Checks input names and datatypes (the server validates too; this keeps the model
    /// safe when used directly).
    fn check_inputs(&self, request: &InferRequest) -> Result<()> {
        for input in &request.inputs {
            let Some(meta) = self.metadata.inputs.iter().find(|m| m.name == input.name) else {
                return Err(Error::invalid(format!(
                    "model \"{}\" has no input \"{}\"",
                    self.name, input.name
                )));
            };
            if meta.datatype != input.datatype() {
                return Err(Error::invalid(format!(
                    "input \"{}\": model expects {}, got {}",
                    input.name,
                    meta.datatype,
                    input.datatype()
                )));
            }
            input.validate()?;
        }
        Ok(())
    }

    /// Converts every output of a run, in metadata order.
    fn convert_outputs(&self, mut outputs: SessionOutputs<'_>) -> Result<Vec<Tensor>> {
        let mut result = Vec::with_capacity(self.outputs.len());
        for (meta, kind) in self.metadata.outputs.iter().zip(&self.outputs) {
            let value = outputs.remove(&meta.name).ok_or_else(|| {
                Error::runtime(&self.name, format!("output \"{}\" is missing", meta.name))
            })?;
            let fail =
                |e: String| Error::runtime(&self.name, format!("output \"{}\": {e}", meta.name));
            let tensor = match kind {
                OutputKind::Tensor => tensor_output(&meta.name, &value).map_err(fail)?,
                OutputKind::ZipMap(columns) => {
                    zipmap_output(&meta.name, value, columns).map_err(fail)?
                }
            };
            result.push(tensor);
        }
        Ok(result)
    }
}

/// Copies a tensor output out of ONNX Runtime's memory.
fn tensor_output(name: &str, value: &DynValue) -> std::result::Result<Tensor, String> {
    let ValueType::Tensor { ty, shape, .. } = value.dtype() else {
        return Err(format!("expected a tensor, got {}", value.dtype()));
    };
    let shape: Vec<i64> = shape.to_vec();
    macro_rules! copy {
        ($t:ty, $variant:ident) => {
            TensorData::$variant(
                value.try_extract_tensor::<$t>().map_err(|e| e.to_string())?.1.to_vec(),
            )
        };
    }
    let data = match ty {
        TensorElementType::Bool => copy!(bool, Bool),
        TensorElementType::Uint8 => copy!(u8, Uint8),
        TensorElementType::Uint16 => copy!(u16, Uint16),
        TensorElementType::Uint32 => copy!(u32, Uint32),
        TensorElementType::Uint64 => copy!(u64, Uint64),
        TensorElementType::Int8 => copy!(i8, Int8),
        TensorElementType::Int16 => copy!(i16, Int16),
        TensorElementType::Int32 => copy!(i32, Int32),
        TensorElementType::Int64 => copy!(i64, Int64),
        TensorElementType::Float16 => copy!(half::f16, Fp16),
        TensorElementType::Float32 => copy!(f32, Fp32),
        TensorElementType::Float64 => copy!(f64, Fp64),
        TensorElementType::Bfloat16 => copy!(half::bf16, Bf16),
        TensorElementType::String => {
            let (_, strings) = value.try_extract_strings().map_err(|e| e.to_string())?;
            TensorData::Bytes(strings.into_iter().map(Bytes::from).collect())
        }
        other => return Err(format!("element type {other} has no protocol datatype")),
    };
    Ok(Tensor::new(name, shape, data))
}

/// Turns a ZipMap sequence of maps into FP32 `[N, columns]`.
fn zipmap_output(
    name: &str,
    value: DynValue,
    columns: &Columns,
) -> std::result::Result<Tensor, String> {
    let sequence = value.downcast::<DynSequenceValueType>().map_err(|e| e.to_string())?;
    let maps = sequence.try_extract_sequence::<DynMapValueType>().map_err(|e| e.to_string())?;
    let width = columns.len();
    let mut data = vec![0.0f32; maps.len() * width];
    for (map, row) in maps.iter().zip(data.chunks_mut(width.max(1))) {
        match columns {
            Columns::Int64(index) => {
                let pairs = map.try_extract_key_values::<i64, f32>().map_err(|e| e.to_string())?;
                zipmap::fill_row(row, pairs, |k| index.get(k).copied())?;
            }
            Columns::String(index) => {
                let pairs =
                    map.try_extract_key_values::<String, f32>().map_err(|e| e.to_string())?;
                zipmap::fill_row(row, pairs, |k| index.get(k).copied())?;
            }
        }
    }
    Ok(Tensor::new(name, vec![maps.len() as i64, width as i64], TensorData::Fp32(data)))
}

impl Model for OnnxModel {
    fn metadata(&self) -> &ModelMetadata {
        &self.metadata
    }

    fn infer(&self, request: InferRequest) -> Result<Vec<Tensor>> {
        self.check_inputs(&request)?;
        let (sessions, next) = match &self.engine {
            Engine::Native(plan) => {
                return guarded(|| plan.run(&self.name, request.inputs))
                    .map_err(|e| Error::runtime(&self.name, e))?;
            }
            Engine::Runtime { sessions, next } => (sessions, next),
        };
        let mut inputs: Vec<(String, SessionInputValue<'static>)> =
            Vec::with_capacity(request.inputs.len());
        for tensor in request.inputs {
            let name = tensor.name.clone();
            inputs.push((name, to_value(tensor)?.into()));
        }
        let mut session = Self::session(sessions, next);
        guarded(|| {
            let outputs = session.run(inputs).map_err(|e| self.runtime_error(e))?;
            self.convert_outputs(outputs)
        })
        .map_err(|e| Error::runtime(&self.name, e))?
    }

    fn memory_bytes(&self) -> u64 {
        match &self.engine {
            Engine::Runtime { sessions, .. } => {
                self.file_bytes.saturating_mul(sessions.len() as u64)
            }
            // The plan holds the weights once, as plain floats: at most the file's size.
            Engine::Native(_) => self.file_bytes,
        }
    }
}
