//! `MediaReader` (a source decoding an audio file) and `MediaWriter` (a sink writing
//! WAV: one file, or one file per item when its `path` has a `{index}` / `{pts}`
//! pattern).

use std::path::PathBuf;

use remotemedia_core::error::ErrorKind;
use remotemedia_core::{Data, Node, NodeContext, NodeError, NodeType, ParamIssue, Pull};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::decode::{DecodeError, Decoder, DEFAULT_CHUNK_MS};
use crate::input::audio;
use crate::wav::{WavError, WavFormat, WavWriter};

/// Chunks decoded per pull at most: a source is paced by its consumers, so it never
/// decodes far ahead.
const CHUNKS_PER_PULL: usize = 8;

/// Params of `MediaReader`.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MediaReaderParams {
    /// The audio file: WAV (8/16/24/32-bit integer or 32-bit float), FLAC, MP3 or Ogg
    /// Vorbis, recognised by its content.
    pub path: PathBuf,
    /// Length of each emitted chunk in milliseconds (the last may be shorter).
    #[serde(default = "default_chunk")]
    #[schemars(range(min = 0.1))]
    pub chunk_ms: f64,
}

fn default_chunk() -> f64 {
    DEFAULT_CHUNK_MS
}

/// Decodes an audio file as a stream of chunks at the file's own rate and channels.
#[derive(Debug)]
pub struct MediaReader {
    params: MediaReaderParams,
    decoder: Option<Decoder>,
}

fn decode_error(e: DecodeError) -> NodeError {
    let kind = match e {
        DecodeError::Open { .. } => ErrorKind::Io,
        _ => ErrorKind::InvalidInput,
    };
    NodeError::new(kind, e.to_string())
}

impl Node for MediaReader {
    fn initialize(&mut self, _ctx: &NodeContext) -> Result<(), NodeError> {
        let d = Decoder::open(&self.params.path, self.params.chunk_ms)
            .map_err(|e| NodeError::new(ErrorKind::Initialize, e.to_string()))?;
        self.decoder = Some(d);
        Ok(())
    }

    fn process(&mut self, _item: Data, _out: &mut Vec<Data>) -> Result<(), NodeError> {
        Err(NodeError::invalid_input(
            "MediaReader is a source: it takes no input",
        ))
    }

    fn pull(&mut self, max: usize, out: &mut Vec<Data>) -> Result<Pull, NodeError> {
        let Some(d) = self.decoder.as_mut() else {
            return Err(NodeError::new(
                ErrorKind::Initialize,
                "MediaReader was not initialized",
            ));
        };
        for _ in 0..max.clamp(1, CHUNKS_PER_PULL) {
            match d.read_chunk().map_err(decode_error)? {
                Some(buf) => out.push(Data::from(buf)),
                None => return Ok(Pull::Done),
            }
        }
        Ok(Pull::More)
    }
}

impl NodeType for MediaReader {
    const NAME: &'static str = "MediaReader";
    const ALIASES: &'static [&'static str] = &["MediaReaderNode"];
    const DESCRIPTION: &'static str =
        "A source that decodes an audio file (WAV, FLAC, MP3, Ogg Vorbis; recognised by its \
         content) as it goes, in chunks of `chunk_ms` at the file's own rate and channels. A \
         missing file fails at initialize; a truncated or corrupt one ends the run with an \
         error naming the position reached, after the chunks before it.";
    const INPUT: &'static str = "nothing (a source)";
    const OUTPUT: &'static str = "audio chunks with their `pts_us`";
    const SOURCE: bool = true;
    const USES_HOST_FILES: bool = true;
    type Params = MediaReaderParams;

    fn from_params(p: &MediaReaderParams) -> Result<Self, NodeError> {
        Ok(MediaReader {
            params: p.clone(),
            decoder: None,
        })
    }
}

/// Params of `MediaWriter`.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MediaWriterParams {
    /// The WAV file to write (replaced if it exists). With a placeholder — `{index}`
    /// (the item's number from 0; `{index:03}` zero-pads it to 3 digits), `{pts}` (its
    /// `pts_us`) or `{pts_ms}` (that in whole milliseconds) — each input item is written
    /// to a file of its own, e.g. `utterance-{index:03}.wav`; `{{` and `}}` are literal
    /// braces.
    pub path: PathBuf,
    /// Sample format: `s16` (16-bit integer, rounded and clipped) or `f32` (float).
    #[serde(default)]
    pub format: WavFormat,
}

/// The placeholders a `MediaWriter` path may hold, as an error message lists them.
const KNOWN_PLACEHOLDERS: &str =
    "{index} (the item's number from 0, `{index:03}` zero-padded), {pts} (its pts_us), \
     {pts_ms} (its pts in milliseconds)";

/// What a placeholder stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    Index,
    Pts,
    PtsMs,
}

/// A piece of a path pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Text(String),
    Field { field: Field, width: usize },
}

