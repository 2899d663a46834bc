//! scikit-learn's `ZipMap` outputs: finding their class labels in the model file and turning
//! the `seq(map(label, float))` they produce into a plain FP32 `[N, num_classes]` tensor.
//!
//! ONNX Runtime describes a `ZipMap` output only as "a sequence of maps", without the class
//! labels, yet the server must advertise the output's shape (`[-1, num_classes]`) before any
//! request arrives. Rather than a probe inference (which needs a valid made-up input), the
//! labels are read from the model file itself: a minimal protobuf walk over the `ModelProto`
//! bytes (`graph` → `node` → `attribute`) that finds each top-level `ai.onnx.ml.ZipMap`
//! node and its `classlabels_int64s` or `classlabels_strings` attribute. The walk is bounds
//! checked and returns an error, never panics, on malformed bytes.
//!
//! Columns come out in the order of the labels attribute, which skl2onnx writes in the
//! order of the estimator's `classes_`: exactly the column order of the `output_probability`
//! tensor the same model has when exported with `options={id(model): {"zipmap": False}}`.

use std::collections::HashMap;

/// Class labels of one `ZipMap` node, in column order.
#[derive(Debug, Clone, PartialEq)]
pub enum Labels {
    /// `classlabels_int64s`.
    Int64(Vec<i64>),
    /// `classlabels_strings`.
    String(Vec<String>),
}

impl Labels {
    /// Number of classes (columns).
    pub fn len(&self) -> usize {
        match self {
            Labels::Int64(v) => v.len(),
            Labels::String(v) => v.len(),
        }
    }

    /// True when there are no labels.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Maps a label to its column, built once per model.
#[derive(Debug, Clone)]
pub enum Columns {
    /// Integer labels.
    Int64(HashMap<i64, usize>),
    /// String labels.
    String(HashMap<String, usize>),
}

impl Columns {
    /// The column index of every label; `None` when a label repeats.
    pub fn new(labels: &Labels) -> Option<Columns> {
        fn index<K: std::hash::Hash + Eq + Clone>(v: &[K]) -> Option<HashMap<K, usize>> {
            let map: HashMap<K, usize> =
                v.iter().cloned().enumerate().map(|(i, k)| (k, i)).collect();
            (map.len() == v.len()).then_some(map)
        }
        match labels {
            Labels::Int64(v) => index(v).map(Columns::Int64),
            Labels::String(v) => index(v).map(Columns::String),
        }
    }

    /// Number of columns.
    pub fn len(&self) -> usize {
        match self {
            Columns::Int64(m) => m.len(),
            Columns::String(m) => m.len(),
        }
    }

