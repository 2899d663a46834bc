//! Compiling a serialized ONNX model into a [`Plan`], or saying why it cannot be.
//!
//! Every value gets a slot and a static [`Kind`] (element type and `[batch]` or
//! `[batch, width]` shape); each node is checked against what ONNX Runtime's kernel does
//! with it, and refused when that is not exactly reproduced here. The error strings are
//! for the log line that says why a model runs on ONNX Runtime.

use std::collections::HashMap;

use bytes::Bytes;
use prost::Message;

use super::ops::{Linear, Norm, PostTransform};
use super::proto::{
    AttributeProto, GraphProto, ModelProto, NodeProto, TypeProto, attribute_type, data_type,
};
use super::{ClassLabels, Elem, Plan, PlanInput, PlanOutput, Slot, Step};

/// Highest `ai.onnx` opset accepted: the operators used here (`Cast`, `Identity`) behave the
/// same for numeric types up to it.
const MAX_ONNX_OPSET: i64 = 23;
/// Highest `ai.onnx.ml` opset accepted: all its operators used here are still version 1.
const MAX_ML_OPSET: i64 = 5;

/// What is known about a value before any request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Kind {
    elem: Elem,
    /// `None`: `[batch]`; `Some(w)`: `[batch, w]`.
    width: Option<usize>,
    /// Produced by `ZipMap`: may only be a graph output.
    zipmap: bool,
    /// Within 1e-7 of ONNX Runtime's values rather than equal to the last bit (see
    /// [`ops::logistic`](super::ops::logistic)): may only reach graph outputs, through
    /// operators that keep values as they are.
    approximate: bool,
}

impl Kind {
    fn matrix(elem: Elem, width: usize) -> Kind {
        Kind { elem, width: Some(width), zipmap: false, approximate: false }
    }
}

type Refusal = String;

/// Compiles the serialized `ModelProto` in `model`, or returns why the graph is not one the
/// native evaluator runs exactly as ONNX Runtime does.
pub fn compile(model: &[u8]) -> Result<Plan, Refusal> {
    let model = ModelProto::decode(model).map_err(|e| format!("not a readable onnx model: {e}"))?;
    if !model.functions.is_empty() {
        return Err("the model defines local functions".into());
    }
    check_opsets(&model)?;
    let graph = model.graph.as_ref().ok_or("the model has no graph")?;
    Compiler::default().graph(graph)
}

fn check_opsets(model: &ModelProto) -> Result<(), Refusal> {
    for opset in &model.opset_import {
        let version = opset.version.unwrap_or(0);
        let (domain, max) = match opset.domain.as_deref().unwrap_or("") {
            "" | "ai.onnx" => ("ai.onnx", MAX_ONNX_OPSET),
            "ai.onnx.ml" => ("ai.onnx.ml", MAX_ML_OPSET),
            _ => continue, // unused unless a node names it, and such nodes are refused
        };
        if !(1..=max).contains(&version) {
            return Err(format!("opset {domain} {version} is not supported (1 to {max})"));
        }
    }
    Ok(())
}

#[derive(Default)]
struct Compiler {
    values: HashMap<String, (Slot, Kind)>,
    inputs: Vec<PlanInput>,
    steps: Vec<Step>,
}

