//! A native evaluator for small scikit-learn ONNX graphs: linear models and their
//! pre/post-processing (`LinearClassifier`, `LinearRegressor`, `Normalizer`, `Scaler`,
//! `Cast`, `Identity`, `ZipMap`), computed in Rust instead of by an ONNX Runtime session.
//!
//! For such a model a session run is almost all fixed overhead (a dozen multiply-adds
//! behind tens of microseconds of bookkeeping), so the model file is compiled once at load
//! into a [`Plan`]: a list of steps over numbered value slots, with every attribute checked
//! and every value's element type and width known in advance. Only the batch size varies
//! per request.
//!
//! The compiler ([`compile`]) accepts a graph only when it understands every part of it
//! exactly as ONNX Runtime would run it; anything else (another operator, an attribute it
//! does not know, an initializer, a `PROBIT` transform, integer or string graph inputs,
//! shapes that are not `[batch, features]` …) is refused with the reason, and the model
//! keeps running on ONNX Runtime. The arithmetic in [`ops`] follows ONNX Runtime's CPU
//! kernels, and the tests compare both engines on many random inputs.

mod compile;
pub mod ops;
pub mod proto;

#[cfg(test)]
mod tests;

use bytes::Bytes;
use oxserve_protocol::{DataType, Tensor, TensorData};

pub use self::compile::compile;
use self::ops::{Linear, Norm, PostTransform};
use crate::error::{Error, Result};

/// Element types of values inside a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Elem {
    F32,
    F64,
    I64,
    I32,
    Str,
}

impl Elem {
    /// The protocol datatype values of this type are served as.
    pub fn datatype(self) -> DataType {
        match self {
            Elem::F32 => DataType::Fp32,
            Elem::F64 => DataType::Fp64,
            Elem::I64 => DataType::Int64,
            Elem::I32 => DataType::Int32,
            Elem::Str => DataType::Bytes,
        }
    }
}

/// Index of a value in a plan's slots.
type Slot = usize;

/// Plans with at most this many values keep them on the stack while they run.
const STACK_SLOTS: usize = 8;

/// A graph input: a `[batch, width]` tensor.
#[derive(Debug, Clone)]
pub struct PlanInput {
    pub name: String,
    pub elem: Elem,
    pub width: usize,
    /// The batch size when the model fixes it.
    pub batch: Option<usize>,
    slot: Slot,
}

/// A graph output: `[batch]` (`width` `None`) or `[batch, width]`.
#[derive(Debug, Clone)]
pub struct PlanOutput {
    pub name: String,
    pub elem: Elem,
    pub width: Option<usize>,
    slot: Slot,
}

/// Class labels of a classifier.
#[derive(Debug, Clone)]
enum ClassLabels {
    Int64(Vec<i64>),
    String(Vec<Bytes>),
}

/// One operator application.
#[derive(Debug, Clone)]
enum Step {
    /// `LinearClassifier`: labels `[N]` and scores `[N, classes]`.
    Classify {
        input: Slot,
        label: Option<Slot>,
        scores: Option<Slot>,
        linear: Linear,
        labels: ClassLabels,
        transform: PostTransform,
    },
    /// `LinearRegressor` (no post-transform): `[N, targets]`.
    Regress { input: Slot, output: Slot, linear: Linear },
    /// `Normalizer` over rows of `width`.
    Normalize { input: Slot, output: Slot, width: usize, norm: Norm },
    /// `Scaler`.
    Scale { input: Slot, output: Slot, offset: Vec<f32>, scale: Vec<f32> },
    /// `Cast` between numeric types.
    Cast { input: Slot, output: Slot, to: Elem },
    /// `Identity`, and `ZipMap` (whose maps the server turns back into the same tensor).
    Copy { input: Slot, output: Slot },
}

/// A compiled graph, ready to run on any batch size.
#[derive(Debug, Clone)]
pub struct Plan {
    inputs: Vec<PlanInput>,
    steps: Vec<Step>,
    outputs: Vec<PlanOutput>,
    slots: usize,
}