    /// True when there are no columns.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Writes one map's `(label, probability)` pairs into `row` (of length `columns.len()`).
pub fn fill_row<K: std::fmt::Debug>(
    row: &mut [f32],
    pairs: Vec<(K, f32)>,
    column: impl Fn(&K) -> Option<usize>,
) -> Result<(), String> {
    for (key, value) in pairs {
        let i = column(&key)
            .ok_or_else(|| format!("zipmap produced the unknown class label {key:?}"))?;
        let slot = row.get_mut(i).ok_or_else(|| format!("zipmap column {i} is out of range"))?;
        *slot = value;
    }
    Ok(())
}

/// The labels of every top-level `ZipMap` node in the serialized `ModelProto`, keyed by the
/// node's output name.
pub fn find_zipmaps(model: &[u8]) -> Result<HashMap<String, Labels>, String> {
    let mut found = HashMap::new();
    for field in Fields(model) {
        let (number, value) = field?;
        // ModelProto.graph = 7
        let (7, Value::Bytes(graph)) = (number, value) else { continue };
        for field in Fields(graph) {
            let (number, value) = field?;
            // GraphProto.node = 1
            let (1, Value::Bytes(node)) = (number, value) else { continue };
            if let Some((output, labels)) = zipmap_node(node)? {
                found.insert(output, labels);
            }
        }
    }
    Ok(found)
}

/// The first output name and the labels of `node` when it is a `ZipMap`.
fn zipmap_node(node: &[u8]) -> Result<Option<(String, Labels)>, String> {
    let mut output = None;
    let mut op_type = None;
    let mut domain = "";
    let mut labels = None;
    for field in Fields(node) {
        match field? {
            // NodeProto.output = 2 (the first one is the map sequence)
            (2, Value::Bytes(b)) if output.is_none() => output = Some(utf8(b)?),
            // NodeProto.op_type = 4
            (4, Value::Bytes(b)) => op_type = Some(utf8(b)?),
            // NodeProto.domain = 7
            (7, Value::Bytes(b)) => domain = utf8(b)?,
            // NodeProto.attribute = 5
            (5, Value::Bytes(b)) => {
                if let Some(l) = labels_attribute(b)? {
                    labels = Some(l);
                }
            }
            _ => {}
        }
    }
    if op_type != Some("ZipMap") || !(domain == "ai.onnx.ml" || domain.is_empty()) {
        return Ok(None);
    }
    match (output, labels) {
        (Some(output), Some(labels)) => Ok(Some((output.to_owned(), labels))),
        (Some(output), None) => {
            Err(format!("zipmap node for output \"{output}\" has no class labels"))
        }
        (None, _) => Err("zipmap node has no output".to_owned()),
    }
}

/// `classlabels_int64s` / `classlabels_strings` from an `AttributeProto`, else `None`.
fn labels_attribute(attribute: &[u8]) -> Result<Option<Labels>, String> {
    let mut name = "";
    let mut ints = Vec::new();
    let mut strings = Vec::new();
    for field in Fields(attribute) {
        match field? {
            // AttributeProto.name = 1
            (1, Value::Bytes(b)) => name = utf8(b)?,
            // AttributeProto.ints = 8, unpacked or packed
            (8, Value::Varint(v)) => ints.push(v as i64),
            (8, Value::Bytes(mut packed)) => {
                while !packed.is_empty() {
                    ints.push(varint(&mut packed)? as i64);
                }
            }
            // AttributeProto.strings = 9
            (9, Value::Bytes(b)) => strings.push(utf8(b)?.to_owned()),
            _ => {}
        }
    }
    Ok(match name {
        "classlabels_int64s" => Some(Labels::Int64(ints)),
        "classlabels_strings" => Some(Labels::String(strings)),
        _ => None,
    })
}

fn utf8(b: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(b).map_err(|_| "model file has a non-utf-8 string".to_owned())
}

/// One protobuf field value; fixed-size values are kept only to be skipped.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Value<'a> {
    Varint(u64),
    Fixed,
    Bytes(&'a [u8]),
}

/// Iterator over the `(field number, value)` pairs of a protobuf message.
struct Fields<'a>(&'a [u8]);

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u64, Value<'a>), String>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.0.is_empty() {
            return None;
        }
        let item = next_field(&mut self.0);
        if item.is_err() {
            self.0 = &[]; // stop after the first error
        }
        Some(item)
    }
}

fn next_field<'a>(buf: &mut &'a [u8]) -> Result<(u64, Value<'a>), String> {
    let key = varint(buf)?;
    let value = match key & 7 {
        0 => Value::Varint(varint(buf)?),
        1 => take(buf, 8).map(|_| Value::Fixed)?,
        2 => {
            let len = usize::try_from(varint(buf)?).map_err(|_| truncated())?;
            Value::Bytes(take(buf, len)?)
        }
        5 => take(buf, 4).map(|_| Value::Fixed)?,
        other => {
            return Err(format!("model file is not a valid onnx protobuf (wire type {other})"));
        }
    };
    Ok((key >> 3, value))
}

fn take<'a>(buf: &mut &'a [u8], n: usize) -> Result<&'a [u8], String> {
    if buf.len() < n {
        return Err(truncated());
    }
    let (head, tail) = buf.split_at(n);
    *buf = tail;
    Ok(head)
}