impl Compiler {
    fn graph(mut self, graph: &GraphProto) -> Result<Plan, Refusal> {
        if !graph.initializer.is_empty() || !graph.sparse_initializer.is_empty() {
            return Err("the graph has initializers".into());
        }
        for input in &graph.input {
            let name = input.name.as_deref().unwrap_or("");
            let (elem, width, batch) = graph_input(name, input.r#type.as_ref())?;
            let slot = self.define(name, Kind::matrix(elem, width))?;
            self.inputs.push(PlanInput { name: name.to_owned(), elem, width, batch, slot });
        }
        for node in &graph.node {
            self.node(node)?;
        }
        let mut outputs = Vec::with_capacity(graph.output.len());
        for output in &graph.output {
            let name = output.name.as_deref().unwrap_or("");
            let &(slot, kind) = self
                .values
                .get(name)
                .ok_or_else(|| format!("graph output \"{name}\" is not computed by the graph"))?;
            outputs.push(PlanOutput {
                name: name.to_owned(),
                elem: kind.elem,
                width: kind.width,
                slot,
            });
        }
        if outputs.is_empty() {
            return Err("the graph has no outputs".into());
        }
        Ok(Plan { inputs: self.inputs, steps: self.steps, outputs, slots: self.values.len() })
    }

    /// A new value `name`; names are assigned once in a valid graph.
    fn define(&mut self, name: &str, kind: Kind) -> Result<Slot, Refusal> {
        if name.is_empty() {
            return Err("a value has an empty name".into());
        }
        if self.values.contains_key(name) {
            return Err(format!("value \"{name}\" is defined twice"));
        }
        let slot = self.values.len();
        self.values.insert(name.to_owned(), (slot, kind));
        Ok(slot)
    }

    /// An optional node output: `None` when absent or named "".
    fn define_optional(
        &mut self,
        name: Option<&String>,
        kind: Kind,
    ) -> Result<Option<Slot>, Refusal> {
        match name.map(String::as_str) {
            None | Some("") => Ok(None),
            Some(name) => self.define(name, kind).map(Some),
        }
    }

    /// The single input of `node`, which must already be computed and not be a ZipMap's.
    fn single_input(&self, node: &NodeProto, op: &str) -> Result<(Slot, Kind), Refusal> {
        let [name] = node.input.as_slice() else {
            return Err(format!("{op} with {} inputs", node.input.len()));
        };
        let &(slot, kind) = self
            .values
            .get(name)
            .ok_or_else(|| format!("{op} reads \"{name}\", which is not computed before it"))?;
        if kind.zipmap {
            return Err(format!("{op} reads the ZipMap output \"{name}\""));
        }
        let keeps_values = matches!(op, "Identity" | "ZipMap" | "Cast");
        if kind.approximate && !keeps_values {
            return Err(format!("{op} reads the LOGISTIC scores \"{name}\" of several classes"));
        }
        Ok((slot, kind))
    }

    /// The single output name of `node`.
    fn single_output<'n>(node: &'n NodeProto, op: &str) -> Result<&'n str, Refusal> {
        match node.output.as_slice() {
            [name] => Ok(name),
            other => Err(format!("{op} with {} outputs", other.len())),
        }
    }

    fn node(&mut self, node: &NodeProto) -> Result<(), Refusal> {
        let op = node.op_type.as_deref().unwrap_or("");
        let domain = node.domain.as_deref().unwrap_or("");
        if node.overload.as_deref().is_some_and(|o| !o.is_empty()) {
            return Err(format!("{op} names a function overload"));
        }
        let mut attrs = Attrs::new(node, op)?;
        match (domain, op) {
            ("" | "ai.onnx", "Identity") => {
                let (input, kind) = self.single_input(node, op)?;
                let output = self.define(Self::single_output(node, op)?, kind)?;
                self.steps.push(Step::Copy { input, output });
            }
            ("" | "ai.onnx", "Cast") => self.cast(node, &mut attrs)?,
            ("ai.onnx.ml", "LinearClassifier") => self.linear_classifier(node, &mut attrs)?,
            ("ai.onnx.ml", "LinearRegressor") => self.linear_regressor(node, &mut attrs)?,
            ("ai.onnx.ml", "Normalizer") => self.normalizer(node, &mut attrs)?,
            ("ai.onnx.ml", "Scaler") => self.scaler(node, &mut attrs)?,
            ("ai.onnx.ml", "ZipMap") => self.zipmap(node, &mut attrs)?,
            _ => {
                let domain = if domain.is_empty() { "ai.onnx" } else { domain };
                return Err(format!("operator {domain}.{op} is not supported"));
            }
        }
        attrs.finish()
    }

    fn cast(&mut self, node: &NodeProto, attrs: &mut Attrs<'_>) -> Result<(), Refusal> {
        let (input, kind) = self.single_input(node, "Cast")?;
        let to = attrs.int("to")?.ok_or("Cast without \"to\"")?;
        // `saturate` only matters for float8 targets, which are refused below.
        let _ = attrs.int("saturate")?;
        let to =
            i32::try_from(to).ok().and_then(elem_of).ok_or_else(|| format!("Cast to type {to}"))?;
        let supported = match (kind.elem, to) {
            (Elem::Str, _) | (_, Elem::Str) => false,
            // Out-of-range floating-point values have no defined integer result in C++;
            // ONNX Runtime gives whatever the CPU does.
            (Elem::F32 | Elem::F64, Elem::I64 | Elem::I32) => false,
            _ => true,
        };
        if !supported {
            return Err(format!("Cast from {:?} to {:?}", kind.elem, to));
        }
        let output = self.define(Self::single_output(node, "Cast")?, Kind { elem: to, ..kind })?;
        self.steps.push(Step::Cast { input, output, to });
        Ok(())
    }

    fn linear_classifier(
        &mut self,
        node: &NodeProto,
        attrs: &mut Attrs<'_>,
    ) -> Result<(), Refusal> {
        const OP: &str = "LinearClassifier";
        let (input, kind) = self.single_input(node, OP)?;
        let coefficients =
            attrs.floats("coefficients")?.ok_or("LinearClassifier without coefficients")?;
        let intercepts = attrs.floats("intercepts")?.unwrap_or_default();
        let ints = attrs.ints("classlabels_ints")?.unwrap_or_default();
        let strings = attrs.strings("classlabels_strings")?.unwrap_or_default();
        // Read by ONNX Runtime but not used in its computation.
        let _ = attrs.int("multi_class")?;
        let transform = attrs.string("post_transform")?.unwrap_or(b"NONE");
        let transform = PostTransform::parse(transform)
            .ok_or_else(|| format!("{OP} post_transform {}", String::from_utf8_lossy(transform)))?;
        let targets = intercepts.len();
        let linear = linear(OP, kind, coefficients, targets, Some(intercepts))?;
        let labels = match (ints.is_empty(), strings.is_empty()) {
            (false, true) => ClassLabels::Int64(ints.to_vec()),
            (true, false) => ClassLabels::String(
                strings
                    .iter()
                    .map(|s| std::str::from_utf8(s).map(|_| Bytes::copy_from_slice(s)))
                    .collect::<Result<_, _>>()
                    .map_err(|_| format!("{OP} has a class label that is not utf-8"))?,
            ),
            _ => {
                return Err(format!(
                    "{OP} needs exactly one of classlabels_ints and classlabels_strings"
                ));
            }
        };
        let count = match &labels {
            ClassLabels::Int64(l) => l.len(),
            ClassLabels::String(l) => l.len(),
        };
        // One score row is a binary classifier with two labels; otherwise one label per row.
        let (expected, classes) = if targets == 1 { (2, 2) } else { (targets, targets) };
        if count != expected {
            return Err(format!("{OP} with {targets} coefficient rows and {count} class labels"));
        }
        let label_elem = match labels {
            ClassLabels::Int64(_) => Elem::I64,
            ClassLabels::String(_) => Elem::Str,
        };
        if node.output.is_empty() || node.output.len() > 2 {
            return Err(format!("{OP} with {} outputs", node.output.len()));
        }
        let label_kind = Kind { elem: label_elem, width: None, zipmap: false, approximate: false };
        let label = self.define_optional(node.output.first(), label_kind)?;
        let scores_kind = Kind {
            approximate: targets > 1 && transform == PostTransform::Logistic,
            ..Kind::matrix(Elem::F32, classes)
        };
        let scores = self.define_optional(node.output.get(1), scores_kind)?;
        self.steps.push(Step::Classify { input, label, scores, linear, labels, transform });
        Ok(())
    }

    fn linear_regressor(&mut self, node: &NodeProto, attrs: &mut Attrs<'_>) -> Result<(), Refusal> {
        const OP: &str = "LinearRegressor";
        let (input, kind) = self.single_input(node, OP)?;
        if kind.elem != Elem::F32 {
            return Err(format!("{OP} on {:?} input", kind.elem));
        }
        let coefficients =
            attrs.floats("coefficients")?.ok_or("LinearRegressor without coefficients")?;
        let intercepts = attrs.floats("intercepts")?;
        let targets = attrs.int("targets")?.ok_or("LinearRegressor without targets")?;
        let targets = usize::try_from(targets)
            .ok()
            .filter(|&t| t > 0)
            .ok_or("LinearRegressor targets < 1")?;
        match attrs.string("post_transform")? {
            None | Some(b"NONE") => {}
            Some(other) => {
                return Err(format!("{OP} post_transform {}", String::from_utf8_lossy(other)));
            }
        }
        // ONNX Runtime uses the intercepts only when there is one per target.
        let intercepts = intercepts.filter(|i| i.len() == targets);
        let linear = linear(OP, kind, coefficients, targets, intercepts)?;
        let output =
            self.define(Self::single_output(node, OP)?, Kind::matrix(Elem::F32, targets))?;
        self.steps.push(Step::Regress { input, output, linear });
        Ok(())
    }

    fn normalizer(&mut self, node: &NodeProto, attrs: &mut Attrs<'_>) -> Result<(), Refusal> {
        const OP: &str = "Normalizer";
        let (input, kind) = self.single_input(node, OP)?;
        let width = real_matrix(OP, kind)?;
        let norm = match attrs.string("norm")?.unwrap_or(b"MAX") {
            b"MAX" => Norm::Max,
            b"L1" => Norm::L1,
            b"L2" => Norm::L2,
            other => return Err(format!("{OP} norm {}", String::from_utf8_lossy(other))),
        };
        let output = self.define(Self::single_output(node, OP)?, Kind::matrix(Elem::F32, width))?;
        self.steps.push(Step::Normalize { input, output, width, norm });
        Ok(())
    }

    fn scaler(&mut self, node: &NodeProto, attrs: &mut Attrs<'_>) -> Result<(), Refusal> {
        const OP: &str = "Scaler";
        let (input, kind) = self.single_input(node, OP)?;
        let width = real_matrix(OP, kind)?;
        let scale = attrs.floats("scale")?.unwrap_or_default();
        let offset = attrs.floats("offset")?.unwrap_or_default();
        if scale.is_empty()
            || scale.len() != offset.len()
            || !(scale.len() == width || scale.len() == 1)
        {
            return Err(format!(
                "{OP} with {} scales and {} offsets on {width} columns",
                scale.len(),
                offset.len()
            ));
        }
        let output = self.define(Self::single_output(node, OP)?, Kind::matrix(Elem::F32, width))?;
        self.steps.push(Step::Scale {
            input,
            output,
            offset: offset.to_vec(),
            scale: scale.to_vec(),
        });
        Ok(())
    }

    fn zipmap(&mut self, node: &NodeProto, attrs: &mut Attrs<'_>) -> Result<(), Refusal> {
        const OP: &str = "ZipMap";
        let (input, kind) = self.single_input(node, OP)?;
        let ints = attrs.ints("classlabels_int64s")?.unwrap_or_default().len();
        let strings = attrs.strings("classlabels_strings")?.unwrap_or_default().len();
        let labels = match (ints, strings) {
            (n, 0) | (0, n) if n > 0 => n,
            _ => {
                return Err(format!(
                    "{OP} needs exactly one of classlabels_int64s and classlabels_strings"
                ));
            }
        };
        if kind.elem != Elem::F32 || kind.width != Some(labels) {
            return Err(format!(
                "{OP} with {labels} labels on a {:?} [batch, {:?}] input",
                kind.elem, kind.width
            ));
        }
        // The server serves a ZipMap output as the FP32 [batch, classes] tensor it was made from.
        let output = self.define(Self::single_output(node, OP)?, Kind { zipmap: true, ..kind })?;
        self.steps.push(Step::Copy { input, output });
        Ok(())
    }
}