/// Values flowing through a plan.
#[derive(Debug, Clone, PartialEq)]
enum Data {
    F32(Vec<f32>),
    F64(Vec<f64>),
    I64(Vec<i64>),
    I32(Vec<i32>),
    Str(Vec<Bytes>),
}

/// A value and its number of rows (the batch size it descends from).
#[derive(Debug, Clone)]
struct Value {
    rows: usize,
    data: Data,
}

impl Plan {
    /// The graph inputs, in graph order.
    pub fn inputs(&self) -> &[PlanInput] {
        &self.inputs
    }

    /// The graph outputs, in the order [`Plan::run`] returns them.
    pub fn outputs(&self) -> &[PlanOutput] {
        &self.outputs
    }

    /// Puts the outputs in the order of `names` (every output exactly once); `false`, with
    /// the plan unchanged, when the names are not the plan's outputs.
    pub fn reorder_outputs(&mut self, names: &[&str]) -> bool {
        let mut ordered = Vec::with_capacity(names.len());
        for name in names {
            match self.outputs.iter().find(|o| o.name == *name) {
                Some(o) => ordered.push(o.clone()),
                None => return false,
            }
        }
        if ordered.len() != self.outputs.len() {
            return false;
        }
        self.outputs = ordered;
        true
    }

    /// Runs the plan on `inputs` (names and datatypes already checked against the model's
    /// metadata, element counts against shapes) for model `model`.
    pub fn run(&self, model: &str, inputs: Vec<Tensor>) -> Result<Vec<Tensor>> {
        // The values live on the stack for the small graphs this evaluator is for.
        let mut on_stack: [Option<Value>; STACK_SLOTS] = Default::default();
        let mut on_heap: Vec<Option<Value>> = Vec::new();
        let slots: &mut [Option<Value>] = match on_stack.get_mut(..self.slots) {
            Some(slots) => slots,
            None => {
                on_heap.resize_with(self.slots, || None);
                &mut on_heap
            }
        };
        let mut inputs = inputs;
        for input in &self.inputs {
            let position = inputs.iter().position(|t| t.name == input.name);
            let tensor = position.map(|i| inputs.swap_remove(i)).ok_or_else(|| {
                Error::invalid(format!("model \"{model}\": input \"{}\" is missing", input.name))
            })?;
            if inputs.iter().any(|t| t.name == input.name) {
                return Err(Error::invalid(format!(
                    "model \"{model}\": input \"{}\" is given more than once",
                    input.name
                )));
            }
            let value = input_value(model, input, tensor)?;
            put(slots, input.slot, value)?;
        }
        for step in &self.steps {
            step.run(slots)?;
        }
        let mut result = Vec::with_capacity(self.outputs.len());
        for (i, output) in self.outputs.iter().enumerate() {
            let used_later =
                self.outputs.get(i + 1..).unwrap_or_default().iter().any(|o| o.slot == output.slot);
            let value = match slots.get_mut(output.slot) {
                Some(v) if used_later => v.clone(),
                Some(v) => v.take(),
                None => None,
            }
            .ok_or_else(|| missing(output.slot))?;
            let shape = match output.width {
                None => vec![value.rows as i64],
                Some(w) => vec![value.rows as i64, w as i64],
            };
            let data = match value.data {
                Data::F32(v) => TensorData::Fp32(v),
                Data::F64(v) => TensorData::Fp64(v),
                Data::I64(v) => TensorData::Int64(v),
                Data::I32(v) => TensorData::Int32(v),
                Data::Str(v) => TensorData::Bytes(v),
            };
            result.push(Tensor::new(output.name.clone(), shape, data));
        }
        Ok(result)
    }
}