fn varint(buf: &mut &[u8]) -> Result<u64, String> {
    let mut value = 0u64;
    for i in 0..10 {
        let (&byte, rest) = buf.split_first().ok_or_else(truncated)?;
        *buf = rest;
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err("model file is not a valid onnx protobuf (varint too long)".to_owned())
}

fn truncated() -> String {
    "model file is truncated or not an onnx protobuf".to_owned()
}

#[cfg(test)]
pub(crate) mod encode {
    //! A tiny protobuf writer, enough to build ONNX models in tests.

    /// Appends a varint.
    pub fn varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    /// A length-delimited field (strings, bytes, sub-messages).
    pub fn bytes(out: &mut Vec<u8>, field: u64, b: &[u8]) {
        varint(out, field << 3 | 2);
        varint(out, b.len() as u64);
        out.extend_from_slice(b);
    }

    /// A varint field.
    pub fn int(out: &mut Vec<u8>, field: u64, v: i64) {
        varint(out, field << 3);
        varint(out, v as u64);
    }

    /// A message built by `f`.
    pub fn message(f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        let mut out = Vec::new();
        f(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::encode::{self, bytes, int, message};
    use super::*;

    fn zipmap(output: &str, attribute: Vec<u8>) -> Vec<u8> {
        message(|n| {
            bytes(n, 1, b"probabilities");
            bytes(n, 2, output.as_bytes());
            bytes(n, 4, b"ZipMap");
            bytes(n, 7, b"ai.onnx.ml");
            bytes(n, 5, &attribute);
        })
    }

    fn model(nodes: &[Vec<u8>]) -> Vec<u8> {
        let graph = message(|g| {
            for node in nodes {
                bytes(g, 1, node);
            }
            bytes(g, 2, b"graph-name");
        });
        message(|m| {
            int(m, 1, 8); // ir_version
            bytes(m, 7, &graph);
        })
    }

    #[test]
    fn finds_int_and_string_labels_packed_or_not() {
        let unpacked = message(|a| {
            bytes(a, 1, b"classlabels_int64s");
            for v in [0, 1, -2] {
                int(a, 8, v);
            }
        });
        let packed = message(|a| {
            bytes(a, 1, b"classlabels_int64s");
            let mut p = Vec::new();
            for v in [3u64, 300] {
                encode::varint(&mut p, v);
            }
            bytes(a, 8, &p);
        });
        let strings = message(|a| {
            bytes(a, 1, b"classlabels_strings");
            bytes(a, 9, b"setosa");
            bytes(a, 9, b"versicolor");
        });
        let other = message(|n| bytes(n, 4, b"Cast"));
        let found = find_zipmaps(&model(&[
            other,
            zipmap("a", unpacked),
            zipmap("b", packed),
            zipmap("c", strings),
        ]))
        .unwrap();
        assert_eq!(found.len(), 3);
        assert_eq!(found["a"], Labels::Int64(vec![0, 1, -2]));
        assert_eq!(found["b"], Labels::Int64(vec![3, 300]));
        assert_eq!(found["c"], Labels::String(vec!["setosa".into(), "versicolor".into()]));
    }

    #[test]
    fn malformed_bytes_are_errors() {
        let good = model(&[zipmap("a", message(|a| bytes(a, 1, b"classlabels_int64s")))]);
        for cut in 1..good.len() {
            // Every truncation either parses (when cut at a field boundary) or errors.
            let _ = find_zipmaps(&good[..cut]);
        }
        assert!(find_zipmaps(&good[..good.len() - 1]).unwrap_err().contains("truncated"));
        assert!(find_zipmaps(&[0x0b]).unwrap_err().contains("wire type 3"));
        assert!(
            find_zipmaps(&[0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01])
                .unwrap_err()
                .contains("varint too long")
        );
        let no_labels = model(&[zipmap("p", message(|a| bytes(a, 1, b"other")))]);
        assert_eq!(
            find_zipmaps(&no_labels).unwrap_err(),
            "zipmap node for output \"p\" has no class labels"
        );
    }

    #[test]
    fn rows_follow_label_order() {
        let columns = Columns::new(&Labels::Int64(vec![10, 2, 7])).unwrap();
        let Columns::Int64(map) = &columns else { panic!("int labels give int columns") };
        let mut row = [0.0; 3];
        fill_row(&mut row, vec![(2, 0.5), (7, 0.25), (10, 0.25)], |k| map.get(k).copied()).unwrap();
        assert_eq!(row, [0.25, 0.5, 0.25]);
        let err = fill_row(&mut row, vec![(3, 1.0)], |k| map.get(k).copied()).unwrap_err();
        assert_eq!(err, "zipmap produced the unknown class label 3");
        assert!(Columns::new(&Labels::Int64(vec![1, 1])).is_none());
    }
}