/// A graph input's element type, width and fixed batch size, if it is a supported one:
/// an FP32 or FP64 tensor of shape `[batch, width]` with a fixed width.
fn graph_input(
    name: &str,
    ty: Option<&TypeProto>,
) -> Result<(Elem, usize, Option<usize>), Refusal> {
    let tensor = ty
        .and_then(|t| t.tensor_type.as_ref())
        .ok_or_else(|| format!("input \"{name}\" is not a tensor"))?;
    let elem = match tensor.elem_type {
        Some(data_type::FLOAT) => Elem::F32,
        Some(data_type::DOUBLE) => Elem::F64,
        other => return Err(format!("input \"{name}\" has element type {}", other.unwrap_or(0))),
    };
    let dims = tensor.shape.as_ref().map(|s| s.dim.as_slice()).unwrap_or_default();
    let fixed = |d: &super::proto::Dimension| d.dim_value.and_then(|v| usize::try_from(v).ok());
    match dims {
        [batch, width] => {
            let width = fixed(width).filter(|&w| w > 0);
            let width =
                width.ok_or_else(|| format!("input \"{name}\" has no fixed feature dimension"))?;
            Ok((elem, width, fixed(batch)))
        }
        _ => Err(format!("input \"{name}\" has rank {}, not [batch, features]", dims.len())),
    }
}

