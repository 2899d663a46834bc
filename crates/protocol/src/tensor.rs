//! The one typed tensor representation shared by every codec (JSON, binary, gRPC) and runtime.
//!
//! A [`Tensor`] owns its elements in a typed vector ([`TensorData`]); codecs decode straight
//! into that vector and runtimes read it in place. [`Tensor::validate`] is the single check
//! that shape × element count and datatype agree, run by every decoder before a model sees
//! the tensor.

use bytes::Bytes;
use half::{bf16, f16};

use crate::datatype::DataType;
use crate::error::{ProtocolError, Result};
use crate::parameters::Parameters;

/// Elements of a tensor, one variant per datatype, in row-major order.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    Bool(Vec<bool>),
    Uint8(Vec<u8>),
    Uint16(Vec<u16>),
    Uint32(Vec<u32>),
    Uint64(Vec<u64>),
    Int8(Vec<i8>),
    Int16(Vec<i16>),
    Int32(Vec<i32>),
    Int64(Vec<i64>),
    Fp16(Vec<f16>),
    Fp32(Vec<f32>),
    Fp64(Vec<f64>),
    Bf16(Vec<bf16>),
    Bytes(Vec<Bytes>),
}

/// Applies `$body` to the inner vector of any [`TensorData`] variant.
#[macro_export]
macro_rules! for_each_variant {
    ($data:expr, $v:ident => $body:expr) => {
        match $data {
            $crate::TensorData::Bool($v) => $body,
            $crate::TensorData::Uint8($v) => $body,
            $crate::TensorData::Uint16($v) => $body,
            $crate::TensorData::Uint32($v) => $body,
            $crate::TensorData::Uint64($v) => $body,
            $crate::TensorData::Int8($v) => $body,
            $crate::TensorData::Int16($v) => $body,
            $crate::TensorData::Int32($v) => $body,
            $crate::TensorData::Int64($v) => $body,
            $crate::TensorData::Fp16($v) => $body,
            $crate::TensorData::Fp32($v) => $body,
            $crate::TensorData::Fp64($v) => $body,
            $crate::TensorData::Bf16($v) => $body,
            $crate::TensorData::Bytes($v) => $body,
        }
    };
}

impl TensorData {
    /// The datatype this data holds.
    pub fn datatype(&self) -> DataType {
        match self {
            TensorData::Bool(_) => DataType::Bool,
            TensorData::Uint8(_) => DataType::Uint8,
            TensorData::Uint16(_) => DataType::Uint16,
            TensorData::Uint32(_) => DataType::Uint32,
            TensorData::Uint64(_) => DataType::Uint64,
            TensorData::Int8(_) => DataType::Int8,
            TensorData::Int16(_) => DataType::Int16,
            TensorData::Int32(_) => DataType::Int32,
            TensorData::Int64(_) => DataType::Int64,
            TensorData::Fp16(_) => DataType::Fp16,
            TensorData::Fp32(_) => DataType::Fp32,
            TensorData::Fp64(_) => DataType::Fp64,
            TensorData::Bf16(_) => DataType::Bf16,
            TensorData::Bytes(_) => DataType::Bytes,
        }
    }

