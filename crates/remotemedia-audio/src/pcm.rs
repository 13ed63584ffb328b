//! Raw (headerless) PCM: bytes ↔ f32 samples for `s16le`, `f32le`, `u8`, `mulaw` and
//! `alaw` (G.711), the spec strings `format:rate:channels` that describe such a
//! stream, and a streaming decoder for byte chunks that do not end on a frame.
//!
//! Integer scales: a 16-bit sample `v` is `v / 32768`, an 8-bit unsigned one
//! `(v - 128) / 128`; encoding rounds to the nearest step and clips to the range, so
//! decoding then encoding gives back the same bytes. G.711 follows the reference
//! implementation (Sun's `g711.c`): μ-law and A-law codes decode to 16-bit values
//! (μ-law up to ±32124, A-law up to ±32256), scaled as 16-bit samples.

use std::fmt;
use std::str::FromStr;

use remotemedia_core::AudioBuffer;
use schemars::JsonSchema;
use serde::Deserialize;

use crate::stream::StreamClock;

/// A raw sample encoding.
#[derive(Clone, Copy, Debug, Deserialize, JsonSchema, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum PcmFormat {
    /// Signed 16-bit little-endian.
    S16le,
    /// 32-bit float little-endian.
    F32le,
    /// Unsigned 8-bit (128 is silence).
    U8,
    /// G.711 μ-law, 8 bits.
    Mulaw,
    /// G.711 A-law, 8 bits.
    Alaw,
}

/// The formats' names, as written in specs and params.
pub const FORMAT_NAMES: [&str; 5] = ["s16le", "f32le", "u8", "mulaw", "alaw"];

impl PcmFormat {
    /// Bytes per sample.
    pub fn sample_bytes(self) -> usize {
        match self {
            PcmFormat::S16le => 2,
            PcmFormat::F32le => 4,
            PcmFormat::U8 | PcmFormat::Mulaw | PcmFormat::Alaw => 1,
        }
    }

    /// The format's name (`s16le`, …).
    pub fn name(self) -> &'static str {
        match self {
            PcmFormat::S16le => "s16le",
            PcmFormat::F32le => "f32le",
            PcmFormat::U8 => "u8",
            PcmFormat::Mulaw => "mulaw",
            PcmFormat::Alaw => "alaw",
        }
    }

    /// Decodes whole samples of `bytes` (a trailing partial sample is ignored), appending
    /// them to `out`.
    pub fn decode_into(self, bytes: &[u8], out: &mut Vec<f32>) {
        match self {
            PcmFormat::S16le => out.extend(
                bytes
                    .chunks_exact(2)
                    .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0),
            ),
            PcmFormat::F32le => out.extend(
                bytes
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            ),
            PcmFormat::U8 => out.extend(bytes.iter().map(|&b| (f32::from(b) - 128.0) / 128.0)),
            PcmFormat::Mulaw => out.extend(
                bytes
                    .iter()
                    .map(|&b| f32::from(ulaw_to_linear(b)) / 32768.0),
            ),
            PcmFormat::Alaw => out.extend(
                bytes
                    .iter()
                    .map(|&b| f32::from(alaw_to_linear(b)) / 32768.0),
            ),
        }
    }

    /// Encodes `samples`, appending the bytes to `out` (integer formats round and clip).
    pub fn encode_into(self, samples: &[f32], out: &mut Vec<u8>) {
        out.reserve(samples.len() * self.sample_bytes());
        match self {
            PcmFormat::S16le => {
                for &s in samples {
                    out.extend_from_slice(&f32_to_i16(s).to_le_bytes());
                }
            }
            PcmFormat::F32le => {
                for &s in samples {
                    out.extend_from_slice(&s.to_le_bytes());
                }
            }
            PcmFormat::U8 => out.extend(samples.iter().map(|&s| {
                let v = (f64::from(s) * 128.0).round().clamp(-128.0, 127.0) as i32;
                (v + 128) as u8
            })),
            PcmFormat::Mulaw => out.extend(samples.iter().map(|&s| linear_to_ulaw(f32_to_i16(s)))),
            PcmFormat::Alaw => out.extend(samples.iter().map(|&s| linear_to_alaw(f32_to_i16(s)))),
        }
    }
}

impl fmt::Display for PcmFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for PcmFormat {
    type Err = PcmSpecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "s16le" => PcmFormat::S16le,
            "f32le" => PcmFormat::F32le,
            "u8" => PcmFormat::U8,
            "mulaw" => PcmFormat::Mulaw,
            "alaw" => PcmFormat::Alaw,
            _ => return Err(PcmSpecError::Format(s.to_string())),
        })
    }
}

