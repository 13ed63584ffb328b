//! `PcmDecode` (raw PCM bytes → audio) and `PcmEncode` (audio → raw PCM bytes).

use remotemedia_core::{Data, Node, NodeError, NodeType};
use schemars::JsonSchema;
use serde::Deserialize;

use crate::input::audio;
use crate::pcm::{PcmFormat, PcmSpec, PcmStreamDecoder};

/// Params of `PcmDecode`.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PcmDecodeParams {
    /// Sample encoding: `s16le`, `f32le`, `u8`, `mulaw` or `alaw`.
    pub format: PcmFormat,
    /// Frames per second.
    #[schemars(range(min = 1, max = 768_000))]
    pub sample_rate: u32,
    /// Interleaved channels.
    #[serde(default = "one")]
    #[schemars(range(min = 1, max = 8))]
    pub channels: u16,
}

fn one() -> u16 {
    1
}

/// Decodes a stream of raw PCM byte chunks; a chunk need not end on a frame (the rest
/// waits for the next one).
#[derive(Debug)]
pub struct PcmDecode {
    decoder: PcmStreamDecoder,
}

impl Node for PcmDecode {
    fn process(&mut self, item: Data, out: &mut Vec<Data>) -> Result<(), NodeError> {
        let Data::Bytes(bytes) = &item else {
            let name = item.type_name();
            let article = if name.starts_with(['a', 'e', 'i', 'o', 'u']) {
                "an"
            } else {
                "a"
            };
            return Err(NodeError::invalid_input(format!(
                "expected bytes of raw {} PCM, got {article} {name}",
                self.decoder.spec(),
            )));
        };
        if let Some(buf) = self.decoder.push(bytes) {
            out.push(Data::from(buf));
        }
        Ok(())
    }

    fn finish(&mut self, _out: &mut Vec<Data>) -> Result<(), NodeError> {
        self.decoder.finish().map_err(NodeError::invalid_input)
    }
}

impl NodeType for PcmDecode {
    const NAME: &'static str = "PcmDecode";
    const DESCRIPTION: &'static str =
        "Decodes raw (headerless) PCM bytes into audio with its `pts_us`, counted from the \
         frames decoded. Chunks may split frames; bytes left over at end of stream are an error.";
    const INPUT: &'static str = "bytes of raw PCM";
    const OUTPUT: &'static str = "audio";
    type Params = PcmDecodeParams;

    fn from_params(p: &PcmDecodeParams) -> Result<Self, NodeError> {
        Ok(PcmDecode {
            decoder: PcmStreamDecoder::new(PcmSpec {
                format: p.format,
                sample_rate: p.sample_rate,
                channels: p.channels,
            }),
        })
    }
}

/// Params of `PcmEncode`.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PcmEncodeParams {
    /// Sample encoding: `s16le`, `f32le`, `u8`, `mulaw` or `alaw` (integer formats
    /// round and clip).
    pub format: PcmFormat,
}

/// Encodes audio as raw PCM bytes (interleaved, as it comes).
#[derive(Debug)]
pub struct PcmEncode {
    format: PcmFormat,
}

impl Node for PcmEncode {
    fn process(&mut self, item: Data, out: &mut Vec<Data>) -> Result<(), NodeError> {
        let buf = audio(&item)?;
        let mut bytes = Vec::new();
        self.format.encode_into(&buf.samples, &mut bytes);
        out.push(Data::Bytes(bytes.into()));
        Ok(())
    }
}

impl NodeType for PcmEncode {
    const NAME: &'static str = "PcmEncode";
    const DESCRIPTION: &'static str =
        "Encodes audio as raw (headerless) PCM bytes, interleaved, at the audio's own rate and \
         channels.";
    const INPUT: &'static str = "audio";
    const OUTPUT: &'static str = "bytes of raw PCM";
    type Params = PcmEncodeParams;

    fn from_params(p: &PcmEncodeParams) -> Result<Self, NodeError> {
        Ok(PcmEncode { format: p.format })
    }
}