    /// An empty vector of the given datatype with room for `capacity` elements.
    pub fn with_capacity(datatype: DataType, capacity: usize) -> TensorData {
        match datatype {
            DataType::Bool => TensorData::Bool(Vec::with_capacity(capacity)),
            DataType::Uint8 => TensorData::Uint8(Vec::with_capacity(capacity)),
            DataType::Uint16 => TensorData::Uint16(Vec::with_capacity(capacity)),
            DataType::Uint32 => TensorData::Uint32(Vec::with_capacity(capacity)),
            DataType::Uint64 => TensorData::Uint64(Vec::with_capacity(capacity)),
            DataType::Int8 => TensorData::Int8(Vec::with_capacity(capacity)),
            DataType::Int16 => TensorData::Int16(Vec::with_capacity(capacity)),
            DataType::Int32 => TensorData::Int32(Vec::with_capacity(capacity)),
            DataType::Int64 => TensorData::Int64(Vec::with_capacity(capacity)),
            DataType::Fp16 => TensorData::Fp16(Vec::with_capacity(capacity)),
            DataType::Fp32 => TensorData::Fp32(Vec::with_capacity(capacity)),
            DataType::Fp64 => TensorData::Fp64(Vec::with_capacity(capacity)),
            DataType::Bf16 => TensorData::Bf16(Vec::with_capacity(capacity)),
            DataType::Bytes => TensorData::Bytes(Vec::with_capacity(capacity)),
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        for_each_variant!(self, v => v.len())
    }

    /// True when there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends all elements of `other`, which must have the same datatype.
    pub fn extend_from(&mut self, other: &TensorData) -> Result<()> {
        macro_rules! ext {
            ($($var:ident),*) => {
                match (self, other) {
                    $((TensorData::$var(a), TensorData::$var(b)) => { a.extend_from_slice(b); Ok(()) })*
                    (a, b) => Err(ProtocolError::invalid(format!(
                        "cannot concatenate {} with {}", a.datatype(), b.datatype()
                    ))),
                }
            };
        }
        ext!(
            Bool, Uint8, Uint16, Uint32, Uint64, Int8, Int16, Int32, Int64, Fp16, Fp32, Fp64, Bf16,
            Bytes
        )
    }

    /// A copy of elements `range` (in element units).
    pub fn slice(&self, range: std::ops::Range<usize>) -> TensorData {
        macro_rules! sl {
            ($($var:ident),*) => {
                match self { $(TensorData::$var(v) => TensorData::$var(v[range].to_vec()),)* }
            };
        }
        sl!(
            Bool, Uint8, Uint16, Uint32, Uint64, Int8, Int16, Int32, Int64, Fp16, Fp32, Fp64, Bf16,
            Bytes
        )
    }

    /// Size in bytes of the raw little-endian layout (BYTES elements include their 4-byte
    /// length prefixes).
    pub fn raw_byte_len(&self) -> usize {
        match self {
            TensorData::Bytes(v) => v.iter().map(|b| 4 + b.len()).sum(),
            other => other.len() * other.datatype().element_size().unwrap_or(0),
        }
    }
}

/// A named tensor: the unit of every input and output.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub name: String,
    pub shape: Vec<i64>,
    pub data: TensorData,
    pub parameters: Parameters,
}

impl Tensor {
    /// A tensor with no parameters.
    pub fn new(name: impl Into<String>, shape: Vec<i64>, data: TensorData) -> Tensor {
        Tensor { name: name.into(), shape, data, parameters: Parameters::default() }
    }

    /// The element type.
    pub fn datatype(&self) -> DataType {
        self.data.datatype()
    }

    /// Checks that the shape has no negative dimension, that its product equals the
    /// number of elements and that BYTES elements are within [`MAX_BYTES_ELEMENTS`] and
    /// [`MAX_BYTES_ELEMENT_LEN`]. Every decoder calls this before a model sees the tensor.
    pub fn validate(&self) -> Result<()> {
        if let TensorData::Bytes(elements) = &self.data {
            check_bytes_count(&self.name, elements.len())?;
            for (i, e) in elements.iter().enumerate() {
                check_bytes_element(&self.name, i, e.len())?;
            }
        }
        let expected = element_count(&self.name, &self.shape)?;
        let got = self.data.len();
        if expected != got {
            return Err(ProtocolError::invalid(format!(
                "tensor \"{}\": shape {} needs {} elements, got {}",
                self.name,
                shape_string(&self.shape),
                expected,
                got
            )));
        }
        Ok(())
    }
}

/// Most elements one BYTES tensor may have. Each element costs a buffer handle (32 bytes)
/// beside its contents, so without a bound a body of empty strings would grow about ten
/// times over in memory while it is decoded.
pub const MAX_BYTES_ELEMENTS: usize = 1 << 22;

/// Largest single BYTES element, in bytes.
pub const MAX_BYTES_ELEMENT_LEN: usize = 16 << 20;

