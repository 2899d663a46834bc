//! A small UBJSON (Universal Binary JSON, draft 12) reader, enough for XGBoost's `model.ubj`.
//!
//! It decodes into [`serde_json::Value`] so the XGBoost loader reads JSON and UBJSON models
//! through one path. XGBoost writes big-endian scalars and optimised containers
//! (`[$<type>#<count>` typed arrays, `[#<count>` counted arrays), all handled here. Malformed
//! input is an error, never a panic: counts are checked against the bytes left before
//! anything is allocated and nesting depth is bounded.

use serde_json::{Map, Number, Value};

/// Deepest container nesting accepted (XGBoost models nest about 6 levels).
const MAX_DEPTH: usize = 128;

/// Decodes one UBJSON value that must span all of `bytes`.
pub(crate) fn parse(bytes: &[u8]) -> Result<Value, String> {
    let mut reader = Reader { bytes, pos: 0 };
    let value = reader.value(0)?;
    reader.skip_noops();
    if reader.pos != bytes.len() {
        return Err(format!("ubjson: {} unexpected trailing bytes", bytes.len() - reader.pos));
    }
    Ok(value)
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        if n > self.remaining() {
            return Err(format!(
                "ubjson: truncated at byte {}: needs {n} more bytes, {} left",
                self.pos,
                self.remaining()
            ));
        }
        let slice = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(slice)
    }

    fn byte(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn skip_noops(&mut self) {
        while self.peek() == Some(b'N') {
            self.pos += 1;
        }
    }

    /// The marker of the next value, skipping no-op markers.
    fn marker(&mut self) -> Result<u8, String> {
        self.skip_noops();
        self.byte()
    }

    /// A value whose type marker is `marker` (already read).
    fn typed(&mut self, marker: u8, depth: usize) -> Result<Value, String> {
        Ok(match marker {
            b'Z' => Value::Null,
            b'T' => Value::Bool(true),
            b'F' => Value::Bool(false),
            b'i' | b'U' | b'I' | b'l' | b'L' => Value::Number(self.integer(marker)?.into()),
            b'd' => float(f64::from(f32::from_be_bytes(self.array()?))),
            b'D' => float(f64::from_be_bytes(self.array()?)),
            b'C' => Value::String(char::from(self.byte()?).to_string()),
            b'S' => Value::String(self.string()?),
            b'H' => {
                let text = self.string()?;
                let number = text.parse::<f64>().map_err(|_| {
                    format!("ubjson: high-precision number {text:?} is not a number")
                })?;
                float(number)
            }
            b'[' => self.container(depth + 1, false)?,
            b'{' => self.container(depth + 1, true)?,
            other => {
                return Err(format!(
                    "ubjson: unknown type marker {:?} at byte {}",
                    char::from(other),
                    self.pos - 1
                ));
            }
        })
    }

    fn value(&mut self, depth: usize) -> Result<Value, String> {
        let marker = self.marker()?;
        self.typed(marker, depth)
    }

    fn integer(&mut self, marker: u8) -> Result<i64, String> {
        Ok(match marker {
            b'i' => i64::from(i8::from_be_bytes(self.array()?)),
            b'U' => i64::from(self.byte()?),
            b'I' => i64::from(i16::from_be_bytes(self.array()?)),
            b'l' => i64::from(i32::from_be_bytes(self.array()?)),
            b'L' => i64::from_be_bytes(self.array()?),
            other => {
                return Err(format!(
                    "ubjson: expected an integer marker at byte {}, found {:?}",
                    self.pos - 1,
                    char::from(other)
                ));
            }
        })
    }

    /// A length or count: an integer with its own marker, not negative.
    fn length(&mut self) -> Result<usize, String> {
        let marker = self.marker()?;
        let n = self.integer(marker)?;
        usize::try_from(n).map_err(|_| format!("ubjson: negative length {n} at byte {}", self.pos))
    }

    /// A string body (length, then UTF-8 bytes): string values and object keys.
    fn string(&mut self) -> Result<String, String> {
        let len = self.length()?;
        let at = self.pos;
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec())
            .map_err(|_| format!("ubjson: string at byte {at} is not utf-8"))
    }

    /// The body of an array or object after its opening marker.
    fn container(&mut self, depth: usize, object: bool) -> Result<Value, String> {
        if depth > MAX_DEPTH {
            return Err(format!("ubjson: containers nested deeper than {MAX_DEPTH}"));
        }
        let mut element_type = None;
        if self.peek() == Some(b'$') {
            self.pos += 1;
            element_type = Some(self.byte()?);
        }
        let count = if self.peek() == Some(b'#') {
            self.pos += 1;
            Some(self.length()?)
        } else {
            None
        };
        if element_type.is_some() && count.is_none() {
            return Err(format!("ubjson: typed container at byte {} has no count", self.pos));
        }
        // Every element takes at least one byte (markerless scalars of types without payload
        // aside), so a count beyond the bytes left cannot be honest: refuse it before
        // allocating.
        let payload_free = matches!(element_type, Some(b'Z' | b'T' | b'F' | b'N'));
        if let Some(count) = count
            && !payload_free
            && count > self.remaining()
        {
            return Err(format!(
                "ubjson: container at byte {} claims {count} elements but only {} bytes are left",
                self.pos,
                self.remaining()
            ));
        }
        if payload_free && count.is_some_and(|c| c > 1 << 20) {
            return Err("ubjson: implausibly large container of empty values".to_owned());
        }
        let next = |reader: &mut Self| match element_type {
            Some(marker) => reader.typed(marker, depth),
            None => reader.value(depth),
        };
        if object {
            let mut map = Map::new();
            match count {
                Some(count) => {
                    for _ in 0..count {
                        let key = self.string()?;
                        let value = next(self)?;
                        map.insert(key, value);
                    }
                }
                None => loop {
                    self.skip_noops();
                    if self.peek() == Some(b'}') {
                        self.pos += 1;
                        break;
                    }
                    let key = self.string()?;
                    let value = next(self)?;
                    map.insert(key, value);
                },
            }
            Ok(Value::Object(map))
        } else {
            match count {
                Some(count) => {
                    let mut items = Vec::with_capacity(count);
                    for _ in 0..count {
                        items.push(next(self)?);
                    }
                    Ok(Value::Array(items))
                }
                None => {
                    let mut items = Vec::new();
                    loop {
                        let marker = self.marker()?;
                        if marker == b']' {
                            break;
                        }
                        items.push(self.typed(marker, depth)?);
                    }
                    Ok(Value::Array(items))
                }
            }
        }
    }
}

