//! JSON Lines in and out.

use std::io::{BufRead, Write};

use remotemedia_core::Data;

/// A line of input that is not a valid item.
#[derive(Debug)]
pub struct BadLine {
    /// 1-based line number.
    pub line: u64,
    /// What is wrong with it.
    pub message: String,
}

/// Reads items from JSON Lines, one per non-blank line, handing them to `sink` in
/// batches of up to `batch` items. `sink` returns false to stop early. Returns the
/// number of items read.
pub fn read_items(
    mut reader: impl BufRead,
    batch: usize,
    mut sink: impl FnMut(Vec<Data>) -> bool,
) -> Result<u64, BadLine> {
    let mut line_no = 0u64;
    let mut count = 0u64;
    let mut buf = String::new();
    let mut pending = Vec::with_capacity(batch);
    loop {
        buf.clear();
        let n = reader.read_line(&mut buf).map_err(|e| BadLine {
            line: line_no + 1,
            message: format!("cannot read input: {e}"),
        })?;
        if n == 0 {
            break;
        }
        line_no += 1;
        let text = buf.trim();
        if text.is_empty() {
            continue;
        }
        match parse_line(text) {
            Ok(item) => {
                pending.push(item);
                count += 1;
                if pending.len() >= batch && !sink(std::mem::take(&mut pending)) {
                    return Ok(count);
                }
            }
            Err(e) => {
                // Items read before the bad line still go through the pipeline.
                if !pending.is_empty() {
                    sink(std::mem::take(&mut pending));
                }
                return Err(BadLine {
                    line: line_no,
                    message: e,
                });
            }
        }
    }
    if !pending.is_empty() {
        sink(pending);
    }
    Ok(count)
}

/// Longest start of a bad line quoted in its error.
const LINE_PREVIEW_CHARS: usize = 40;

/// One line as an item: JSON text first (its error says so and shows the start of the
/// line), then the item's JSON form.
fn parse_line(text: &str) -> Result<Data, String> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        let mut start: String = text.chars().take(LINE_PREVIEW_CHARS).collect();
        if start.len() < text.len() {
            start.push('…');
        }
        // One line per item: the line number is the input's, the column serde's.
        format!(
            "not valid JSON ({} at column {}): {start}",
            describe(&e),
            e.column()
        )
    })?;
    Data::from_json(&value).map_err(|e| e.to_string())
}

/// serde_json's message without its own `at line L column C`.
fn describe(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.rfind(" at line ") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

/// Writes one output line: the item itself, or `{"sink", "item"}` when the pipeline
/// has several sinks.
pub fn write_item(out: &mut impl Write, sink: Option<&str>, item: &Data) -> std::io::Result<()> {
    match sink {
        None => serde_json::to_writer(&mut *out, item)?,
        Some(s) => serde_json::to_writer(&mut *out, &serde_json::json!({"sink": s, "item": item}))?,
    }
    out.write_all(b"\n")
}