/// Checks a request tensor against the input's `[batch, width]` and takes over its buffer.
fn input_value(model: &str, input: &PlanInput, tensor: Tensor) -> Result<Value> {
    let expected = || {
        let batch = input.batch.map_or("-1".to_owned(), |b| b.to_string());
        format!("[{batch}, {}]", input.width)
    };
    let rows = match tensor.shape.as_slice() {
        &[rows, width]
            if usize::try_from(width) == Ok(input.width)
                && input.batch.is_none_or(|b| usize::try_from(rows) == Ok(b)) =>
        {
            usize::try_from(rows).ok()
        }
        _ => None,
    };
    let Some(rows) = rows else {
        return Err(Error::invalid(format!(
            "model \"{model}\": input \"{}\" must have shape {}, got {:?}",
            input.name,
            expected(),
            tensor.shape
        )));
    };
    let data = match tensor.data {
        TensorData::Fp32(v) if input.elem == Elem::F32 => Data::F32(v),
        TensorData::Fp64(v) if input.elem == Elem::F64 => Data::F64(v),
        other => {
            return Err(Error::invalid(format!(
                "model \"{model}\": input \"{}\" must be {}, got {}",
                input.name,
                input.elem.datatype(),
                other.datatype()
            )));
        }
    };
    Ok(Value { rows, data })
}

fn missing(slot: Slot) -> Error {
    // Unreachable for a compiled plan: every slot read is written by an earlier step.
    Error::runtime("native", format!("value {slot} was not computed"))
}

fn get(slots: &[Option<Value>], slot: Slot) -> Result<&Value> {
    slots.get(slot).and_then(Option::as_ref).ok_or_else(|| missing(slot))
}

fn put(slots: &mut [Option<Value>], slot: Slot, value: Value) -> Result<()> {
    let target = slots.get_mut(slot).ok_or_else(|| missing(slot))?;
    *target = Some(value);
    Ok(())
}

/// The values of `data` as `f32` (converted as `static_cast<float>` does); strings give
/// `None`.
fn as_f32(data: &Data) -> Option<std::borrow::Cow<'_, [f32]>> {
    use std::borrow::Cow;
    Some(match data {
        Data::F32(v) => Cow::Borrowed(v.as_slice()),
        Data::F64(v) => Cow::Owned(v.iter().map(|&x| x as f32).collect()),
        Data::I64(v) => Cow::Owned(v.iter().map(|&x| x as f32).collect()),
        Data::I32(v) => Cow::Owned(v.iter().map(|&x| x as f32).collect()),
        Data::Str(_) => return None,
    })
}

fn wrong_type(step: &str) -> Error {
    // Unreachable for a compiled plan: the compiler checked every step's input type.
    Error::runtime("native", format!("{step}: unexpected input type"))
}

