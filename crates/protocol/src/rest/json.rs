//! JSON tensor elements: a parser that reads a tensor's (flat or nested) `data` array straight
//! into its typed vector, and writers that append typed elements as JSON.
//!
//! The parser runs on text already checked to be well-formed JSON (a serde_json `RawValue`
//! of the body, or a value the request scanner checked), so it only has to recognise tokens,
//! not report syntax errors well. Numbers are parsed directly from their text into the
//! target type, so an `FP32` value is rounded once (not through `f64`) and integers are
//! range-checked exactly. [`JsonElem`] is shared with the one-pass request scanner
//! (`scan.rs`), which hands over numbers it has already scanned.

use std::borrow::Cow;

use bytes::Bytes;
use half::{bf16, f16};

use super::number::{self, Decimal};
use crate::datatype::DataType;

/// serde_json refuses documents nested deeper than 128; this bound only guards the
/// recursion should the parser ever see unchecked text.
const MAX_DEPTH: usize = 256;

/// Why one scalar could not become an element.
pub(crate) enum ElemError {
    /// The JSON kind is wrong for the datatype (`"a string"`, `"null"`, …).
    Kind(&'static str),
    /// A number that is not an integer where one is needed.
    NotIntegral,
    /// An integer outside the datatype's range.
    OutOfRange,
}

/// A tensor element type that can be read from a JSON scalar.
pub(crate) trait JsonElem: Sized {
    /// The datatype named in error messages.
    const DATATYPE: DataType;

    /// From the text of a JSON number.
    fn from_number(_tok: &str) -> Result<Self, ElemError> {
        Err(ElemError::Kind("a number"))
    }
    /// From a JSON number already scanned into `d`, whose text is `tok`; the same as
    /// [`JsonElem::from_number`] of `tok`.
    fn from_decimal(_d: &Decimal, tok: &[u8]) -> Result<Self, ElemError> {
        // A scanned number is ASCII.
        Self::from_number(std::str::from_utf8(tok).unwrap_or_default())
    }
    /// From `true`/`false`.
    fn from_bool(_b: bool) -> Result<Self, ElemError> {
        Err(ElemError::Kind("a boolean"))
    }
    /// From `null`.
    fn from_null() -> Result<Self, ElemError> {
        Err(ElemError::Kind("null"))
    }
    /// From an unescaped JSON string.
    fn from_string(_s: Cow<'_, str>) -> Result<Self, ElemError> {
        Err(ElemError::Kind("a string"))
    }
}

/// Reads an integer token exactly: plain integer syntax through `i128`, and numbers written
/// with a fraction or exponent (`2.0`, `1e3`) only when their value is integral.
fn parse_integer(tok: &str) -> Result<i128, ElemError> {
    let digits = tok.strip_prefix('-').unwrap_or(tok);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        // More than 38 digits cannot fit any of our types anyway.
        return tok.parse::<i128>().map_err(|_| ElemError::OutOfRange);
    }
    let f: f64 = tok.parse().map_err(|_| ElemError::NotIntegral)?;
    if !f.is_finite() || f.fract() != 0.0 {
        return Err(ElemError::NotIntegral);
    }
    // 2^127 is exactly representable; anything at or beyond it is out of every range.
    const LIMIT: f64 = 170_141_183_460_469_231_731_687_303_715_884_105_728.0;
    if f.abs() >= LIMIT {
        return Err(ElemError::OutOfRange);
    }
    Ok(f as i128)
}

macro_rules! int_elem {
    ($($ty:ty => $dt:ident),*) => {$(
        impl JsonElem for $ty {
            const DATATYPE: DataType = DataType::$dt;
            fn from_number(tok: &str) -> Result<Self, ElemError> {
                // Fast path for the common case: plain integer syntax that fits.
                if let Ok(v) = tok.parse::<$ty>() {
                    return Ok(v);
                }
                <$ty>::try_from(parse_integer(tok)?).map_err(|_| ElemError::OutOfRange)
            }
            #[inline]
            fn from_decimal(d: &Decimal, tok: &[u8]) -> Result<Self, ElemError> {
                match d.to_i128() {
                    Some(v) => <$ty>::try_from(v).map_err(|_| ElemError::OutOfRange),
                    None => Self::from_number(std::str::from_utf8(tok).unwrap_or_default()),
                }
            }
        }
    )*};
}
int_elem!(u8 => Uint8, u16 => Uint16, u32 => Uint32, u64 => Uint64,
          i8 => Int8, i16 => Int16, i32 => Int32, i64 => Int64);