/// A `MediaWriter` path with at least one placeholder: one file per item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathPattern {
    pieces: Vec<Piece>,
}

impl PathPattern {
    /// Parses `path`: `Ok(None)` when it has no placeholder (one file), an error naming
    /// the placeholder and the known ones when one is unknown or a brace is unclosed.
    pub fn parse(path: &str) -> Result<Option<PathPattern>, String> {
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut rest = path;
        while let Some(c) = rest.chars().next() {
            if rest.starts_with("{{") || rest.starts_with("}}") {
                text.push(c);
                rest = &rest[2..];
            } else if c == '{' {
                let Some(end) = rest.find('}') else {
                    return Err(format!(
                        "`{{` without a closing `}}` in `{path}` (write `{{{{` for a literal \
                         brace); known placeholders: {KNOWN_PLACEHOLDERS}"
                    ));
                };
                let inner = &rest[1..end];
                let (name, spec) = inner.split_once(':').unwrap_or((inner, ""));
                let field = match name {
                    "index" => Field::Index,
                    "pts" => Field::Pts,
                    "pts_ms" => Field::PtsMs,
                    _ => {
                        return Err(format!(
                            "unknown placeholder `{{{inner}}}` in `{path}`; known: \
                             {KNOWN_PLACEHOLDERS}"
                        ))
                    }
                };
                let width = match spec {
                    "" => 0,
                    s if s.len() >= 2
                        && s.starts_with('0')
                        && s.bytes().all(|b| b.is_ascii_digit()) =>
                    {
                        s[1..]
                            .parse::<usize>()
                            .ok()
                            .filter(|w| *w <= 20)
                            .ok_or_else(|| {
                                format!("`{{{inner}}}` in `{path}`: the width is at most 20")
                            })?
                    }
                    _ => {
                        return Err(format!(
                            "`{{{inner}}}` in `{path}`: the only format is zero-padding to a \
                             width, as in `{{{name}:03}}`"
                        ))
                    }
                };
                if !text.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut text)));
                }
                pieces.push(Piece::Field { field, width });
                rest = &rest[end + 1..];
            } else if c == '}' {
                return Err(format!(
                    "`}}` without an opening `{{` in `{path}` (write `}}}}` for a literal \
                     brace); known placeholders: {KNOWN_PLACEHOLDERS}"
                ));
            } else {
                text.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
        if !pieces.iter().any(|p| matches!(p, Piece::Field { .. })) {
            return Ok(None);
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        Ok(Some(PathPattern { pieces }))
    }

    /// The path of item number `index`, stamped `pts_us`.
    pub fn path(&self, index: u64, pts_us: i64) -> PathBuf {
        let mut s = String::new();
        for p in &self.pieces {
            match p {
                Piece::Text(t) => s.push_str(t),
                Piece::Field { field, width } => {
                    let v = match field {
                        Field::Index => i128::from(index),
                        Field::Pts => i128::from(pts_us),
                        Field::PtsMs => i128::from(pts_us.div_euclid(1000)),
                    };
                    s.push_str(&format!("{v:0width$}", width = *width));
                }
            }
        }
        PathBuf::from(s)
    }
}

/// Where a `MediaWriter` writes.
#[derive(Debug)]
enum Target {
    /// One file for the whole stream.
    One(WavWriter),
    /// One file per item, each finalized at once.
    Each {
        pattern: PathPattern,
        format: WavFormat,
        next_index: u64,
    },
}

/// Writes the audio it receives to a WAV file, or each item to a file of its own.
#[derive(Debug)]
pub struct MediaWriter {
    target: Target,
    /// End time of the last buffer written.
    end_pts_us: i64,
}

fn wav_error(e: WavError) -> NodeError {
    match e {
        WavError::Io { .. } => NodeError::new(ErrorKind::Io, e.to_string()),
        WavError::FormatChanged { .. } => NodeError::invalid_input(e.to_string()),
    }
}

fn written(s: &crate::wav::WavSummary, pts_us: i64) -> Vec<(&'static str, Data)> {
    vec![
        ("type", Data::text("written")),
        ("path", Data::text(s.path.display().to_string())),
        (
            "frames",
            Data::Int(i64::try_from(s.frames).unwrap_or(i64::MAX)),
        ),
        ("duration_ms", Data::Float(s.duration_ms())),
        ("pts_us", Data::Int(pts_us)),
    ]
}

