//! JSON Lines in and out.

use std::io::{BufRead, BufReader, Read, Write};

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
/// number of items read. Whatever stops the input (a line that is not an item, a
/// failed read), the items before it are handed to `sink` first.
///
/// With `eager` (a pipe or terminal, whose next read may wait for its writer), the
/// items read so far are also handed on whenever the lines already received are used
/// up, so that an item typed is processed at once while a fast pipe still moves in
/// whole batches.
///
/// A line longer than `max_line` bytes (without its newline) stops the input: it is
/// not held in memory beyond that.
pub fn read_items<R: Read>(
    mut reader: BufReader<R>,
    batch: usize,
    eager: bool,
    max_line: usize,
    mut sink: impl FnMut(Vec<Data>) -> bool,
) -> Result<u64, BadLine> {
    let mut line_no = 0u64;
    let mut count = 0u64;
    let mut buf = Vec::new();
    // Grown as items come: a large `batch` costs nothing until items fill it.
    let mut pending = Vec::new();
    loop {
        buf.clear();
        // The next read may wait: what was read so far goes on first.
        if eager
            && !pending.is_empty()
            && !reader.buffer().contains(&b'\n')
            && !sink(std::mem::take(&mut pending))
        {
            return Ok(count);
        }
        let limit = u64::try_from(max_line)
            .unwrap_or(u64::MAX)
            .saturating_add(1);
        let item = match (&mut reader).take(limit).read_until(b'\n', &mut buf) {
            Ok(0) => break,
            Ok(n) if n > max_line && !buf.ends_with(b"\n") => {
                line_no += 1;
                Err((
                    line_no,
                    format!(
                        "longer than {max_line} bytes (the limit of --max-line-bytes, which \
                         can raise it)"
                    ),
                ))
            }
            Ok(_) => {
                line_no += 1;
                // A byte-order mark some editors put in front of a file.
                let line = match buf.strip_prefix(b"\xef\xbb\xbf") {
                    Some(rest) if line_no == 1 => rest,
                    _ => &buf[..],
                };
                match line_text(line) {
                    Ok("") => continue,
                    Ok(text) => parse_line(text).map_err(|e| (line_no, e)),
                    Err(e) => Err((line_no, e)),
                }
            }
            Err(e) => Err((line_no + 1, format!("cannot read input: {e}"))),
        };
        match item {
            Ok(item) => {
                pending.push(item);
                count += 1;
                if pending.len() >= batch && !sink(std::mem::take(&mut pending)) {
                    return Ok(count);
                }
            }
            Err((line, message)) => {
                // Items read before the bad line still go through the pipeline.
                if !pending.is_empty() {
                    sink(std::mem::take(&mut pending));
                }
                return Err(BadLine { line, message });
            }
        }
    }
    if !pending.is_empty() {
        sink(pending);
    }
    Ok(count)
}

/// A line's text without surrounding white space; an error when it is not UTF-8.
fn line_text(line: &[u8]) -> Result<&str, String> {
    let text = std::str::from_utf8(line).map_err(|e| {
        format!(
            "not valid UTF-8 (byte {} of the line is not part of a UTF-8 character)",
            e.valid_up_to() + 1
        )
    })?;
    Ok(text.trim())
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
    // An integer too large for serde_json's integers is not read as a float.
    remotemedia_core::data::check_integer_literals(text, &value).map_err(|e| e.to_string())?;
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
    /// The labelled line, serialized straight from the item (no JSON value built).
    #[derive(serde::Serialize)]
    struct Labelled<'a> {
        sink: &'a str,
        item: &'a Data,
    }
    match sink {
        None => serde_json::to_writer(&mut *out, item)?,
        Some(sink) => serde_json::to_writer(&mut *out, &Labelled { sink, item })?,
    }
    out.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads `input` in batches of `batch`: the batches handed on, and the result.
    fn read(input: &[u8], batch: usize) -> (Vec<Vec<Data>>, Result<u64, BadLine>) {
        let mut batches = Vec::new();
        let reader = BufReader::new(std::io::Cursor::new(input.to_vec()));
        let result = read_items(reader, batch, false, 8, |b| {
            batches.push(b);
            true
        });
        (batches, result)
    }

    /// Hands over `chunks` one per read, as a pipe does what its writer wrote.
    struct Pipe(Vec<&'static [u8]>);
    impl Read for Pipe {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.0.is_empty() {
                return Ok(0);
            }
            let chunk = self.0.remove(0);
            buf[..chunk.len()].copy_from_slice(chunk);
            Ok(chunk.len())
        }
    }

    #[test]
    fn an_eager_reader_hands_on_what_each_read_brought() {
        let pipe = Pipe(vec![b"1\n2\n3", b"\n4\n", b"5\n6\n7\n8\n"]);
        let mut batches = Vec::new();
        let n = read_items(BufReader::new(pipe), 3, true, 100, |b| {
            batches.push(b.len());
            true
        })
        .unwrap();
        assert_eq!(n, 8);
        // Full batches while lines are at hand, the rest before each read.
        assert_eq!(batches, vec![2, 2, 3, 1]);
    }

    #[test]
    fn a_line_over_the_limit_stops_the_input_after_the_items_before_it() {
        // Eight bytes are allowed, with or without the newline.
        let (batches, result) = read(b"12345678\n[1,2,34]\n", 256);
        assert_eq!(batches.concat().len(), 2);
        assert!(result.is_ok());
        let (batches, result) = read(b"1\n[1,2,3,45]\n3\n", 256);
        assert_eq!(batches, vec![vec![Data::Int(1)]]);
        let bad = result.unwrap_err();
        assert_eq!(bad.line, 2);
        assert_eq!(
            bad.message,
            "longer than 8 bytes (the limit of --max-line-bytes, which can raise it)"
        );
        let (_, result) = read(b"1\n123456789", 256);
        assert_eq!(result.unwrap_err().line, 2, "a last line without a newline");
    }

    #[test]
    fn a_line_that_is_not_utf8_keeps_the_items_before_it() {
        let (batches, result) = read(b"1\n2\n\xff\n4\n", 256);
        assert_eq!(batches, vec![vec![Data::Int(1), Data::Int(2)]]);
        let bad = result.unwrap_err();
        assert_eq!(bad.line, 3);
        let (batches, result) = read(b"\xef\xbb\xbf1\n\xef\xbb\xbf2\n", 256);
        assert_eq!(batches, vec![vec![Data::Int(1)]]);
        assert_eq!(
            result.unwrap_err().line,
            2,
            "a mark is only skipped at the start"
        );
        assert_eq!(
            bad.message,
            "not valid UTF-8 (byte 1 of the line is not part of a UTF-8 character)"
        );
    }
}