impl Step {
    fn run(&self, slots: &mut [Option<Value>]) -> Result<()> {
        match self {
            Step::Classify { input, label, scores, linear, labels, transform } => {
                let x = get(slots, *input)?;
                let rows = x.rows;
                let xs = as_f32(&x.data).ok_or_else(|| wrong_type("LinearClassifier"))?;
                let mut s = linear.scores(&xs);
                let labels_out = label.map(|_| classify(&s, linear.targets, labels));
                let s = if linear.targets == 1 {
                    // One score per row and two labels: ONNX Runtime adds the second class
                    // as [1 - p, p], with p the logistic of the score for LOGISTIC and the
                    // score itself for every other transform.
                    let p = |v: f32| match transform {
                        PostTransform::Logistic => ops::logistic_exact(v),
                        _ => v,
                    };
                    s.iter().map(|&v| p(v)).flat_map(|p| [1.0 - p, p]).collect()
                } else {
                    ops::post_transform(&mut s, linear.targets, *transform);
                    s
                };
                if let (Some(slot), Some(data)) = (label, labels_out) {
                    put(slots, *slot, Value { rows, data })?;
                }
                if let Some(slot) = scores {
                    put(slots, *slot, Value { rows, data: Data::F32(s) })?;
                }
            }
            Step::Regress { input, output, linear } => {
                let x = get(slots, *input)?;
                let Data::F32(xs) = &x.data else { return Err(wrong_type("LinearRegressor")) };
                let value = Value { rows: x.rows, data: Data::F32(linear.scores(xs)) };
                put(slots, *output, value)?;
            }
            Step::Normalize { input, output, width, norm } => {
                let x = get(slots, *input)?;
                let out = match &x.data {
                    Data::F32(v) => ops::normalize(v, *width, *norm),
                    Data::F64(v) => ops::normalize(v, *width, *norm),
                    _ => return Err(wrong_type("Normalizer")),
                };
                let value = Value { rows: x.rows, data: Data::F32(out) };
                put(slots, *output, value)?;
            }
            Step::Scale { input, output, offset, scale } => {
                let x = get(slots, *input)?;
                let out = match &x.data {
                    Data::F32(v) => ops::scale(v, offset, scale),
                    Data::F64(v) => ops::scale(v, offset, scale),
                    _ => return Err(wrong_type("Scaler")),
                };
                let value = Value { rows: x.rows, data: Data::F32(out) };
                put(slots, *output, value)?;
            }
            Step::Cast { input, output, to } => {
                let x = get(slots, *input)?;
                let data = cast(&x.data, *to).ok_or_else(|| wrong_type("Cast"))?;
                let value = Value { rows: x.rows, data };
                put(slots, *output, value)?;
            }
            Step::Copy { input, output } => {
                let value = get(slots, *input)?.clone();
                put(slots, *output, value)?;
            }
        }
        Ok(())
    }
}

/// Labels from raw scores (before the post-transform), as ONNX Runtime picks them: with
/// one score per row the second label when the score is positive, else the first; with
/// several, the label of the first highest score.
fn classify(scores: &[f32], targets: usize, labels: &ClassLabels) -> Data {
    fn pick<T: Clone>(scores: &[f32], targets: usize, labels: &[T]) -> Vec<T> {
        let fallback = || labels.first().cloned();
        scores
            .chunks_exact(targets.max(1))
            .filter_map(|row| {
                let i = if targets == 1 {
                    usize::from(row.first().is_some_and(|&s| s > 0.0))
                } else {
                    ops::argmax(row)
                };
                labels.get(i).cloned().or_else(fallback)
            })
            .collect()
    }
    match labels {
        ClassLabels::Int64(l) => Data::I64(pick(scores, targets, l)),
        ClassLabels::String(l) => Data::Str(pick(scores, targets, l)),
    }
}

/// `Cast` between the numeric types a plan supports; `None` for a conversion the compiler
/// refuses (floating point to integer, strings).
fn cast(data: &Data, to: Elem) -> Option<Data> {
    Some(match (data, to) {
        (Data::F32(v), Elem::F32) => Data::F32(v.clone()),
        (Data::F32(v), Elem::F64) => Data::F64(v.iter().map(|&x| f64::from(x)).collect()),
        (Data::F64(v), Elem::F32) => Data::F32(v.iter().map(|&x| x as f32).collect()),
        (Data::F64(v), Elem::F64) => Data::F64(v.clone()),
        (Data::I64(v), Elem::F32) => Data::F32(v.iter().map(|&x| x as f32).collect()),
        (Data::I64(v), Elem::F64) => Data::F64(v.iter().map(|&x| x as f64).collect()),
        (Data::I64(v), Elem::I64) => Data::I64(v.clone()),
        // Two's-complement truncation, as static_cast<int32_t> does.
        (Data::I64(v), Elem::I32) => Data::I32(v.iter().map(|&x| x as i32).collect()),
        (Data::I32(v), Elem::F32) => Data::F32(v.iter().map(|&x| x as f32).collect()),
        (Data::I32(v), Elem::F64) => Data::F64(v.iter().map(|&x| f64::from(x)).collect()),
        (Data::I32(v), Elem::I64) => Data::I64(v.iter().map(|&x| i64::from(x)).collect()),
        (Data::I32(v), Elem::I32) => Data::I32(v.clone()),
        _ => return None,
    })
}