/// An f32 sample as 16-bit: `round(x * 32768)`, clipped to `[-32768, 32767]`.
pub fn f32_to_i16(x: f32) -> i16 {
    if x.is_nan() {
        return 0;
    }
    (f64::from(x) * 32768.0).round().clamp(-32768.0, 32767.0) as i16
}

/// G.711 μ-law code → 16-bit linear value.
pub fn ulaw_to_linear(code: u8) -> i16 {
    let u = !code;
    let t = ((i32::from(u & 0x0f) << 3) + 0x84) << ((u & 0x70) >> 4);
    (if u & 0x80 != 0 { 0x84 - t } else { t - 0x84 }) as i16
}

/// G.711 A-law code → 16-bit linear value.
pub fn alaw_to_linear(code: u8) -> i16 {
    let a = code ^ 0x55;
    let mut t = i32::from(a & 0x0f) << 4;
    let seg = (a & 0x70) >> 4;
    match seg {
        0 => t += 8,
        1 => t += 0x108,
        _ => {
            t += 0x108;
            t <<= seg - 1;
        }
    }
    (if a & 0x80 != 0 { t } else { -t }) as i16
}

/// The segment of `v` among the upper bounds `ends` (8 when above them all).
fn segment(v: i32, ends: &[i32; 8]) -> u8 {
    ends.iter().position(|&e| v <= e).unwrap_or(8) as u8
}

/// 16-bit linear value → G.711 μ-law code.
pub fn linear_to_ulaw(sample: i16) -> u8 {
    const ENDS: [i32; 8] = [0x3f, 0x7f, 0xff, 0x1ff, 0x3ff, 0x7ff, 0xfff, 0x1fff];
    let mut v = i32::from(sample) >> 2;
    let mask = if v < 0 {
        v = -v;
        0x7f
    } else {
        0xff
    };
    v = v.min(8159) + 0x21;
    let seg = segment(v, &ENDS);
    if seg >= 8 {
        return 0x7f ^ mask;
    }
    let u = (seg << 4) | ((v >> (seg + 1)) & 0x0f) as u8;
    u ^ mask
}

/// 16-bit linear value → G.711 A-law code.
pub fn linear_to_alaw(sample: i16) -> u8 {
    const ENDS: [i32; 8] = [0x1f, 0x3f, 0x7f, 0xff, 0x1ff, 0x3ff, 0x7ff, 0xfff];
    let mut v = i32::from(sample) >> 3;
    let mask = if v >= 0 {
        0xd5
    } else {
        v = -v - 1;
        0x55
    };
    let seg = segment(v, &ENDS);
    if seg >= 8 {
        return 0x7f ^ mask;
    }
    let mut a = seg << 4;
    a |= if seg < 2 {
        ((v >> 1) & 0x0f) as u8
    } else {
        ((v >> seg) & 0x0f) as u8
    };
    a ^ mask
}

/// What is wrong with a PCM spec string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PcmSpecError {
    /// Not three `:`-separated parts.
    #[error("expected FORMAT:RATE:CHANNELS (e.g. s16le:16000:1), got `{0}`")]
    Shape(String),
    /// An unknown sample format.
    #[error("unknown PCM format `{0}`; expected one of s16le, f32le, u8, mulaw, alaw")]
    Format(String),
    /// A rate that is not a positive integer.
    #[error("sample rate must be a whole number of Hz from 1 to 768000, got `{0}`")]
    Rate(String),
    /// A channel count outside 1..=8.
    #[error("channels must be from 1 to 8, got `{0}`")]
    Channels(String),
}

/// A raw PCM stream's description: `format:rate:channels`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PcmSpec {
    /// Sample encoding.
    pub format: PcmFormat,
    /// Frames per second.
    pub sample_rate: u32,
    /// Interleaved channels (1 to 8).
    pub channels: u16,
}

impl FromStr for PcmSpec {
    type Err = PcmSpecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split(':').collect();
        let [format, rate, channels] = parts[..] else {
            return Err(PcmSpecError::Shape(s.to_string()));
        };
        let format = format.parse()?;
        let sample_rate = rate
            .parse::<u32>()
            .ok()
            .filter(|r| (1..=768_000).contains(r))
            .ok_or_else(|| PcmSpecError::Rate(rate.to_string()))?;
        let channels = channels
            .parse::<u16>()
            .ok()
            .filter(|c| (1..=8).contains(c))
            .ok_or_else(|| PcmSpecError::Channels(channels.to_string()))?;
        Ok(PcmSpec {
            format,
            sample_rate,
            channels,
        })
    }
}

impl fmt::Display for PcmSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.format, self.sample_rate, self.channels)
    }
}

