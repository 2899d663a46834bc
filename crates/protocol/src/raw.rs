//! The raw little-endian tensor layout shared by REST binary tensor data, Triton's raw
//! single-input bodies and gRPC `raw_input_contents` / `raw_output_contents`.
//!
//! Fixed-size elements are stored back to back in little-endian order; BOOL is one byte
//! (0 is false, anything else true); each BYTES element is a 4-byte little-endian length
//! followed by that many bytes.

use bytes::Bytes;
use half::{bf16, f16};

use crate::datatype::DataType;
use crate::error::{ProtocolError, Result};
use crate::tensor::{
    TensorData, check_bytes_count, check_bytes_element, element_count, shape_string,
};

/// Decodes `bytes`, the raw layout of tensor `name` with `datatype` and `shape`, into a typed
/// vector. The byte size must match the shape exactly: for fixed-size types
/// element count × element size, for BYTES exactly element-count length-prefixed elements
/// with nothing truncated and nothing left over.
pub fn decode_raw(
    name: &str,
    datatype: DataType,
    shape: &[i64],
    bytes: &[u8],
) -> Result<TensorData> {
    let count = element_count(name, shape)?;
    let Some(size) = datatype.element_size() else {
        return decode_bytes_elements(name, shape, count, bytes).map(TensorData::Bytes);
    };
    let expected = count.checked_mul(size).ok_or_else(|| {
        ProtocolError::invalid(format!(
            "tensor \"{name}\": shape {} is too large",
            shape_string(shape)
        ))
    })?;
    if bytes.len() != expected {
        return Err(ProtocolError::invalid(format!(
            "tensor \"{name}\": shape {} of {datatype} needs {expected} bytes of raw data, got {}",
            shape_string(shape),
            bytes.len()
        )));
    }
    Ok(decode_fixed(datatype, bytes))
}

/// Decodes a byte buffer whose length is already known to be a multiple of the element size.
fn decode_fixed(datatype: DataType, bytes: &[u8]) -> TensorData {
    macro_rules! le {
        ($variant:ident, $ty:ty, $n:literal) => {
            TensorData::$variant(
                bytes
                    .chunks_exact($n)
                    .map(|c| {
                        let mut a = [0u8; $n];
                        a.copy_from_slice(c);
                        <$ty>::from_le_bytes(a)
                    })
                    .collect(),
            )
        };
    }
    match datatype {
        DataType::Bool => TensorData::Bool(bytes.iter().map(|&b| b != 0).collect()),
        DataType::Uint8 => TensorData::Uint8(bytes.to_vec()),
        DataType::Int8 => TensorData::Int8(bytes.iter().map(|&b| b as i8).collect()),
        DataType::Uint16 => le!(Uint16, u16, 2),
        DataType::Uint32 => le!(Uint32, u32, 4),
        DataType::Uint64 => le!(Uint64, u64, 8),
        DataType::Int16 => le!(Int16, i16, 2),
        DataType::Int32 => le!(Int32, i32, 4),
        DataType::Int64 => le!(Int64, i64, 8),
        DataType::Fp16 => le!(Fp16, f16, 2),
        DataType::Fp32 => le!(Fp32, f32, 4),
        DataType::Fp64 => le!(Fp64, f64, 8),
        DataType::Bf16 => le!(Bf16, bf16, 2),
        // Unreachable through `decode_raw`, which routes BYTES elsewhere; an empty vector
        // keeps this total without panicking.
        DataType::Bytes => TensorData::Bytes(Vec::new()),
    }
}

/// Splits length-prefixed BYTES elements, requiring exactly `count` of them.
fn decode_bytes_elements(
    name: &str,
    shape: &[i64],
    count: usize,
    bytes: &[u8],
) -> Result<Vec<Bytes>> {
    check_bytes_count(name, count)?;
    // Every element needs at least its 4-byte prefix, so this bounds the allocation by the
    // input size rather than by a client-supplied shape.
    let mut out = Vec::with_capacity(count.min(bytes.len() / 4));
    let mut rest = bytes;
    for i in 0..count {
        let Some((prefix, tail)) = rest.split_first_chunk::<4>() else {
            return Err(ProtocolError::invalid(format!(
                "tensor \"{name}\": shape {} needs {count} BYTES elements, raw data ends after {i}",
                shape_string(shape)
            )));
        };
        let len = u32::from_le_bytes(*prefix) as usize;
        check_bytes_element(name, i, len)?;
        let Some((element, tail)) = tail.split_at_checked(len) else {
            return Err(ProtocolError::invalid(format!(
                "tensor \"{name}\": BYTES element {i} declares {len} bytes, only {} remain",
                tail.len()
            )));
        };
        out.push(Bytes::copy_from_slice(element));
        rest = tail;
    }
    if !rest.is_empty() {
        return Err(ProtocolError::invalid(format!(
            "tensor \"{name}\": shape {} needs {count} BYTES elements, {} bytes of raw data left over",
            shape_string(shape),
            rest.len()
        )));
    }
    Ok(out)
}

