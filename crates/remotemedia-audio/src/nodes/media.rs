//! `MediaReader` (a source decoding an audio file) and `MediaWriter` (a sink writing
//! WAV).

use std::path::PathBuf;

use remotemedia_core::error::ErrorKind;
use remotemedia_core::{Data, Node, NodeContext, NodeError, NodeType, Pull};
use schemars::JsonSchema;
use serde::Deserialize;

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
    /// The WAV file to write (replaced if it exists).
    pub path: PathBuf,
    /// Sample format: `s16` (16-bit integer, rounded and clipped) or `f32` (float).
    #[serde(default)]
    pub format: WavFormat,
}

/// Writes the audio it receives to a WAV file.
#[derive(Debug)]
pub struct MediaWriter {
    writer: WavWriter,
    /// End time of the last buffer written.
    end_pts_us: i64,
}

fn wav_error(e: WavError) -> NodeError {
    match e {
        WavError::Io { .. } => NodeError::new(ErrorKind::Io, e.to_string()),
        WavError::FormatChanged { .. } => NodeError::invalid_input(e.to_string()),
    }
}

impl Node for MediaWriter {
    fn process(&mut self, item: Data, _out: &mut Vec<Data>) -> Result<(), NodeError> {
        let buf = audio(&item)?;
        self.writer.write(buf).map_err(wav_error)?;
        self.end_pts_us = buf.end_pts_us();
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<Data>) -> Result<(), NodeError> {
        let s = self.writer.finalize().map_err(wav_error)?;
        out.push(Data::map_from([
            ("type", Data::text("written")),
            ("path", Data::text(s.path.display().to_string())),
            (
                "frames",
                Data::Int(i64::try_from(s.frames).unwrap_or(i64::MAX)),
            ),
            ("duration_ms", Data::Float(s.duration_ms())),
            ("pts_us", Data::Int(self.end_pts_us)),
        ]));
        Ok(())
    }

    fn cleanup(&mut self) -> Result<(), NodeError> {
        // After an error `finish` is not called: the file still gets its header.
        self.writer.finalize().map(|_| ()).map_err(wav_error)
    }
}

impl NodeType for MediaWriter {
    const NAME: &'static str = "MediaWriter";
    const ALIASES: &'static [&'static str] = &["MediaWriterNode"];
    const DESCRIPTION: &'static str =
        "Writes the audio it receives to a WAV file (16-bit or float), rate and channels taken \
         from the first buffer. At end of stream it emits one map `{type: \"written\", path, \
         frames, duration_ms, pts_us}`; after an error the file written so far is finalized \
         and stays valid.";
    const INPUT: &'static str = "audio of one rate and channel count";
    const OUTPUT: &'static str = "one summary map at end of stream";
    type Params = MediaWriterParams;

    fn from_params(p: &MediaWriterParams) -> Result<Self, NodeError> {
        Ok(MediaWriter {
            writer: WavWriter::new(&p.path, p.format),
            end_pts_us: 0,
        })
    }
}