impl PcmSpec {
    /// Bytes per frame (all channels).
    pub fn frame_bytes(&self) -> usize {
        self.format.sample_bytes() * usize::from(self.channels)
    }
}

/// Decodes a raw PCM byte stream that arrives in arbitrary pieces: whole frames become
/// audio at once, a trailing partial frame waits for the next piece.
#[derive(Clone, Debug)]
pub struct PcmStreamDecoder {
    spec: PcmSpec,
    remainder: Vec<u8>,
    clock: StreamClock,
}

impl PcmStreamDecoder {
    /// A decoder of `spec`, its clock starting at 0.
    pub fn new(spec: PcmSpec) -> Self {
        PcmStreamDecoder {
            spec,
            remainder: Vec::new(),
            clock: StreamClock::new(),
        }
    }

    /// The stream's description.
    pub fn spec(&self) -> PcmSpec {
        self.spec
    }

    /// Bytes held back (a partial frame).
    pub fn pending_bytes(&self) -> usize {
        self.remainder.len()
    }

    /// Decodes the whole frames of `remainder + bytes`; `None` when they make no whole
    /// frame yet.
    pub fn push(&mut self, bytes: &[u8]) -> Option<AudioBuffer> {
        let fb = self.spec.frame_bytes();
        let mut samples = Vec::new();
        let rest = if self.remainder.is_empty() {
            bytes
        } else {
            let need = (fb - self.remainder.len()).min(bytes.len());
            self.remainder.extend_from_slice(&bytes[..need]);
            if self.remainder.len() < fb {
                return None;
            }
            self.spec.format.decode_into(&self.remainder, &mut samples);
            self.remainder.clear();
            &bytes[need..]
        };
        let whole = rest.len() / fb * fb;
        self.spec.format.decode_into(&rest[..whole], &mut samples);
        self.remainder.extend_from_slice(&rest[whole..]);
        if samples.is_empty() {
            return None;
        }
        Some(
            self.clock
                .stamp(samples, self.spec.sample_rate, self.spec.channels),
        )
    }

