//! Lossless JSON form of [`Data`].
//!
//! Plain JSON maps onto the obvious variants (integers that fit `i64` → int, other
//! numbers → float). Values JSON cannot express are written as single-key tagged maps:
//!
//! | value | JSON form |
//! |---|---|
//! | bytes | `{"$bytes": "<base64>"}` |
//! | audio | `{"$audio": {"sample_rate": 16000, "channels": 1, "pts_us": 0, "samples": "<base64 of f32 little-endian>"}}` (`pts_us` optional, default 0) |
//! | tensor | `{"$tensor": {"shape": [2, 3], "dtype": "float32", "data": "<base64 little-endian, C order>"}}` |
//! | NaN / ±infinity | `{"$float": "nan"}`, `{"$float": "inf"}`, `{"$float": "-inf"}` |
//! | a map whose only key is one of the tags above | `{"$map": {…the map…}}` |
//!
//! Base64 is the standard alphabet with padding.

use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use bytes::Bytes;
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use serde_json::Value;

use super::{AudioBuffer, DType, Data, DataMap, Tensor};

/// Tags that mark a map as the JSON form of a non-JSON value.
pub const RESERVED_TAGS: [&str; 5] = ["$bytes", "$audio", "$tensor", "$float", "$map"];

/// A JSON value that is not a valid JSON form of [`Data`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{path}: {message}")]
pub struct JsonFormError {
    /// Where in the value (`$`, `$.a[2]`).
    pub path: String,
    /// What is wrong.
    pub message: String,
}

fn err(path: &str, message: impl Into<String>) -> JsonFormError {
    JsonFormError {
        path: path.to_string(),
        message: message.into(),
    }
}

impl Data {
    /// Converts a JSON value into data (see the module docs for the tagged forms).
    pub fn from_json(value: &Value) -> Result<Data, JsonFormError> {
        from_json_at(value, "$", 0)
    }

    /// Parses JSON text into data. An integer literal too large for `i64` is refused
    /// however large it is (serde_json alone reads one beyond `u64` as a float).
    pub fn from_json_str(text: &str) -> Result<Data, JsonFormError> {
        let value: Value = serde_json::from_str(text).map_err(|e| err("$", e.to_string()))?;
        check_integer_literals(text, &value)?;
        Data::from_json(&value)
    }

    /// Converts data into its JSON form.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).expect("Data always serializes")
    }

    /// Renders the JSON form as compact text.
    pub fn to_json_string(&self) -> String {
        serde_json::to_string(self).expect("Data always serializes")
    }
}

/// Refuses an integer literal of `text` (JSON, parsed into `value`) that does not fit
/// `i64`, as [`Data::from_json`] refuses one that serde_json read as a `u64`: for
/// literals beyond `u64`, which serde_json reads as floats. Looks at the text only when
/// `value` holds a float of integer magnitude.
pub fn check_integer_literals(text: &str, value: &Value) -> Result<(), JsonFormError> {
    if !super::literal::has_wide_float(value) {
        return Ok(());
    }
    match super::literal::find_big_integer(text, |l| l.parse::<i64>().is_ok()) {
        Some(big) => Err(err(&big.data_path(), too_big(&big.literal))),
        None => Ok(()),
    }
}

fn too_big(literal: &str) -> String {
    format!("integer {literal} does not fit a signed 64-bit int")
}

/// `value` at `path`, inside `depth` lists and maps.
fn from_json_at(value: &Value, path: &str, depth: usize) -> Result<Data, JsonFormError> {
    if value.is_array() || value.is_object() {
        super::check_container_depth(depth).map_err(|m| err(path, m))?;
    }
    Ok(match value {
        Value::Null => Data::Null,
        Value::Bool(b) => Data::Bool(*b),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Data::Int(i)
            } else if n.is_u64() {
                return Err(err(path, too_big(&n.to_string())));
            } else {
                Data::Float(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Value::String(s) => Data::text(s),
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                out.push(from_json_at(item, &format!("{path}[{i}]"), depth + 1)?);
            }
            Data::list(out)
        }
        Value::Object(obj) => {
            if obj.len() == 1 {
                let (key, inner) = obj.iter().next().expect("one entry");
                if RESERVED_TAGS.contains(&key.as_str()) {
                    return tagged(key, inner, &format!("{path}.{key}"), depth);
                }
            }
            let mut map = DataMap::with_capacity(obj.len());
            for (k, v) in obj {
                map.insert(
                    k.clone(),
                    from_json_at(v, &format!("{path}.{k}"), depth + 1)?,
                );
            }
            Data::map(map)
        }
    })
}