/// Refuses a BYTES tensor of more than [`MAX_BYTES_ELEMENTS`] elements.
pub fn check_bytes_count(name: &str, count: usize) -> Result<()> {
    if count > MAX_BYTES_ELEMENTS {
        return Err(ProtocolError::invalid(format!(
            "tensor \"{name}\": {count} BYTES elements is over the limit of {MAX_BYTES_ELEMENTS}"
        )));
    }
    Ok(())
}

/// Refuses a BYTES element longer than [`MAX_BYTES_ELEMENT_LEN`].
pub fn check_bytes_element(name: &str, index: usize, len: usize) -> Result<()> {
    if len > MAX_BYTES_ELEMENT_LEN {
        return Err(ProtocolError::invalid(format!(
            "tensor \"{name}\": BYTES element {index} is {len} bytes, over the limit of {MAX_BYTES_ELEMENT_LEN}"
        )));
    }
    Ok(())
}

/// Product of the dimensions of `shape`, refusing negative dimensions and overflow.
pub fn element_count(name: &str, shape: &[i64]) -> Result<usize> {
    let mut n: usize = 1;
    for &d in shape {
        let d = usize::try_from(d).map_err(|_| {
            ProtocolError::invalid(format!(
                "tensor \"{name}\": shape {} has a negative dimension",
                shape_string(shape)
            ))
        })?;
        n = n.checked_mul(d).ok_or_else(|| {
            ProtocolError::invalid(format!(
                "tensor \"{name}\": shape {} is too large",
                shape_string(shape)
            ))
        })?;
    }
    Ok(n)
}

/// `[2,3]` — how shapes appear in error messages.
pub fn shape_string(shape: &[i64]) -> String {
    let dims: Vec<String> = shape.iter().map(i64::to_string).collect();
    format!("[{}]", dims.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_reports_shape_and_counts() {
        let t = Tensor::new("x", vec![2, 3], TensorData::Fp32(vec![0.0; 5]));
        assert_eq!(
            t.validate().unwrap_err().to_string(),
            "tensor \"x\": shape [2,3] needs 6 elements, got 5"
        );
        let t = Tensor::new("x", vec![-1, 3], TensorData::Fp32(vec![]));
        assert!(t.validate().unwrap_err().to_string().contains("negative dimension"));
        let t = Tensor::new("x", vec![i64::MAX, i64::MAX], TensorData::Fp32(vec![]));
        assert!(t.validate().unwrap_err().to_string().contains("too large"));
        Tensor::new("x", vec![2, 0], TensorData::Fp32(vec![])).validate().unwrap();
    }

    #[test]
    fn bytes_tensors_are_bounded_in_count_and_element_size() {
        let big = bytes::Bytes::from(vec![b'a'; MAX_BYTES_ELEMENT_LEN + 1]);
        let t = Tensor::new("s", vec![2], TensorData::Bytes(vec![bytes::Bytes::new(), big]));
        assert_eq!(
            t.validate().unwrap_err().to_string(),
            format!(
                "tensor \"s\": BYTES element 1 is {} bytes, over the limit of {MAX_BYTES_ELEMENT_LEN}",
                MAX_BYTES_ELEMENT_LEN + 1
            )
        );
        let many = vec![bytes::Bytes::new(); MAX_BYTES_ELEMENTS + 1];
        let n = i64::try_from(many.len()).unwrap();
        let t = Tensor::new("s", vec![n], TensorData::Bytes(many));
        assert!(t.validate().unwrap_err().to_string().contains("BYTES elements is over the limit"));
        let fine = vec![bytes::Bytes::from_static(b"ok"); 3];
        Tensor::new("s", vec![3], TensorData::Bytes(fine)).validate().unwrap();
    }

    #[test]
    fn concatenation_checks_datatype() {
        let mut a = TensorData::Int32(vec![1, 2]);
        a.extend_from(&TensorData::Int32(vec![3])).unwrap();
        assert_eq!(a, TensorData::Int32(vec![1, 2, 3]));
        assert_eq!(a.slice(1..3), TensorData::Int32(vec![2, 3]));
        let err = a.extend_from(&TensorData::Fp32(vec![1.0])).unwrap_err();
        assert_eq!(err.to_string(), "cannot concatenate INT32 with FP32");
    }
}