/// Appends the raw little-endian layout of `data` to `out`.
pub fn encode_raw(data: &TensorData, out: &mut Vec<u8>) {
    macro_rules! le {
        ($v:expr) => {{
            for x in $v {
                out.extend_from_slice(&x.to_le_bytes());
            }
        }};
    }
    out.reserve(data.raw_byte_len());
    match data {
        TensorData::Bool(v) => out.extend(v.iter().map(|&b| u8::from(b))),
        TensorData::Uint8(v) => out.extend_from_slice(v),
        TensorData::Int8(v) => out.extend(v.iter().map(|&b| b as u8)),
        TensorData::Uint16(v) => le!(v),
        TensorData::Uint32(v) => le!(v),
        TensorData::Uint64(v) => le!(v),
        TensorData::Int16(v) => le!(v),
        TensorData::Int32(v) => le!(v),
        TensorData::Int64(v) => le!(v),
        TensorData::Fp16(v) => le!(v),
        TensorData::Fp32(v) => le!(v),
        TensorData::Fp64(v) => le!(v),
        TensorData::Bf16(v) => le!(v),
        TensorData::Bytes(v) => {
            for b in v {
                // Elements longer than 4 GiB cannot be represented; the length saturates and
                // the decoder on the other side will then report the mismatch.
                let len = u32::try_from(b.len()).unwrap_or(u32::MAX);
                out.extend_from_slice(&len.to_le_bytes());
                out.extend_from_slice(b);
            }
        }
    }
}