    /// Ends the stream: an error when bytes of a partial frame are left.
    pub fn finish(&mut self) -> Result<(), String> {
        if self.remainder.is_empty() {
            return Ok(());
        }
        let n = std::mem::take(&mut self.remainder).len();
        Err(format!(
            "the stream ends with {n} byte{} that do not make a whole frame ({} bytes of {})",
            if n == 1 { "" } else { "s" },
            self.spec.frame_bytes(),
            self.spec
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn g711_known_values() {
        // μ-law: 0xff/0x7f are ±0, 0x80/0x00 the extremes ±32124.
        assert_eq!(ulaw_to_linear(0xff), 0);
        assert_eq!(ulaw_to_linear(0x7f), 0);
        assert_eq!(ulaw_to_linear(0x80), 32124);
        assert_eq!(ulaw_to_linear(0x00), -32124);
        assert_eq!(ulaw_to_linear(0xfe), 8);
        assert_eq!(ulaw_to_linear(0xef), 132);
        assert_eq!(ulaw_to_linear(0xdf), 396);
        // A-law: 0xd5/0x55 are ±8, 0xaa/0x2a the extremes ±32256.
        assert_eq!(alaw_to_linear(0xd5), 8);
        assert_eq!(alaw_to_linear(0x55), -8);
        assert_eq!(alaw_to_linear(0xaa), 32256);
        assert_eq!(alaw_to_linear(0x2a), -32256);
        assert_eq!(alaw_to_linear(0xc5), 264);
        // Encoding: silence and full scale.
        assert_eq!(linear_to_ulaw(0), 0xff);
        assert_eq!(linear_to_ulaw(i16::MAX), 0x80);
        assert_eq!(linear_to_ulaw(i16::MIN), 0x00);
        assert_eq!(linear_to_alaw(0), 0xd5);
        assert_eq!(linear_to_alaw(i16::MAX), 0xaa);
        assert_eq!(linear_to_alaw(i16::MIN), 0x2a);
    }

    #[test]
    fn g711_codes_round_trip_and_are_monotonic() {
        for code in 0..=255u8 {
            let v = ulaw_to_linear(code);
            let back = linear_to_ulaw(v);
            if code == 0x7f {
                assert_eq!(back, 0xff); // −0 encodes as +0
            } else {
                assert_eq!(back, code, "μ-law {code:#04x} → {v}");
            }
            assert_eq!(
                linear_to_alaw(alaw_to_linear(code)),
                code,
                "A-law {code:#04x}"
            );
        }
        // Decoded levels increase with the input: sort all 65536 inputs by code value.
        let mut last_u = i16::MIN;
        let mut last_a = i16::MIN;
        for x in i16::MIN..=i16::MAX {
            let u = ulaw_to_linear(linear_to_ulaw(x));
            let a = alaw_to_linear(linear_to_alaw(x));
            assert!(u >= last_u && a >= last_a, "at {x}");
            // Quantisation error within a segment step (largest steps: 1024 and 1024).
            assert!(
                (i32::from(u) - i32::from(x)).abs() <= 1100,
                "μ-law at {x}: {u}"
            );
            assert!(
                (i32::from(a) - i32::from(x)).abs() <= 1100,
                "A-law at {x}: {a}"
            );
            last_u = u;
            last_a = a;
        }
    }

    #[test]
    fn integer_formats_round_trip_bit_exactly_and_clip() {
        let bytes: Vec<u8> = (0..=255u8).flat_map(|b| [b, b.wrapping_mul(7)]).collect();
        for format in [
            PcmFormat::S16le,
            PcmFormat::U8,
            PcmFormat::Mulaw,
            PcmFormat::Alaw,
        ] {
            let mut samples = Vec::new();
            format.decode_into(&bytes, &mut samples);
            let mut back = Vec::new();
            format.encode_into(&samples, &mut back);
            if format == PcmFormat::Mulaw {
                // −0 (0x7f) comes back as +0 (0xff).
                let fixed: Vec<u8> = bytes
                    .iter()
                    .map(|&b| if b == 0x7f { 0xff } else { b })
                    .collect();
                assert_eq!(back, fixed);
            } else {
                assert_eq!(back, bytes, "{format}");
            }
        }
        let mut out = Vec::new();
        PcmFormat::S16le.encode_into(&[2.0, -2.0, 0.5, -1.0, 1.0 / 65536.0 * 0.9], &mut out);
        let v: Vec<i16> = out
            .chunks(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect();
        assert_eq!(v, [32767, -32768, 16384, -32768, 0]);
        let mut out = Vec::new();
        PcmFormat::U8.encode_into(&[1.0, -1.0, 0.0], &mut out);
        assert_eq!(out, [255, 0, 128]);
    }

    #[test]
    fn specs_parse_with_clear_errors() {
        let s: PcmSpec = "s16le:16000:1".parse().unwrap();
        assert_eq!(
            s,
            PcmSpec {
                format: PcmFormat::S16le,
                sample_rate: 16_000,
                channels: 1
            }
        );
        assert_eq!(s.to_string(), "s16le:16000:1");
        let err = |t: &str| t.parse::<PcmSpec>().unwrap_err().to_string();
        assert_eq!(
            err("s16le:16000"),
            "expected FORMAT:RATE:CHANNELS (e.g. s16le:16000:1), got `s16le:16000`"
        );
        assert_eq!(
            err("s24le:16000:1"),
            "unknown PCM format `s24le`; expected one of s16le, f32le, u8, mulaw, alaw"
        );
        assert_eq!(
            err("f32le:0:1"),
            "sample rate must be a whole number of Hz from 1 to 768000, got `0`"
        );
        assert_eq!(err("u8:8000:9"), "channels must be from 1 to 8, got `9`");
    }

    #[test]
    fn the_stream_decoder_carries_partial_frames() {
        let spec: PcmSpec = "s16le:8000:2".parse().unwrap();
        let frames: Vec<i16> = (0..100).map(|i| i * 100 - 5000).collect();
        let bytes: Vec<u8> = frames.iter().flat_map(|v| v.to_le_bytes()).collect();
        let mut d = PcmStreamDecoder::new(spec);
        let mut got = Vec::new();
        let mut pts = Vec::new();
        // Pieces of 1, 2, 3, … bytes: most end inside a frame.
        let mut at = 0;
        let mut n = 1;
        while at < bytes.len() {
            let end = (at + n).min(bytes.len());
            if let Some(b) = d.push(&bytes[at..end]) {
                assert_eq!(b.channels, 2);
                pts.push((b.pts_us, b.frames()));
                got.extend_from_slice(&b.samples);
            }
            at = end;
            n += 1;
        }
        assert!(d.finish().is_ok());
        let want: Vec<f32> = frames.iter().map(|&v| f32::from(v) / 32768.0).collect();
        assert_eq!(got, want);
        // Times follow the frames: each chunk starts where the previous ended.
        let mut frame = 0u64;
        for (p, f) in pts {
            assert_eq!(p, remotemedia_core::frames_to_us(frame, 8000));
            frame += f as u64;
        }
        assert_eq!(frame, 50);
        assert!(d.push(&[1, 2, 3]).is_none());
        assert_eq!(
            d.finish().unwrap_err(),
            "the stream ends with 3 bytes that do not make a whole frame (4 bytes of s16le:8000:2)"
        );
    }
}