impl JsonElem for bool {
    const DATATYPE: DataType = DataType::Bool;
    fn from_bool(b: bool) -> Result<Self, ElemError> {
        Ok(b)
    }
}

// JSON has no NaN; `null` stands for it (tree models use NaN for missing values). Numbers
// beyond the type's range round to ±infinity as IEEE parsing does, which is also how
// infinities are written (`1e999`).
impl JsonElem for f32 {
    const DATATYPE: DataType = DataType::Fp32;
    fn from_number(tok: &str) -> Result<Self, ElemError> {
        number::parse_f32(tok).map_err(|_| ElemError::Kind("a malformed number"))
    }
    #[inline]
    fn from_decimal(d: &Decimal, tok: &[u8]) -> Result<Self, ElemError> {
        match d.to_f32() {
            Some(v) => Ok(v),
            None => Self::from_number(std::str::from_utf8(tok).unwrap_or_default()),
        }
    }
    fn from_null() -> Result<Self, ElemError> {
        Ok(f32::NAN)
    }
}

impl JsonElem for f64 {
    const DATATYPE: DataType = DataType::Fp64;
    fn from_number(tok: &str) -> Result<Self, ElemError> {
        number::parse_f64(tok).map_err(|_| ElemError::Kind("a malformed number"))
    }
    #[inline]
    fn from_decimal(d: &Decimal, tok: &[u8]) -> Result<Self, ElemError> {
        match d.to_f64() {
            Some(v) => Ok(v),
            None => Self::from_number(std::str::from_utf8(tok).unwrap_or_default()),
        }
    }
    fn from_null() -> Result<Self, ElemError> {
        Ok(f64::NAN)
    }
}

// Only the V1 API reads FP16/BF16 from JSON (it has no binary form); the V2 REST codec
// refuses them before parsing.
impl JsonElem for f16 {
    const DATATYPE: DataType = DataType::Fp16;
    fn from_number(tok: &str) -> Result<Self, ElemError> {
        f32::from_number(tok).map(f16::from_f32)
    }
    fn from_null() -> Result<Self, ElemError> {
        Ok(f16::NAN)
    }
}

impl JsonElem for bf16 {
    const DATATYPE: DataType = DataType::Bf16;
    fn from_number(tok: &str) -> Result<Self, ElemError> {
        f32::from_number(tok).map(bf16::from_f32)
    }
    fn from_null() -> Result<Self, ElemError> {
        Ok(bf16::NAN)
    }
}

impl JsonElem for Bytes {
    const DATATYPE: DataType = DataType::Bytes;
    fn from_string(s: Cow<'_, str>) -> Result<Self, ElemError> {
        Ok(match s {
            Cow::Borrowed(s) => Bytes::copy_from_slice(s.as_bytes()),
            Cow::Owned(s) => Bytes::from(s.into_bytes()),
        })
    }
}

/// The shape of nested arrays, recorded while parsing (used by V1 to stack rows).
#[derive(Default)]
pub(crate) struct ShapeTracker {
    dims: Vec<Option<usize>>,
    leaf_depth: Option<usize>,
}

impl ShapeTracker {
    fn leaf(&mut self, depth: usize) -> Result<(), String> {
        match self.leaf_depth {
            None => {
                self.leaf_depth = Some(depth);
                Ok(())
            }
            Some(d) if d == depth => Ok(()),
            Some(_) => Err("nested arrays are ragged: values at different depths".to_owned()),
        }
    }

    fn close(&mut self, depth: usize, len: usize) -> Result<(), String> {
        if self.dims.len() <= depth {
            self.dims.resize(depth + 1, None);
        }
        match self.dims.get_mut(depth) {
            Some(slot @ None) => *slot = Some(len),
            Some(Some(prev)) if *prev != len => {
                return Err(format!(
                    "nested arrays are ragged: lengths {prev} and {len} at depth {depth}"
                ));
            }
            _ => {}
        }
        if len == 0 {
            self.leaf(depth + 1)?;
        }
        Ok(())
    }

    /// The shape of the parsed value (`[]` for a scalar).
    pub(crate) fn shape(&self) -> Vec<usize> {
        let depth = self.leaf_depth.unwrap_or(0);
        self.dims.iter().take(depth).map(|d| d.unwrap_or(0)).collect()
    }
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
}