fn tagged(tag: &str, inner: &Value, path: &str, depth: usize) -> Result<Data, JsonFormError> {
    match tag {
        "$bytes" => Ok(Data::Bytes(Bytes::from(decode_b64(inner, path)?))),
        "$float" => match inner.as_str() {
            Some("nan") => Ok(Data::Float(f64::NAN)),
            Some("inf") => Ok(Data::Float(f64::INFINITY)),
            Some("-inf") => Ok(Data::Float(f64::NEG_INFINITY)),
            _ => Err(err(path, "expected \"nan\", \"inf\" or \"-inf\"")),
        },
        "$map" => {
            let obj = inner
                .as_object()
                .ok_or_else(|| err(path, "expected an object"))?;
            let mut map = DataMap::with_capacity(obj.len());
            for (k, v) in obj {
                map.insert(
                    k.clone(),
                    from_json_at(v, &format!("{path}.{k}"), depth + 1)?,
                );
            }
            Ok(Data::map(map))
        }
        "$audio" => {
            let obj = inner.as_object().ok_or_else(|| {
                err(
                    path,
                    "expected an object with sample_rate, channels, samples",
                )
            })?;
            let sample_rate = field_u64(obj, "sample_rate", path)?;
            let channels = field_u64(obj, "channels", path)?;
            let sample_rate = u32::try_from(sample_rate)
                .map_err(|_| err(&format!("{path}.sample_rate"), "does not fit u32"))?;
            let channels = u16::try_from(channels)
                .ok()
                .filter(|c| *c > 0)
                .ok_or_else(|| err(&format!("{path}.channels"), "must be between 1 and 65535"))?;
            let spath = format!("{path}.samples");
            let raw = decode_b64(
                obj.get("samples")
                    .ok_or_else(|| err(path, "missing field `samples`"))?,
                &spath,
            )?;
            if raw.len() % 4 != 0 {
                return Err(err(&spath, "byte length is not a multiple of 4 (f32)"));
            }
            let samples: Vec<f32> = raw
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            if !samples.len().is_multiple_of(channels as usize) {
                return Err(err(
                    &spath,
                    format!(
                        "{} samples cannot be split into {channels} channels",
                        samples.len()
                    ),
                ));
            }
            let pts_us = match obj.get("pts_us") {
                None | Some(Value::Null) => 0,
                Some(v) => v.as_i64().ok_or_else(|| {
                    err(
                        &format!("{path}.pts_us"),
                        "must be an integer (microseconds from stream start)",
                    )
                })?,
            };
            Ok(Data::Audio(Arc::new(
                AudioBuffer::new(samples, sample_rate, channels).with_pts(pts_us),
            )))
        }
        "$tensor" => {
            let obj = inner
                .as_object()
                .ok_or_else(|| err(path, "expected an object with shape, dtype, data"))?;
            let shape = obj
                .get("shape")
                .and_then(Value::as_array)
                .ok_or_else(|| err(path, "missing or non-list field `shape`"))?
                .iter()
                .map(|d| d.as_u64().map(|d| d as usize))
                .collect::<Option<Vec<usize>>>()
                .ok_or_else(|| {
                    err(
                        &format!("{path}.shape"),
                        "dimensions must be non-negative integers",
                    )
                })?;
            let dtype_name = obj
                .get("dtype")
                .and_then(Value::as_str)
                .ok_or_else(|| err(path, "missing or non-string field `dtype`"))?;
            let dtype = DType::from_name(dtype_name).ok_or_else(|| {
                let names: Vec<&str> = DType::ALL.iter().map(|d| d.name()).collect();
                err(
                    &format!("{path}.dtype"),
                    format!(
                        "unknown dtype `{dtype_name}`; expected one of {}",
                        names.join(", ")
                    ),
                )
            })?;
            let raw = decode_b64(
                obj.get("data")
                    .ok_or_else(|| err(path, "missing field `data`"))?,
                &format!("{path}.data"),
            )?;
            let tensor = Tensor::new(shape, dtype, Bytes::from(raw))
                .map_err(|e| err(path, e.to_string()))?;
            Ok(Data::Tensor(Arc::new(tensor)))
        }
        _ => unreachable!("only reserved tags reach here"),
    }
}