impl Node for MediaWriter {
    fn process(&mut self, item: Data, out: &mut Vec<Data>) -> Result<(), NodeError> {
        let buf = audio(&item)?;
        match &mut self.target {
            Target::One(w) => w.write(buf).map_err(wav_error)?,
            Target::Each {
                pattern,
                format,
                next_index,
            } => {
                let index = *next_index;
                let mut w = WavWriter::new(pattern.path(index, buf.pts_us), *format);
                w.write(buf).map_err(wav_error)?;
                let s = w.finalize().map_err(wav_error)?;
                *next_index += 1;
                let mut fields = written(&s, buf.pts_us);
                fields.push(("index", Data::Int(i64::try_from(index).unwrap_or(i64::MAX))));
                out.push(Data::map_from(fields));
            }
        }
        self.end_pts_us = buf.end_pts_us();
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<Data>) -> Result<(), NodeError> {
        if let Target::One(w) = &mut self.target {
            let s = w.finalize().map_err(wav_error)?;
            out.push(Data::map_from(written(&s, self.end_pts_us)));
        }
        Ok(())
    }

    fn cleanup(&mut self) -> Result<(), NodeError> {
        // After an error `finish` is not called: the file still gets its header.
        match &mut self.target {
            Target::One(w) => w.finalize().map(|_| ()).map_err(wav_error),
            Target::Each { .. } => Ok(()),
        }
    }
}

/// The pattern in a written `path` param, if it has one.
fn written_pattern(written: &Map<String, Value>) -> Result<Option<PathPattern>, String> {
    match written.get("path").and_then(Value::as_str) {
        Some(path) => PathPattern::parse(path),
        None => Ok(None),
    }
}

impl NodeType for MediaWriter {
    const NAME: &'static str = "MediaWriter";
    const ALIASES: &'static [&'static str] = &["MediaWriterNode"];
    const DESCRIPTION: &'static str =
        "Writes the audio it receives to a WAV file (16-bit or float), rate and channels taken \
         from the first buffer. At end of stream it emits one map `{type: \"written\", path, \
         frames, duration_ms, pts_us}`; after an error the file written so far is finalized \
         and stays valid. With a `{index}`, `{pts}` or `{pts_ms}` placeholder in `path`, each \
         input item (an utterance from `VoiceActivity`, say) goes to a file of its own, \
         finalized at once, with one such map per file as it is written (`pts_us` that of the \
         item, plus its `index`).";
    const INPUT: &'static str = "audio of one rate and channel count (per file)";
    const OUTPUT: &'static str =
        "one summary map at end of stream, or one per file with a path pattern";
    const USES_HOST_FILES: bool = true;
    type Params = MediaWriterParams;

    fn check(written: &Map<String, Value>) -> Vec<ParamIssue> {
        match written_pattern(written) {
            Ok(_) => Vec::new(),
            Err(e) => vec![ParamIssue::new("path", e)],
        }
    }

    fn from_params(p: &MediaWriterParams) -> Result<Self, NodeError> {
        let pattern = match p.path.to_str() {
            Some(s) => PathPattern::parse(s).map_err(NodeError::invalid_input)?,
            None => None,
        };
        let target = match pattern {
            Some(pattern) => Target::Each {
                pattern,
                format: p.format,
                next_index: 0,
            },
            None => Target::One(WavWriter::new(&p.path, p.format)),
        };
        Ok(MediaWriter {
            target,
            end_pts_us: 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_path_is_one_file() {
        assert_eq!(PathPattern::parse("out.wav"), Ok(None));
        // Escaped braces are no placeholder.
        assert_eq!(PathPattern::parse("a{{b}}.wav"), Ok(None));
    }

    #[test]
    fn placeholders_expand() {
        let p = PathPattern::parse("u-{index:03}-{pts_ms}-{pts}{{x}}.wav")
            .unwrap()
            .unwrap();
        assert_eq!(
            p.path(7, 1_234_567),
            PathBuf::from("u-007-1234-1234567{x}.wav")
        );
        assert_eq!(p.path(1234, 0), PathBuf::from("u-1234-0-0{x}.wav"));
        let p = PathPattern::parse("{index}.wav").unwrap().unwrap();
        assert_eq!(p.path(0, 5), PathBuf::from("0.wav"));
        // A negative pts keeps its sign; ms round down.
        let p = PathPattern::parse("{pts_ms:05}").unwrap().unwrap();
        assert_eq!(p.path(0, -1500), PathBuf::from("-0002"));
    }

    #[test]
    fn bad_patterns_say_what_is_known() {
        let e = PathPattern::parse("u-{n}.wav").unwrap_err();
        assert_eq!(
            e,
            format!("unknown placeholder `{{n}}` in `u-{{n}}.wav`; known: {KNOWN_PLACEHOLDERS}")
        );
        let e = PathPattern::parse("u-{index.wav").unwrap_err();
        assert!(
            e.starts_with("`{` without a closing `}` in `u-{index.wav`"),
            "{e}"
        );
        let e = PathPattern::parse("u}.wav").unwrap_err();
        assert!(e.starts_with("`}` without an opening `{`"), "{e}");
        let e = PathPattern::parse("{index:3}").unwrap_err();
        assert!(e.contains("the only format is zero-padding"), "{e}");
        let e = PathPattern::parse("{index:099}").unwrap_err();
        assert!(e.contains("at most 20"), "{e}");
    }
}