/// Parses `text` — a JSON scalar or (nested) array of scalars — appending every scalar in
/// row-major order to `out`. The error is a message without the tensor's name.
pub(crate) fn parse_into<T: JsonElem>(
    text: &str,
    out: &mut Vec<T>,
    shape: Option<&mut ShapeTracker>,
) -> Result<(), String> {
    let mut p = Parser { text, pos: 0 };
    let mut local = ShapeTracker::default();
    let (track, tracking) = match shape {
        Some(t) => (t, true),
        None => (&mut local, false),
    };
    p.value(out, 0, track, tracking)?;
    p.ws();
    if p.pos != text.len() {
        return Err("malformed data".to_owned());
    }
    Ok(())
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.pos += 1;
        }
    }

    fn literal(&mut self, lit: &str) -> Result<(), String> {
        if self.text.get(self.pos..).is_some_and(|s| s.starts_with(lit)) {
            self.pos += lit.len();
            Ok(())
        } else {
            Err("malformed data".to_owned())
        }
    }

    fn value<T: JsonElem>(
        &mut self,
        out: &mut Vec<T>,
        depth: usize,
        track: &mut ShapeTracker,
        tracking: bool,
    ) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err("data is nested too deeply".to_owned());
        }
        self.ws();
        let start = self.pos;
        let elem = match self.peek() {
            Some(b'[') => {
                self.pos += 1;
                self.ws();
                let mut len = 0usize;
                if self.peek() == Some(b']') {
                    self.pos += 1;
                } else {
                    loop {
                        self.value(out, depth + 1, track, tracking)?;
                        len += 1;
                        self.ws();
                        match self.peek() {
                            Some(b',') => self.pos += 1,
                            Some(b']') => {
                                self.pos += 1;
                                break;
                            }
                            _ => return Err("malformed data".to_owned()),
                        }
                    }
                }
                if tracking {
                    track.close(depth, len)?;
                }
                return Ok(());
            }
            Some(b'{') => {
                return Err(format!(
                    "data must be {} values or nested arrays of them, found an object",
                    T::DATATYPE
                ));
            }
            Some(b'"') => T::from_string(self.string()?),
            Some(b't') => {
                self.literal("true")?;
                T::from_bool(true)
            }
            Some(b'f') => {
                self.literal("false")?;
                T::from_bool(false)
            }
            Some(b'n') => {
                self.literal("null")?;
                T::from_null()
            }
            Some(b'-' | b'0'..=b'9') => {
                while let Some(b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9') = self.peek() {
                    self.pos += 1;
                }
                T::from_number(self.text.get(start..self.pos).unwrap_or_default())
            }
            _ => return Err("malformed data".to_owned()),
        };
        if tracking {
            track.leaf(depth)?;
        }
        match elem {
            Ok(v) => {
                out.push(v);
                Ok(())
            }
            Err(e) => {
                let index = out.len();
                let tok = self.text.get(start..self.pos).unwrap_or_default();
                let dt = T::DATATYPE;
                Err(match e {
                    ElemError::Kind(kind) => {
                        format!("data element {index}: expected {dt}, found {kind}")
                    }
                    ElemError::NotIntegral => {
                        format!("data element {index}: {tok} is not an integer ({dt})")
                    }
                    ElemError::OutOfRange => {
                        format!("data element {index}: {tok} is out of range for {dt}")
                    }
                })
            }
        }
    }

    /// Reads a JSON string at the cursor, borrowing it when it has no escapes.
    fn string(&mut self) -> Result<Cow<'_, str>, String> {
        let start = self.pos;
        let bytes = self.text.as_bytes();
        let mut i = start + 1;
        let mut escaped = false;
        loop {
            match bytes.get(i) {
                Some(b'"') => break,
                Some(b'\\') => {
                    escaped = true;
                    i += 2;
                }
                Some(_) => i += 1,
                None => return Err("malformed data".to_owned()),
            }
        }
        self.pos = i + 1;
        let inner = self.text.get(start + 1..i).unwrap_or_default();
        if !escaped {
            return Ok(Cow::Borrowed(inner));
        }
        let quoted = self.text.get(start..=i).unwrap_or_default();
        serde_json::from_str::<String>(quoted)
            .map(Cow::Owned)
            .map_err(|e| format!("malformed string: {e}"))
    }
}

/// A tensor element that can be written as JSON.
pub(crate) trait WriteJson {
    /// Appends this element's JSON text.
    fn write_json(&self, out: &mut Vec<u8>);
}

