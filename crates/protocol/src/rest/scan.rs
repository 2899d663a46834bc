//! The one-pass decoder of V2 REST inference requests: a JSON scanner that reads the request
//! object (`id`, `parameters`, `inputs`, `outputs`) and parses each input's `data` array
//! straight into its typed vector while checking the JSON syntax.
//!
//! It is the fast path of [`super::decode_request`] and only ever gives an answer when it is
//! the one the serde_json-based decoder would give: it accepts a subset of what that decoder
//! accepts (well-formed JSON with UTF-8 strings, no duplicate or escaped member names among
//! the fields it reads, the value types it expects, nesting up to [`MAX_DEPTH`]) and
//! produces the same request for it. On anything else — a syntax error, a wrong type, a
//! tensor that fails its checks, a rare form such as `"id": null` — it gives up with
//! [`Bail`] and the caller decodes the body again with serde_json, which reports the exact
//! error. Errors are rare and cost one more pass; well-formed requests take one.

use std::borrow::Cow;

use super::json::JsonElem;
use super::number;
use super::{BinaryCursor, TensorParts, WireData, decode_tensor};
use crate::datatype::DataType;
use crate::infer::{InferRequest, RequestedOutput};
use crate::parameters::Parameters;
use crate::tensor::{Tensor, TensorData, element_count};

/// The scanner declined the body; the serde_json-based decoder decides.
#[derive(Debug)]
pub(super) struct Bail;

type Scan<T> = Result<T, Bail>;

/// Arrays and objects nested deeper than this are left to the serde_json decoder, which also
/// bounds the recursion of this one.
pub(super) const MAX_DEPTH: usize = 100;

/// Decodes a request whose JSON part is `header`, taking binary tensor data from `binary`.
pub(super) fn decode_request(header: &[u8], binary: &[u8]) -> Scan<InferRequest> {
    let mut s = Scanner { bytes: header, pos: 0 };
    let mut cursor = BinaryCursor { rest: binary };
    let mut id = None;
    let mut parameters = None;
    let mut inputs = None;
    let mut outputs = None;
    s.ws();
    s.object(|s, key, escaped| {
        if escaped {
            return Err(Bail);
        }
        match key {
            b"id" => set_once(&mut id, s.string()?.into_owned()),
            b"parameters" => set_once(&mut parameters, s.parameters()?),
            b"inputs" => {
                if inputs.is_some() {
                    return Err(Bail);
                }
                let mut v = Vec::new();
                s.array(|s| {
                    let index = v.len();
                    v.push(s.tensor(index, &mut cursor)?);
                    Ok(())
                })?;
                inputs = Some(v);
                Ok(())
            }
            b"outputs" => {
                if outputs.is_some() {
                    return Err(Bail);
                }
                let mut v = Vec::new();
                s.array(|s| {
                    v.push(s.requested_output()?);
                    Ok(())
                })?;
                outputs = Some(v);
                Ok(())
            }
            _ => s.skip_value(1),
        }
    })?;
    s.ws();
    if s.pos != header.len() {
        return Err(Bail);
    }
    let inputs = inputs.ok_or(Bail)?;
    cursor.finish().map_err(|_| Bail)?;
    Ok(InferRequest {
        id,
        parameters: parameters.unwrap_or_default(),
        inputs,
        outputs: outputs.unwrap_or_default(),
    })
}

fn set_once<T>(slot: &mut Option<T>, value: T) -> Scan<()> {
    if slot.is_some() {
        // serde refuses duplicate fields.
        return Err(Bail);
    }
    *slot = Some(value);
    Ok(())
}

/// The bytes that end a run of ordinary string characters: the closing quote, a backslash,
/// control characters (refused) and non-ASCII bytes (valid only as UTF-8, checked at the end).
static STRING_STOP: [bool; 256] = {
    let mut stop = [false; 256];
    let mut b = 0;
    while b < 256 {
        stop[b] = b < 0x20 || b >= 0x80 || b == b'"' as usize || b == b'\\' as usize;
        b += 1;
    }
    stop
};