fn field_u64(
    obj: &serde_json::Map<String, Value>,
    name: &str,
    path: &str,
) -> Result<u64, JsonFormError> {
    obj.get(name)
        .and_then(Value::as_u64)
        .ok_or_else(|| err(path, format!("missing or non-integer field `{name}`")))
}

fn decode_b64(value: &Value, path: &str) -> Result<Vec<u8>, JsonFormError> {
    let s = value
        .as_str()
        .ok_or_else(|| err(path, "expected a base64 string"))?;
    B64.decode(s)
        .map_err(|e| err(path, format!("invalid base64: {e}")))
}

impl Serialize for Data {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Data::Null => s.serialize_unit(),
            Data::Bool(b) => s.serialize_bool(*b),
            Data::Int(i) => s.serialize_i64(*i),
            Data::Float(f) => {
                if f.is_finite() {
                    s.serialize_f64(*f)
                } else {
                    let tag = if f.is_nan() {
                        "nan"
                    } else if *f > 0.0 {
                        "inf"
                    } else {
                        "-inf"
                    };
                    let mut m = s.serialize_map(Some(1))?;
                    m.serialize_entry("$float", tag)?;
                    m.end()
                }
            }
            Data::Text(t) => s.serialize_str(t),
            Data::Bytes(b) => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("$bytes", &B64.encode(b))?;
                m.end()
            }
            Data::List(items) | Data::Tuple(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items.iter() {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Data::Map(map) => {
                let needs_escape = map.len() == 1
                    && RESERVED_TAGS.contains(&map.keys().next().expect("one").as_str());
                if needs_escape {
                    let mut m = s.serialize_map(Some(1))?;
                    m.serialize_entry("$map", &PlainMap(map))?;
                    m.end()
                } else {
                    PlainMap(map).serialize(s)
                }
            }
            Data::Audio(a) => {
                let mut raw = Vec::with_capacity(a.samples.len() * 4);
                for v in a.samples.iter() {
                    raw.extend_from_slice(&v.to_le_bytes());
                }
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry(
                    "$audio",
                    &serde_json::json!({
                        "sample_rate": a.sample_rate,
                        "channels": a.channels,
                        "pts_us": a.pts_us,
                        "samples": B64.encode(raw),
                    }),
                )?;
                m.end()
            }
            Data::Tensor(t) => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry(
                    "$tensor",
                    &serde_json::json!({
                        "shape": t.shape,
                        "dtype": t.dtype.name(),
                        "data": B64.encode(&t.data),
                    }),
                )?;
                m.end()
            }
        }
    }
}

struct PlainMap<'a>(&'a DataMap);