macro_rules! int_write {
    ($($ty:ty),*) => {$(
        impl WriteJson for $ty {
            fn write_json(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(itoa::Buffer::new().format(*self).as_bytes());
            }
        }
    )*};
}
int_write!(u8, u16, u32, u64, i8, i16, i32, i64);

impl WriteJson for bool {
    fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(if *self { b"true" } else { b"false" });
    }
}

/// Writes NaN as `null` and infinities as `±1e999`, which every JSON reader that accepts
/// overflowing numbers (Python, JavaScript, this crate) reads back as infinity.
fn write_non_finite(nan: bool, negative: bool, out: &mut Vec<u8>) {
    out.extend_from_slice(match (nan, negative) {
        (true, _) => b"null".as_slice(),
        (false, false) => b"1e999",
        (false, true) => b"-1e999",
    });
}

impl WriteJson for f32 {
    fn write_json(&self, out: &mut Vec<u8>) {
        if self.is_finite() {
            // Shortest representation that parses back to the same f32.
            out.extend_from_slice(ryu::Buffer::new().format_finite(*self).as_bytes());
        } else {
            write_non_finite(self.is_nan(), self.is_sign_negative(), out);
        }
    }
}

impl WriteJson for f64 {
    fn write_json(&self, out: &mut Vec<u8>) {
        if self.is_finite() {
            out.extend_from_slice(ryu::Buffer::new().format_finite(*self).as_bytes());
        } else {
            write_non_finite(self.is_nan(), self.is_sign_negative(), out);
        }
    }
}

impl WriteJson for f16 {
    fn write_json(&self, out: &mut Vec<u8>) {
        self.to_f32().write_json(out);
    }
}

impl WriteJson for bf16 {
    fn write_json(&self, out: &mut Vec<u8>) {
        self.to_f32().write_json(out);
    }
}

impl WriteJson for Bytes {
    /// UTF-8 elements as strings; others as TF-Serving's `{"b64": "…"}` (only V1 writes
    /// non-UTF-8 elements as JSON; the V2 codec sends them as binary data).
    fn write_json(&self, out: &mut Vec<u8>) {
        match std::str::from_utf8(self) {
            Ok(s) => write_str(s, out),
            Err(_) => {
                out.extend_from_slice(b"{\"b64\":\"");
                base64_encode(self, out);
                out.extend_from_slice(b"\"}");
            }
        }
    }
}

/// The bytes a JSON string cannot hold as they are: `"`, `\\` and control characters.
static NEEDS_ESCAPE: [bool; 256] = {
    let mut escape = [false; 256];
    let mut b = 0;
    while b < 256 {
        escape[b] = b < 0x20 || b == b'"' as usize || b == b'\\' as usize;
        b += 1;
    }
    escape
};

/// Appends `s` as a JSON string literal.
pub(crate) fn write_str(s: &str, out: &mut Vec<u8>) {
    let mut rest = s.as_bytes();
    out.reserve(rest.len() + 2);
    out.push(b'"');
    while let Some(i) = rest.iter().position(|&b| NEEDS_ESCAPE[usize::from(b)]) {
        let (plain, tail) = rest.split_at(i);
        out.extend_from_slice(plain);
        let Some((&b, tail)) = tail.split_first() else { break };
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xf)]);
            }
        }
        rest = tail;
    }
    out.extend_from_slice(rest);
    out.push(b'"');
}

/// Standard base64 with padding.
fn base64_encode(data: &[u8], out: &mut Vec<u8>) {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for chunk in data.chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (k, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if k <= chunk.len() {
                out.push(ALPHABET[((n >> shift) & 63) as usize]);
            } else {
                out.push(b'=');
            }
        }
    }
}

/// Appends `items` as a flat JSON array.
pub(crate) fn write_flat<T: WriteJson>(items: &[T], out: &mut Vec<u8>) {
    out.push(b'[');
    for (i, x) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        x.write_json(out);
    }
    out.push(b']');
}