fn elem_of(data_type: i32) -> Option<Elem> {
    Some(match data_type {
        data_type::FLOAT => Elem::F32,
        data_type::DOUBLE => Elem::F64,
        data_type::INT64 => Elem::I64,
        data_type::INT32 => Elem::I32,
        data_type::STRING => Elem::Str,
        _ => return None,
    })
}

/// The width of a floating-point `[batch, width]` value.
fn real_matrix(op: &str, kind: Kind) -> Result<usize, Refusal> {
    match (kind.elem, kind.width) {
        (Elem::F32 | Elem::F64, Some(w)) => Ok(w),
        _ => Err(format!("{op} on a {:?} value of width {:?}", kind.elem, kind.width)),
    }
}

/// The linear map of a classifier or regressor reading `input`.
fn linear(
    op: &str,
    input: Kind,
    coefficients: &[f32],
    targets: usize,
    intercepts: Option<&[f32]>,
) -> Result<Linear, Refusal> {
    let Some(features) = input.width.filter(|_| input.elem != Elem::Str) else {
        return Err(format!("{op} on a {:?} value of width {:?}", input.elem, input.width));
    };
    if targets == 0 || coefficients.len() != targets * features {
        return Err(format!(
            "{op} with {} coefficients for {targets} targets and {features} features",
            coefficients.len()
        ));
    }
    Ok(Linear {
        coefficients: coefficients.to_vec(),
        intercepts: intercepts.map(<[f32]>::to_vec),
        features,
        targets,
    })
}

