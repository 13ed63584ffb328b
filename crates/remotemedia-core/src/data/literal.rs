//! Integer literals of JSON text that a 64-bit int cannot hold.
//!
//! serde_json (without its workspace-wide `arbitrary_precision` feature) reads an
//! integer too large for `u64` as the nearest `f64`, so `123456789012345678901234567890`
//! would silently become a float while `18446744073709551615` is refused. The parsed
//! value cannot tell `1e29` from that literal; the text can. Callers parse as usual and
//! look at the text only when the value holds a float of integer magnitude
//! ([`has_wide_float`]): the scan runs on almost no input, and, the text being valid
//! JSON already, a simple lexer finds each number token exactly (never one inside a
//! string).

use serde_json::Value;

/// Floats at least this large (2^63) may have been written as integers.
const WIDE: f64 = 9_223_372_036_854_775_808.0;

/// Whether `value` holds a float as large as 2^63: one that may have been an integer
/// literal too large for serde_json's integers.
pub fn has_wide_float(value: &Value) -> bool {
    match value {
        Value::Number(n) => n.is_f64() && n.as_f64().is_some_and(|f| f.abs() >= WIDE),
        Value::Array(items) => items.iter().any(has_wide_float),
        Value::Object(map) => map.values().any(has_wide_float),
        _ => false,
    }
}

/// A step of the path to a value in a JSON document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// An object's member.
    Key(String),
    /// An array's element.
    Index(usize),
}

/// An integer literal that does not fit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BigInteger {
    /// Where it is in the document.
    pub path: Vec<Step>,
    /// The literal as written.
    pub literal: String,
    /// 1-based line of the literal.
    pub line: usize,
    /// 1-based column (in characters) of the literal.
    pub column: usize,
}

impl BigInteger {
    /// The path written as `$`, `$.a[2]` (the form of [`crate::JsonFormError`]).
    pub fn data_path(&self) -> String {
        let mut p = String::from("$");
        for step in &self.path {
            match step {
                Step::Key(k) => {
                    p.push('.');
                    p.push_str(k);
                }
                Step::Index(i) => p.push_str(&format!("[{i}]")),
            }
        }
        p
    }
}

/// One open container while lexing.
enum Frame {
    Object { key: Option<String>, want_key: bool },
    Array { index: usize },
}

/// The first integer literal (no fraction, no exponent) of `text`, which must be valid
/// JSON, for which `fits` is false.
pub fn find_big_integer(text: &str, fits: impl Fn(&str) -> bool) -> Option<BigInteger> {
    let bytes = text.as_bytes();
    let mut stack: Vec<Frame> = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'{' => stack.push(Frame::Object {
                key: None,
                want_key: true,
            }),
            b'[' => stack.push(Frame::Array { index: 0 }),
            b'}' | b']' => {
                stack.pop();
            }
            b',' => match stack.last_mut() {
                Some(Frame::Array { index }) => *index += 1,
                Some(Frame::Object { want_key, .. }) => *want_key = true,
                None => {}
            },
            b'"' => {
                let start = i;
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                if let Some(Frame::Object { key, want_key }) = stack.last_mut() {
                    if *want_key {
                        let raw = text.get(start..=i.min(bytes.len() - 1)).unwrap_or("");
                        *key = serde_json::from_str(raw).ok();
                        *want_key = false;
                    }
                }
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                while i + 1 < bytes.len()
                    && matches!(bytes[i + 1], b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')
                {
                    i += 1;
                }
                let literal = &text[start..=i];
                let integer = !literal.contains(['.', 'e', 'E']);
                if integer && !fits(literal) {
                    let before = &text[..start];
                    let line = before.matches('\n').count() + 1;
                    let line_start = before.rfind('\n').map_or(0, |p| p + 1);
                    return Some(BigInteger {
                        path: stack
                            .iter()
                            .filter_map(|f| match f {
                                Frame::Object { key, .. } => key.clone().map(Step::Key),
                                Frame::Array { index } => Some(Step::Index(*index)),
                            })
                            .collect(),
                        literal: literal.to_string(),
                        line,
                        column: text[line_start..start].chars().count() + 1,
                    });
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fits_i64(s: &str) -> bool {
        s.parse::<i64>().is_ok()
    }

    #[test]
    fn finds_the_literal_and_its_path() {
        let text = "{\"a\": [1, 2.5e300, \"12345678901234567890123\"],\n \"b,\\\"\": {\"c\": [0, -123456789012345678901234567890]}}";
        let big = find_big_integer(text, fits_i64).unwrap();
        assert_eq!(big.literal, "-123456789012345678901234567890");
        assert_eq!(big.data_path(), "$.b,\".c[1]");
        assert_eq!((big.line, big.column), (2, 20));
        assert_eq!(
            find_big_integer("[9223372036854775807, 1e30, 1.0]", fits_i64),
            None
        );
        let top = find_big_integer("18446744073709551616", fits_i64).unwrap();
        assert_eq!(top.data_path(), "$");
    }

    #[test]
    fn only_floats_of_integer_magnitude_call_for_a_scan() {
        let v = |t: &str| serde_json::from_str::<Value>(t).unwrap();
        assert!(has_wide_float(&v(
            "{\"a\": [123456789012345678901234567890]}"
        )));
        assert!(has_wide_float(&v("1e19")));
        assert!(!has_wide_float(&v("[1.5, 18446744073709551615, \"x\"]")));
    }
}