impl Serialize for PlainMap<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(d: &Data) -> Data {
        Data::from_json_str(&d.to_json_string()).unwrap()
    }

    fn same(a: &Data, b: &Data) -> bool {
        // NaN != NaN, so compare JSON text for that case.
        a == b || a.to_json_string() == b.to_json_string()
    }

    /// `depth` lists (or maps, or both alternating) around a scalar.
    fn nested(depth: usize, map_every: usize) -> String {
        let mut text = "1".to_string();
        for level in 0..depth {
            text = if map_every > 0 && level % map_every == 0 {
                format!("{{\"k\": {text}}}")
            } else {
                format!("[{text}]")
            };
        }
        text
    }

    #[test]
    fn a_tensor_shape_that_overflows_is_an_error_not_a_panic() {
        let e = Data::from_json_str(
            r#"{"$tensor": {"shape": [4611686018427387904, 4], "dtype": "float32", "data": ""}}"#,
        )
        .unwrap_err();
        assert_eq!(
            e.message,
            "tensor of shape [4611686018427387904, 4] and dtype float32 needs more bytes than \
             this machine can address, got 0"
        );
    }

    #[test]
    fn nesting_is_bounded_by_max_depth() {
        use crate::data::MAX_DEPTH;
        for map_every in [0, 1, 2] {
            let ok = Data::from_json_str(&nested(MAX_DEPTH, map_every)).unwrap();
            assert_eq!(ok.depth(), MAX_DEPTH);
            let e = Data::from_json_str(&nested(MAX_DEPTH + 1, map_every)).unwrap_err();
            assert_eq!(e.message, "value is nested deeper than 32 levels");
        }
        // Empty containers count too.
        let empty = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        assert!(Data::from_json_str(&empty).is_err());
        let e = Data::from_json_str(&format!(
            "{{\"$map\": {{\"a\": {}}}}}",
            nested(MAX_DEPTH, 0)
        ))
        .unwrap_err();
        assert!(e.path.starts_with("$.$map.a"), "{}", e.path);
    }

    #[test]
    fn every_variant_round_trips() {
        let values = vec![
            Data::Null,
            Data::Bool(true),
            Data::Int(i64::MIN),
            Data::Int(i64::MAX),
            Data::Float(1.0),
            Data::Float(-0.1),
            Data::Float(f64::NAN),
            Data::Float(f64::INFINITY),
            Data::Float(f64::NEG_INFINITY),
            Data::text("héllo"),
            Data::Bytes(Bytes::from_static(b"\x00\xffabc")),
            Data::list(vec![Data::Int(1), Data::text("a")]),
            Data::map_from([("b", Data::Int(1)), ("a", Data::Int(2))]),
            Data::map_from([("$bytes", Data::text("not bytes"))]),
            Data::map_from([("$map", Data::Int(3))]),
            Data::from(
                AudioBuffer::new(vec![0.25f32, -1.0, 0.5, 1e-7], 48_000, 2).with_pts(1_234_567),
            ),
            Data::from(
                Tensor::new(
                    vec![2, 2],
                    DType::I16,
                    Bytes::from(vec![1u8, 0, 2, 0, 3, 0, 4, 0]),
                )
                .unwrap(),
            ),
        ];
        for v in &values {
            let back = round_trip(v);
            assert!(same(v, &back), "{v:?} came back as {back:?}");
        }
    }

    #[test]
    fn audio_time_is_optional_on_input() {
        let old = r#"{"$audio": {"sample_rate": 8000, "channels": 1, "samples": "AAAAAA=="}}"#;
        let Data::Audio(a) = Data::from_json_str(old).unwrap() else {
            panic!("not audio")
        };
        assert_eq!((a.pts_us, a.frames()), (0, 1));
        let timed = r#"{"$audio": {"sample_rate": 8000, "channels": 1, "pts_us": 20000, "samples": "AAAAAA=="}}"#;
        let Data::Audio(a) = Data::from_json_str(timed).unwrap() else {
            panic!("not audio")
        };
        assert_eq!((a.pts_us, a.end_pts_us()), (20_000, 20_125));
        let bad =
            r#"{"$audio": {"sample_rate": 8000, "channels": 1, "pts_us": 1.5, "samples": ""}}"#;
        assert_eq!(
            Data::from_json_str(bad).unwrap_err().to_string(),
            "$.$audio.pts_us: must be an integer (microseconds from stream start)"
        );
    }

    #[test]
    fn float_stays_float() {
        assert_eq!(Data::Float(2.0).to_json_string(), "2.0");
        assert_eq!(Data::from_json_str("2.0").unwrap(), Data::Float(2.0));
        assert_eq!(Data::from_json_str("2").unwrap(), Data::Int(2));
    }

    #[test]
    fn map_order_is_kept() {
        let d = Data::from_json_str(r#"{"z":1,"a":2}"#).unwrap();
        assert_eq!(d.to_json_string(), r#"{"z":1,"a":2}"#);
    }

    #[test]
    fn bad_forms_are_reported_with_path() {
        let e = Data::from_json_str(r#"{"x":[1,{"$bytes":"!!"}]}"#).unwrap_err();
        assert!(
            e.to_string().starts_with("$.x[1].$bytes: invalid base64"),
            "{e}"
        );
        let e = Data::from_json_str("18446744073709551615").unwrap_err();
        assert_eq!(
            e.to_string(),
            "$: integer 18446744073709551615 does not fit a signed 64-bit int"
        );
        let e = Data::from_json_str("[1, 123456789012345678901234567890]").unwrap_err();
        assert_eq!(
            e.to_string(),
            "$[1]: integer 123456789012345678901234567890 does not fit a signed 64-bit int"
        );
        assert_eq!(Data::from_json_str("1e30").unwrap(), Data::Float(1e30));
        let e = Data::from_json_str(r#"{"$tensor":{"shape":[2],"dtype":"float32","data":""}}"#)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "$.$tensor: tensor of shape [2] and dtype float32 needs 8 bytes, got 0"
        );
    }
}