/// A node's attributes, each to be read once with its expected type; any left unread is
/// an attribute the evaluator does not know, and refuses.
struct Attrs<'a> {
    op: &'a str,
    unread: Vec<&'a AttributeProto>,
}

impl<'a> Attrs<'a> {
    fn new(node: &'a NodeProto, op: &'a str) -> Result<Attrs<'a>, Refusal> {
        let mut unread: Vec<&AttributeProto> = Vec::with_capacity(node.attribute.len());
        for a in &node.attribute {
            let name = a.name.as_deref().unwrap_or("");
            if unread.iter().any(|b| b.name.as_deref() == Some(name)) {
                return Err(format!("{op} has attribute \"{name}\" twice"));
            }
            if a.ref_attr_name.as_deref().is_some_and(|r| !r.is_empty())
                || a.g.is_some()
                || !a.graphs.is_empty()
            {
                return Err(format!("{op} attribute \"{name}\" is a reference or a graph"));
            }
            unread.push(a);
        }
        Ok(Attrs { op, unread })
    }

    /// Takes attribute `name`, checking it has type `ty`.
    fn take(&mut self, name: &str, ty: i32) -> Result<Option<&'a AttributeProto>, Refusal> {
        let Some(i) = self.unread.iter().position(|a| a.name.as_deref() == Some(name)) else {
            return Ok(None);
        };
        let a = self.unread.swap_remove(i);
        if a.r#type != Some(ty) {
            return Err(format!(
                "{} attribute \"{name}\" has type {:?}, expected {ty}",
                self.op, a.r#type
            ));
        }
        Ok(Some(a))
    }

    fn floats(&mut self, name: &str) -> Result<Option<&'a [f32]>, Refusal> {
        Ok(self.take(name, attribute_type::FLOATS)?.map(|a| a.floats.as_slice()))
    }

    fn ints(&mut self, name: &str) -> Result<Option<&'a [i64]>, Refusal> {
        Ok(self.take(name, attribute_type::INTS)?.map(|a| a.ints.as_slice()))
    }

    fn strings(&mut self, name: &str) -> Result<Option<&'a [Vec<u8>]>, Refusal> {
        Ok(self.take(name, attribute_type::STRINGS)?.map(|a| a.strings.as_slice()))
    }

    fn int(&mut self, name: &str) -> Result<Option<i64>, Refusal> {
        Ok(self.take(name, attribute_type::INT)?.map(|a| a.i.unwrap_or(0)))
    }

    fn string(&mut self, name: &str) -> Result<Option<&'a [u8]>, Refusal> {
        Ok(self.take(name, attribute_type::STRING)?.map(|a| a.s.as_deref().unwrap_or_default()))
    }

    /// Refuses attributes nobody read.
    fn finish(self) -> Result<(), Refusal> {
        match self.unread.first() {
            None => Ok(()),
            Some(a) => Err(format!(
                "{} attribute \"{}\" is not supported",
                self.op,
                a.name.as_deref().unwrap_or("")
            )),
        }
    }
}