/// The raw little-endian layout of `data` as a new vector.
pub fn encode_raw_vec(data: &TensorData) -> Vec<u8> {
    let mut out = Vec::new();
    encode_raw(data, &mut out);
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Compares two tensors' data bit for bit (floats by bits, so NaNs compare equal).
    pub(crate) fn bits_eq(a: &TensorData, b: &TensorData) -> bool {
        encode_raw_vec(a) == encode_raw_vec(b) && a.datatype() == b.datatype() && a.len() == b.len()
    }

    /// A small shape (0 to 3 dims, each 0 to 4) and data of `datatype` that fits it.
    pub(crate) fn arb_data_for(datatype: DataType, n: usize) -> BoxedStrategy<TensorData> {
        use proptest::collection::vec;
        match datatype {
            DataType::Bool => vec(any::<bool>(), n).prop_map(TensorData::Bool).boxed(),
            DataType::Uint8 => vec(any::<u8>(), n).prop_map(TensorData::Uint8).boxed(),
            DataType::Uint16 => vec(any::<u16>(), n).prop_map(TensorData::Uint16).boxed(),
            DataType::Uint32 => vec(any::<u32>(), n).prop_map(TensorData::Uint32).boxed(),
            DataType::Uint64 => vec(any::<u64>(), n).prop_map(TensorData::Uint64).boxed(),
            DataType::Int8 => vec(any::<i8>(), n).prop_map(TensorData::Int8).boxed(),
            DataType::Int16 => vec(any::<i16>(), n).prop_map(TensorData::Int16).boxed(),
            DataType::Int32 => vec(any::<i32>(), n).prop_map(TensorData::Int32).boxed(),
            DataType::Int64 => vec(any::<i64>(), n).prop_map(TensorData::Int64).boxed(),
            DataType::Fp16 => {
                vec(any::<u16>().prop_map(f16::from_bits), n).prop_map(TensorData::Fp16).boxed()
            }
            DataType::Bf16 => {
                vec(any::<u16>().prop_map(bf16::from_bits), n).prop_map(TensorData::Bf16).boxed()
            }
            DataType::Fp32 => {
                vec(any::<u32>().prop_map(f32::from_bits), n).prop_map(TensorData::Fp32).boxed()
            }
            DataType::Fp64 => {
                vec(any::<u64>().prop_map(f64::from_bits), n).prop_map(TensorData::Fp64).boxed()
            }
            DataType::Bytes => vec(vec(any::<u8>(), 0..6).prop_map(Bytes::from), n)
                .prop_map(TensorData::Bytes)
                .boxed(),
        }
    }

    /// Any datatype, a small shape (zero-size dims included) and matching data.
    pub(crate) fn arb_tensor_parts() -> impl Strategy<Value = (Vec<i64>, TensorData)> {
        (proptest::sample::select(DataType::ALL.to_vec()), proptest::collection::vec(0i64..4, 0..4))
            .prop_flat_map(|(dt, shape)| {
                let n = shape.iter().product::<i64>() as usize;
                (Just(shape), arb_data_for(dt, n))
            })
    }

    proptest! {
        #[test]
        fn raw_round_trips_bit_exactly((shape, data) in arb_tensor_parts()) {
            let bytes = encode_raw_vec(&data);
            prop_assert_eq!(bytes.len(), data.raw_byte_len());
            let back = decode_raw("t", data.datatype(), &shape, &bytes).unwrap();
            prop_assert!(bits_eq(&back, &data), "{:?} != {:?}", back, data);
        }
    }

    #[test]
    fn little_endian_layout() {
        let mut out = Vec::new();
        encode_raw(&TensorData::Int32(vec![1, -2]), &mut out);
        assert_eq!(out, [1, 0, 0, 0, 0xfe, 0xff, 0xff, 0xff]);
        let v = decode_raw("x", DataType::Fp32, &[1], &1.5f32.to_le_bytes()).unwrap();
        assert_eq!(v, TensorData::Fp32(vec![1.5]));
        let v = decode_raw("b", DataType::Bool, &[3], &[0, 1, 7]).unwrap();
        assert_eq!(v, TensorData::Bool(vec![false, true, true]));
        let v =
            decode_raw("s", DataType::Bytes, &[2], &[2, 0, 0, 0, b'h', b'i', 0, 0, 0, 0]).unwrap();
        assert_eq!(v, TensorData::Bytes(vec![Bytes::from_static(b"hi"), Bytes::new()]));
    }

    #[test]
    fn size_mismatches_name_the_tensor() {
        let e = decode_raw("x", DataType::Fp32, &[2, 3], &[0; 20]).unwrap_err();
        assert_eq!(e.code, crate::ErrorCode::InvalidArgument);
        assert_eq!(
            e.message,
            "tensor \"x\": shape [2,3] of FP32 needs 24 bytes of raw data, got 20"
        );
        let e = decode_raw("s", DataType::Bytes, &[2], &[1, 0, 0, 0, b'a']).unwrap_err();
        assert_eq!(
            e.message,
            "tensor \"s\": shape [2] needs 2 BYTES elements, raw data ends after 1"
        );
        let e = decode_raw("s", DataType::Bytes, &[1], &[5, 0, 0, 0, b'a']).unwrap_err();
        assert_eq!(e.message, "tensor \"s\": BYTES element 0 declares 5 bytes, only 1 remain");
        let e = decode_raw("s", DataType::Bytes, &[1], &[1, 0, 0, 0, b'a', 9]).unwrap_err();
        assert_eq!(
            e.message,
            "tensor \"s\": shape [1] needs 1 BYTES elements, 1 bytes of raw data left over"
        );
        let e = decode_raw("s", DataType::Bytes, &[1], &[1, 0]).unwrap_err();
        assert_eq!(
            e.message,
            "tensor \"s\": shape [1] needs 1 BYTES elements, raw data ends after 0"
        );
        let e = decode_raw("x", DataType::Int8, &[-1], &[]).unwrap_err();
        assert_eq!(e.message, "tensor \"x\": shape [-1] has a negative dimension");
        let e = decode_raw("x", DataType::Fp64, &[i64::MAX / 2], &[]).unwrap_err();
        assert_eq!(e.message, format!("tensor \"x\": shape [{}] is too large", i64::MAX / 2));
    }
}