/// A JSON number, or null for NaN and infinities (which JSON cannot hold).
fn float(v: f64) -> Value {
    Number::from_f64(v).map_or(Value::Null, Value::Number)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn decodes_scalars_strings_and_plain_containers() {
        // {"a": [1, -2, 300, true, null, "hi"], "b": 1.5}
        let mut bytes = b"{i\x01a[U\x01i\xfeI\x01\x2cTZSi\x02hi]i\x01bD".to_vec();
        bytes.extend_from_slice(&1.5f64.to_be_bytes());
        bytes.push(b'}');
        assert_eq!(parse(&bytes).unwrap(), json!({"a": [1, -2, 300, true, null, "hi"], "b": 1.5}));
    }

    #[test]
    fn decodes_typed_and_counted_containers() {
        // [$d#i\x02 <f32 0.25> <f32 -3>] then {#U\x01 i\x01k l<7>} inside a counted array
        let mut bytes = b"[#i\x02[$d#i\x02".to_vec();
        bytes.extend_from_slice(&0.25f32.to_be_bytes());
        bytes.extend_from_slice(&(-3.0f32).to_be_bytes());
        bytes.extend_from_slice(b"{#U\x01i\x01kl\x00\x00\x00\x07");
        assert_eq!(parse(&bytes).unwrap(), json!([[0.25, -3.0], {"k": 7}]));
        // A typed array of uint8 and a typed object of strings.
        assert_eq!(parse(b"[$U#i\x03\x01\x00\xff").unwrap(), json!([1, 0, 255]));
        assert_eq!(parse(b"{$S#i\x01i\x01xi\x01y").unwrap(), json!({"x": "y"}));
        assert_eq!(parse(b"[#L\x00\x00\x00\x00\x00\x00\x00\x00").unwrap(), json!([]));
    }

    #[test]
    fn rejects_malformed_input_without_panicking() {
        for bad in [
            &b""[..],
            b"[",
            b"{i\x01a",
            b"Si\x05ab",
            b"[$d#i\x02\x00\x00",
            b"[$d#l\x7f\xff\xff\xff",
            b"[#i\xff",
            b"X",
            b"[]]",
            b"Si\x02\xff\xfe",
            b"[$Z",
        ] {
            assert!(parse(bad).is_err(), "accepted {bad:?}");
        }
        let deep = vec![b'['; 10_000];
        assert!(parse(&deep).unwrap_err().contains("nested"));
    }
}