/// The position of the first byte at or after `i` that ends a run of ordinary string
/// characters (see [`STRING_STOP`]), if there is one. Eight bytes are looked at a time.
#[inline]
fn skip_plain(bytes: &[u8], mut i: usize) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    while let Some(chunk) = bytes.get(i..).and_then(<[u8]>::first_chunk::<8>) {
        let x = u64::from_le_bytes(*chunk);
        // The high bit of a byte is set in each test for a byte that passes it; a borrow can
        // also set it in bytes after one that truly passes, so only the lowest counts.
        let zero = |y: u64| y.wrapping_sub(ONES) & !y & HIGH;
        let quote = zero(x ^ (u64::from(b'"') * ONES));
        let backslash = zero(x ^ (u64::from(b'\\') * ONES));
        let control = x.wrapping_sub(0x20 * ONES) & !x & HIGH;
        let stop = quote | backslash | control | (x & HIGH);
        if stop != 0 {
            return Some(i + (stop.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    let rest = bytes.get(i..)?;
    Some(i + rest.iter().position(|&b| STRING_STOP[usize::from(b)])?)
}

/// A string's raw bytes between its quotes: valid UTF-8, with escapes still in when
/// `escaped`.
struct RawString<'a> {
    bytes: &'a [u8],
    escaped: bool,
}

struct Scanner<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Scanner<'a> {
    #[inline]
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    #[inline]
    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.pos += 1;
        }
    }

    /// The start of an object or array: `open` (consumed, with the whitespace after it),
    /// then `true` if `close` follows at once (consumed: the container is empty).
    #[inline]
    fn open(&mut self, open: u8, close: u8) -> Scan<bool> {
        if self.peek() != Some(open) {
            return Err(Bail);
        }
        self.pos += 1;
        self.ws();
        if self.peek() == Some(close) {
            self.pos += 1;
            return Ok(true);
        }
        Ok(false)
    }

    /// After an element of an object or array: a `,` (consumed, with the whitespace after
    /// it) means another element follows → `false`; `close` (consumed) ends it → `true`.
    #[inline]
    fn end_or_next(&mut self, close: u8) -> Scan<bool> {
        self.ws();
        match self.peek() {
            Some(b',') => {
                self.pos += 1;
                self.ws();
                Ok(false)
            }
            Some(c) if c == close => {
                self.pos += 1;
                Ok(true)
            }
            _ => Err(Bail),
        }
    }

    fn literal(&mut self, lit: &[u8]) -> Scan<()> {
        match self.bytes.get(self.pos..) {
            Some(rest) if rest.starts_with(lit) => {
                self.pos += lit.len();
                Ok(())
            }
            _ => Err(Bail),
        }
    }

    /// The object at the cursor, calling `member` with each key (raw, and whether it has
    /// escapes) once the cursor is at its value.
    fn object(
        &mut self,
        mut member: impl FnMut(&mut Self, &'a [u8], bool) -> Scan<()>,
    ) -> Scan<()> {
        if self.open(b'{', b'}')? {
            return Ok(());
        }
        loop {
            let RawString { bytes: key, escaped } = self.raw_string()?;
            self.ws();
            if self.peek() != Some(b':') {
                return Err(Bail);
            }
            self.pos += 1;
            self.ws();
            member(self, key, escaped)?;
            if self.end_or_next(b'}')? {
                return Ok(());
            }
        }
    }

    /// The array at the cursor, calling `elem` with the cursor at each element.
    fn array(&mut self, mut elem: impl FnMut(&mut Self) -> Scan<()>) -> Scan<()> {
        if self.open(b'[', b']')? {
            return Ok(());
        }
        loop {
            elem(self)?;
            if self.end_or_next(b']')? {
                return Ok(());
            }
        }
    }

    /// The string at the cursor, its escapes still in. Checks what serde_json checks of a
    /// string it deserializes: no control characters, valid escapes and UTF-8.
    fn raw_string(&mut self) -> Scan<RawString<'a>> {
        if self.peek() != Some(b'"') {
            return Err(Bail);
        }
        let start = self.pos + 1;
        let mut i = start;
        let mut escaped = false;
        let mut ascii = true;
        loop {
            i = skip_plain(self.bytes, i).ok_or(Bail)?;
            match *self.bytes.get(i).ok_or(Bail)? {
                b'"' => break,
                b'\\' => {
                    escaped = true;
                    match self.bytes.get(i + 1) {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => i += 2,
                        Some(b'u') => {
                            let hex = self.bytes.get(i + 2..i + 6).ok_or(Bail)?;
                            if !hex.iter().all(u8::is_ascii_hexdigit) {
                                return Err(Bail);
                            }
                            i += 6;
                        }
                        _ => return Err(Bail),
                    }
                }
                0..=0x1f => return Err(Bail),
                _ => {
                    ascii = false;
                    i += 1;
                }
            }
        }
        let bytes = self.bytes.get(start..i).ok_or(Bail)?;
        if !ascii && std::str::from_utf8(bytes).is_err() {
            return Err(Bail);
        }
        self.pos = i + 1;
        Ok(RawString { bytes, escaped })
    }

    /// The string at the cursor, unescaped (by serde_json, when it has escapes).
    fn string(&mut self) -> Scan<Cow<'a, str>> {
        let start = self.pos;
        let RawString { bytes, escaped } = self.raw_string()?;
        if !escaped {
            return std::str::from_utf8(bytes).map(Cow::Borrowed).map_err(|_| Bail);
        }
        let quoted = self.bytes.get(start..self.pos).ok_or(Bail)?;
        let quoted = std::str::from_utf8(quoted).map_err(|_| Bail)?;
        serde_json::from_str::<String>(quoted).map(Cow::Owned).map_err(|_| Bail)
    }

    /// Skips the value at the cursor, checking its syntax.
    fn skip_value(&mut self, depth: usize) -> Scan<()> {
        match self.peek() {
            Some(b'{' | b'[') if depth >= MAX_DEPTH => Err(Bail),
            Some(b'{') => self.object(|s, _, _| s.skip_value(depth + 1)),
            Some(b'[') => self.array(|s| s.skip_value(depth + 1)),
            Some(b'"') => self.raw_string().map(drop),
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            Some(b'-' | b'0'..=b'9') => {
                let (_, end) = number::scan(self.bytes, self.pos).ok_or(Bail)?;
                self.pos = end;
                Ok(())
            }
            _ => Err(Bail),
        }
    }

    /// The text of the value at the cursor, skipped.
    fn value_text(&mut self, depth: usize) -> Scan<&'a str> {
        let start = self.pos;
        self.skip_value(depth)?;
        let text = self.bytes.get(start..self.pos).ok_or(Bail)?;
        std::str::from_utf8(text).map_err(|_| Bail)
    }

    /// A parameters object, read by serde_json from its text so every value is typed
    /// exactly as the reference decoder types it (they are few and short).
    fn parameters(&mut self) -> Scan<Parameters> {
        if self.peek() != Some(b'{') {
            return Err(Bail);
        }
        let text = self.value_text(2)?;
        serde_json::from_str(text).map_err(|_| Bail)
    }

    /// A shape: integers that fit `i64`. serde_json reads `-0` as a float, so that is left
    /// to it (to refuse).
    fn shape(&mut self) -> Scan<Vec<i64>> {
        let mut shape = Vec::new();
        self.array(|s| {
            let (d, end) = number::scan(s.bytes, s.pos).ok_or(Bail)?;
            s.pos = end;
            if d.negative && d.mantissa == 0 {
                return Err(Bail);
            }
            let dim = d.to_i128().and_then(|v| i64::try_from(v).ok()).ok_or(Bail)?;
            shape.push(dim);
            Ok(())
        })?;
        Ok(shape)
    }

    /// One input tensor object, decoded and checked.
    fn tensor(&mut self, index: usize, cursor: &mut BinaryCursor<'_>) -> Scan<Tensor> {
        let mut parts = TensorParts::default();
        self.object(|s, key, escaped| {
            if escaped {
                return Err(Bail);
            }
            match key {
                b"name" => set_once(&mut parts.name, s.string()?.into_owned()),
                b"shape" => set_once(&mut parts.shape, s.shape()?),
                b"datatype" => set_once(&mut parts.datatype, s.string()?),
                b"parameters" => set_once(&mut parts.parameters, s.parameters()?),
                b"data" => {
                    let data = s.data(parts.datatype.as_deref(), parts.shape.as_deref())?;
                    set_once(&mut parts.data, data)
                }
                _ => s.skip_value(3),
            }
        })?;
        decode_tensor("input", index, parts, cursor).map_err(|_| Bail)
    }

    /// A tensor's `data`: parsed straight into its typed vector when the datatype and shape
    /// came before it (as every encoder writes them), else kept as text to parse once they
    /// are known.
    fn data(&mut self, datatype: Option<&str>, shape: Option<&[i64]>) -> Scan<WireData<'a>> {
        // `null` reads as no data in the reference decoder (an error there).
        if self.peek() == Some(b'n') {
            return Err(Bail);
        }
        let datatype = datatype.and_then(|d| d.parse::<DataType>().ok());
        match (datatype, shape) {
            (Some(datatype), Some(shape)) if !datatype.is_raw_only() => {
                // As in the reference decoder: the shape bounds the allocation only as far
                // as the remaining text could hold that many elements.
                let remaining = self.bytes.len().saturating_sub(self.pos);
                let hint = element_count("", shape).map_err(|_| Bail)?.min(remaining / 2 + 1);
                Ok(WireData::Parsed(self.typed_data(datatype, hint)?))
            }
            _ => Ok(WireData::Text(self.value_text(3)?)),
        }
    }

    fn typed_data(&mut self, datatype: DataType, hint: usize) -> Scan<TensorData> {
        Ok(match datatype {
            DataType::Bool => TensorData::Bool(self.elements(hint)?),
            DataType::Uint8 => TensorData::Uint8(self.elements(hint)?),
            DataType::Uint16 => TensorData::Uint16(self.elements(hint)?),
            DataType::Uint32 => TensorData::Uint32(self.elements(hint)?),
            DataType::Uint64 => TensorData::Uint64(self.elements(hint)?),
            DataType::Int8 => TensorData::Int8(self.elements(hint)?),
            DataType::Int16 => TensorData::Int16(self.elements(hint)?),
            DataType::Int32 => TensorData::Int32(self.elements(hint)?),
            DataType::Int64 => TensorData::Int64(self.elements(hint)?),
            DataType::Fp16 => TensorData::Fp16(self.elements(hint)?),
            DataType::Fp32 => TensorData::Fp32(self.elements(hint)?),
            DataType::Fp64 => TensorData::Fp64(self.elements(hint)?),
            DataType::Bf16 => TensorData::Bf16(self.elements(hint)?),
            DataType::Bytes => TensorData::Bytes(self.elements(hint)?),
        })
    }

    fn elements<T: JsonElem>(&mut self, hint: usize) -> Scan<Vec<T>> {
        let mut out = Vec::with_capacity(hint);
        self.nested(&mut out, 3)?;
        Ok(out)
    }

    /// A scalar or (nested) array of scalars, appended in row-major order.
    fn nested<T: JsonElem>(&mut self, out: &mut Vec<T>, depth: usize) -> Scan<()> {
        if self.peek() != Some(b'[') {
            return self.scalar(out);
        }
        if depth >= MAX_DEPTH {
            return Err(Bail);
        }
        if self.open(b'[', b']')? {
            return Ok(());
        }
        // `array` and `scalar` written out, with numbers (nearly every element) first.
        loop {
            match self.peek() {
                Some(b'-' | b'0'..=b'9') => {
                    let start = self.pos;
                    let (d, end) = number::scan(self.bytes, start).ok_or(Bail)?;
                    self.pos = end;
                    let tok = self.bytes.get(start..end).unwrap_or_default();
                    out.push(T::from_decimal(&d, tok).map_err(|_| Bail)?);
                }
                Some(b'[') => self.nested(out, depth + 1)?,
                _ => self.scalar(out)?,
            }
            if self.end_or_next(b']')? {
                return Ok(());
            }
        }
    }

    /// One element.
    #[inline]
    fn scalar<T: JsonElem>(&mut self, out: &mut Vec<T>) -> Scan<()> {
        let elem = match self.peek() {
            Some(b'-' | b'0'..=b'9') => {
                let start = self.pos;
                let (d, end) = number::scan(self.bytes, start).ok_or(Bail)?;
                self.pos = end;
                T::from_decimal(&d, self.bytes.get(start..end).unwrap_or_default())
            }
            Some(b'"') => T::from_string(self.string()?),
            Some(b't') => {
                self.literal(b"true")?;
                T::from_bool(true)
            }
            Some(b'f') => {
                self.literal(b"false")?;
                T::from_bool(false)
            }
            Some(b'n') => {
                self.literal(b"null")?;
                T::from_null()
            }
            _ => return Err(Bail),
        };
        out.push(elem.map_err(|_| Bail)?);
        Ok(())
    }

    /// One requested output.
    fn requested_output(&mut self) -> Scan<RequestedOutput> {
        let mut name = None;
        let mut parameters = None;
        self.object(|s, key, escaped| {
            if escaped {
                return Err(Bail);
            }
            match key {
                b"name" => set_once(&mut name, s.string()?.into_owned()),
                b"parameters" => set_once(&mut parameters, s.parameters()?),
                _ => s.skip_value(3),
            }
        })?;
        Ok(RequestedOutput { name: name.ok_or(Bail)?, parameters: parameters.unwrap_or_default() })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::{STRING_STOP, skip_plain};

    fn by_table(bytes: &[u8], i: usize) -> Option<usize> {
        let rest = bytes.get(i..)?;
        Some(i + rest.iter().position(|&b| STRING_STOP[usize::from(b)])?)
    }

    #[test]
    fn stops_at_quotes_backslashes_controls_and_non_ascii() {
        assert_eq!(skip_plain(b"name\":1", 0), Some(4));
        assert_eq!(skip_plain(b"abcdefghijkl\\n", 0), Some(12));
        assert_eq!(skip_plain(b"abcdefgh\x1fx", 2), Some(8));
        assert_eq!(skip_plain("abcdefgh\u{e9}".as_bytes(), 0), Some(8));
        assert_eq!(skip_plain(b"\x7f\x7f !#~ plain", 0), None);
        assert_eq!(skip_plain(b"\"", 1), None);
        assert_eq!(skip_plain(b"", 0), None);
    }

    proptest! {
        #[test]
        fn eight_at_a_time_agrees_with_the_table(
            bytes in proptest::collection::vec(
                prop_oneof![4 => 0x20u8..0x7f, 1 => any::<u8>(), 1 => Just(b'"'), 1 => Just(b'\\')],
                0..40,
            ),
            start in 0usize..41,
        ) {
            prop_assert_eq!(skip_plain(&bytes, start), by_table(&bytes, start));
        }
    }
}