/// Appends `items` nested by `dims` (row-major); with no dims, the single element itself.
pub(crate) fn write_nested<T: WriteJson>(items: &[T], dims: &[usize], out: &mut Vec<u8>) {
    match dims {
        [] => match items.first() {
            Some(x) => x.write_json(out),
            None => out.extend_from_slice(b"null"),
        },
        [_] => write_flat(items, out),
        [n, rest @ ..] => {
            let stride = rest.iter().product::<usize>();
            out.push(b'[');
            for i in 0..*n {
                if i > 0 {
                    out.push(b',');
                }
                let row = items.get(i * stride..(i + 1) * stride).unwrap_or_default();
                write_nested(row, rest, out);
            }
            out.push(b']');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse<T: JsonElem>(text: &str) -> Result<Vec<T>, String> {
        let mut v = Vec::new();
        parse_into(text, &mut v, None).map(|()| v)
    }

    #[test]
    fn flattens_nested_arrays_and_checks_elements() {
        assert_eq!(parse::<i32>("[[1, 2],\n [3,4]]").unwrap(), [1, 2, 3, 4]);
        assert_eq!(parse::<u8>("[2.0, 1e2, 255]").unwrap(), [2, 100, 255]);
        assert_eq!(
            parse::<u8>("[1, 256]").unwrap_err(),
            "data element 1: 256 is out of range for UINT8"
        );
        assert_eq!(
            parse::<i64>("[1.5]").unwrap_err(),
            "data element 0: 1.5 is not an integer (INT64)"
        );
        assert_eq!(
            parse::<u64>("[-1]").unwrap_err(),
            "data element 0: -1 is out of range for UINT64"
        );
        assert_eq!(
            parse::<i64>("[\"a\"]").unwrap_err(),
            "data element 0: expected INT64, found a string"
        );
        assert_eq!(
            parse::<bool>("[true, 1]").unwrap_err(),
            "data element 1: expected BOOL, found a number"
        );
        assert_eq!(
            parse::<f32>("[{\"a\":1}]").unwrap_err(),
            "data must be FP32 values or nested arrays of them, found an object"
        );
        assert_eq!(parse::<i64>("[-9223372036854775808]").unwrap(), [i64::MIN]);
        assert_eq!(parse::<u64>("[18446744073709551615]").unwrap(), [u64::MAX]);
        let nan = parse::<f64>("[null, 1e999, 0.1]").unwrap();
        assert!(nan[0].is_nan() && nan[1] == f64::INFINITY && nan[2] == 0.1);
        let s = parse::<Bytes>(r#"["a\"b", "é", ""]"#).unwrap();
        assert_eq!(s, ["a\"b", "é", ""].map(|s| Bytes::from(s.as_bytes().to_vec())));
    }

    #[test]
    fn tracks_nested_shapes() {
        let shape = |text: &str| {
            let mut t = ShapeTracker::default();
            parse_into::<f32>(text, &mut Vec::new(), Some(&mut t)).map(|()| t.shape())
        };
        assert_eq!(shape("[[1,2,3],[4,5,6]]").unwrap(), [2, 3]);
        assert_eq!(shape("7").unwrap(), Vec::<usize>::new());
        assert_eq!(shape("[]").unwrap(), [0]);
        assert_eq!(
            shape("[[1,2],[3]]").unwrap_err(),
            "nested arrays are ragged: lengths 2 and 1 at depth 1"
        );
        assert_eq!(
            shape("[[1,2],3]").unwrap_err(),
            "nested arrays are ragged: values at different depths"
        );
    }

    #[test]
    fn writes_escaped_strings_and_base64() {
        let mut out = Vec::new();
        write_str("a\"\\\n\u{1}é", &mut out);
        assert_eq!(String::from_utf8(out).unwrap(), r#""a\"\\\n\u0001é""#);
        let mut out = Vec::new();
        Bytes::from_static(&[0xff, 0xfe, 0x00, 0x01]).write_json(&mut out);
        assert_eq!(out, br#"{"b64":"//4AAQ=="}"#);
        let mut out = Vec::new();
        write_nested(&[1, 2, 3, 4, 5, 6], &[2, 3], &mut out);
        assert_eq!(out, b"[[1,2,3],[4,5,6]]");
        let mut out = Vec::new();
        write_flat(&[f32::NAN, f32::NEG_INFINITY, 0.1, -0.0], &mut out);
        assert_eq!(out, b"[null,-1e999,0.1,-0.0]");
    }

    proptest::proptest! {
        #[test]
        fn written_strings_read_back_as_themselves(s in "\\PC*|[\\x00-\\x7f]{0,40}") {
            let mut out = Vec::new();
            write_str(&s, &mut out);
            let back: String = serde_json::from_slice(&out).unwrap();
            proptest::prop_assert_eq!(back, s);
        }
    }
}
