//! Streaming decoding of audio files (WAV, FLAC, MP3, Ogg Vorbis) into chunks of
//! interleaved f32 samples.
//!
//! The container is chosen by content (magic bytes), the extension only being a hint,
//! so a file named wrongly or a stream on stdin decodes all the same. Decoding goes
//! packet by packet: a [`Decoder`] holds at most one packet's worth of samples beyond
//! the chunk it is cutting, whatever the length of the file. Each chunk keeps the
//! file's own rate and channels and carries its `pts_us`, counted from frames.
//!
//! A truncated or corrupt file ends in a [`DecodeError`] that names the file and the
//! position reached; the chunks before it have been handed out already.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use remotemedia_core::{frames_to_us, AudioBuffer};
use symphonia::core::codecs::audio::well_known::{CODEC_ID_FLAC, CODEC_ID_MP3};
use symphonia::core::codecs::audio::{AudioDecoder, AudioDecoderOptions};
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, FormatReader, TrackType};
use symphonia::core::io::{MediaSource, MediaSourceStream, ReadOnlySource};
use symphonia::core::meta::MetadataOptions;

use crate::stream::{ms_to_frames, StreamClock};

/// Default chunk length, in milliseconds.
pub const DEFAULT_CHUNK_MS: f64 = 20.0;

/// Why a file could not be decoded (or not to its end).
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The file could not be opened or read at all.
    #[error("cannot open {name}: {source}")]
    Open {
        /// The file (or `stdin`).
        name: String,
        /// The system's reason.
        source: std::io::Error,
    },
    /// The content is not audio this decoder knows, or has no audio track.
    #[error("{name}: not a supported audio file (WAV, FLAC, MP3 or Ogg Vorbis): {reason}")]
    Unsupported {
        /// The file (or `stdin`).
        name: String,
        /// What was found.
        reason: String,
        /// Whether the content ended before it could be recognised.
        eof: bool,
    },
    /// The stream ends inside its headers, before any audio.
    #[error("{name}: the file ends early (truncated) before its first audio frame, at 0.000 s")]
    HeaderTruncated {
        /// The file (or `stdin`).
        name: String,
    },
    /// Decoding stopped in the middle of the stream: the file is truncated or corrupt.
    #[error("{name}: {reason} at {:.3} s (frame {frame})", *.frame as f64 / f64::from(*.sample_rate))]
    Corrupt {
        /// The file (or `stdin`).
        name: String,
        /// Frames decoded before the failure (per channel).
        frame: u64,
        /// The stream's rate, to turn `frame` into seconds.
        sample_rate: u32,
        /// What went wrong.
        reason: String,
    },
}

impl DecodeError {
    /// An unrecognised stream that ended while being recognised: a truncated header.
    fn into_truncated(self) -> DecodeError {
        match self {
            DecodeError::Unsupported {
                name, eof: true, ..
            } => DecodeError::HeaderTruncated { name },
            other => other,
        }
    }

    /// The position reached, in seconds, when decoding failed mid-stream.
    pub fn position_secs(&self) -> Option<f64> {
        match self {
            DecodeError::Corrupt {
                frame, sample_rate, ..
            } => Some(*frame as f64 / f64::from(*sample_rate)),
            _ => None,
        }
    }
}

/// The containers recognised by their first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Container {
    /// RIFF/WAVE (or RF64).
    Wav,
    /// Native FLAC.
    Flac,
    /// MPEG audio (an ID3v2 tag or a frame sync).
    Mp3,
    /// Ogg.
    Ogg,
}

/// Bytes [`sniff`] needs to see to recognise every container.
pub const SNIFF_LEN: usize = 12;

/// The audio container `head` (the first bytes of a stream) starts with, if any.
pub fn sniff(head: &[u8]) -> Option<Container> {
    if head.len() >= 12
        && (head.starts_with(b"RIFF") || head.starts_with(b"RF64"))
        && &head[8..12] == b"WAVE"
    {
        return Some(Container::Wav);
    }
    if head.starts_with(b"fLaC") {
        return Some(Container::Flac);
    }
    if head.starts_with(b"OggS") {
        return Some(Container::Ogg);
    }
    if head.starts_with(b"ID3") {
        return Some(Container::Mp3);
    }
    // MPEG audio frame sync: 11 set bits, a layer that is not `00`.
    if head.len() >= 2 && head[0] == 0xff && head[1] & 0xe0 == 0xe0 && head[1] & 0x06 != 0 {
        return Some(Container::Mp3);
    }
    None
}

/// A streaming decoder of one audio file: yields chunks of `chunk_ms` at the file's
/// own rate and channels (the last chunk may be shorter).
pub struct Decoder {
    name: String,
    format: Box<dyn FormatReader>,
    decoder: Box<dyn AudioDecoder>,
    track_id: u32,
    rate: u32,
    channels: u16,
    chunk_frames: usize,
    /// Decoded samples not yet handed out, from `pos` on.
    pending: Vec<f32>,
    pos: usize,
    /// One packet's samples, reused.
    scratch: Vec<f32>,
    clock: StreamClock,
    /// Frames decoded so far (handed out or pending).
    decoded: u64,
    /// Frames the header announces, for lossless formats (to detect truncation).
    expected: Option<u64>,
    /// The stream has ended (or failed): no more packets are read.
    ended: bool,
    /// A failure to report once the samples before it are handed out.
    failure: Option<DecodeError>,
    /// The file is known to be cut short (its end could not be read when it was opened).
    truncated: bool,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder")
            .field("name", &self.name)
            .field("rate", &self.rate)
            .field("channels", &self.channels)
            .field("decoded", &self.decoded)
            .finish_non_exhaustive()
    }
}

impl Decoder {
    /// Opens the file at `path`; errors name it as written.
    pub fn open(path: &Path, chunk_ms: f64) -> Result<Decoder, DecodeError> {
        let name = path.display().to_string();
        let file = File::open(path).map_err(|source| DecodeError::Open {
            name: name.clone(),
            source,
        })?;
        let hint = || {
            let mut hint = Hint::new();
            if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
                hint.with_extension(ext);
            }
            hint
        };
        match Decoder::from_source(Box::new(file), hint(), name.clone(), chunk_ms) {
            Ok(d) => Ok(d),
            // Some readers look at the end of a seekable file first (an Ogg stream's
            // last page, for its length) and give up when it is cut short. Read as a
            // stream, the audio before the cut decodes, and the end is known to be
            // missing.
            Err(e @ DecodeError::Unsupported { eof: true, .. }) => {
                let retry = File::open(path).ok().and_then(|f| {
                    let source = Box::new(ReadOnlySource::new(f));
                    Decoder::from_source(source, hint(), name.clone(), chunk_ms).ok()
                });
                match retry {
                    Some(mut d) => {
                        d.truncated = true;
                        Ok(d)
                    }
                    None => Err(e.into_truncated()),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Decodes from any reader (stdin, a pipe: it need not be seekable); `name` is what
    /// errors call it.
    pub fn from_reader<R: Read + Send + Sync + 'static>(
        reader: R,
        name: impl Into<String>,
        chunk_ms: f64,
    ) -> Result<Decoder, DecodeError> {
        Decoder::from_source(
            Box::new(ReadOnlySource::new(reader)),
            Hint::new(),
            name.into(),
            chunk_ms,
        )
        .map_err(DecodeError::into_truncated)
    }

    fn from_source(
        source: Box<dyn MediaSource>,
        hint: Hint,
        name: String,
        chunk_ms: f64,
    ) -> Result<Decoder, DecodeError> {
        let mss = MediaSourceStream::new(source, Default::default());
        let unsupported = |reason: String| DecodeError::Unsupported {
            name: name.clone(),
            reason,
            eof: false,
        };
        let format = symphonia::default::get_probe()
            .probe(
                &hint,
                mss,
                FormatOptions::default(),
                MetadataOptions::default(),
            )
            .map_err(|e| match e {
                SymphoniaError::IoError(io) if io.kind() != std::io::ErrorKind::UnexpectedEof => {
                    DecodeError::Open {
                        name: name.clone(),
                        source: io,
                    }
                }
                SymphoniaError::IoError(io) => DecodeError::Unsupported {
                    name: name.clone(),
                    reason: format!("{io}"),
                    eof: true,
                },
                other => unsupported(format!("{other}")),
            })?;
        let track = format
            .default_track(TrackType::Audio)
            .ok_or_else(|| unsupported("no audio track".into()))?;
        let params = track
            .codec_params
            .as_ref()
            .and_then(|p| p.audio())
            .ok_or_else(|| unsupported("no audio codec parameters".into()))?
            .clone();
        let track_id = track.id;
        let decoder = symphonia::default::get_codecs()
            .make_audio_decoder(&params, &AudioDecoderOptions::default())
            .map_err(|e| unsupported(format!("{e}")))?;
        let rate = params
            .sample_rate
            .filter(|&r| r > 0)
            .ok_or_else(|| unsupported("no sample rate".into()))?;
        let channels = params
            .channels
            .as_ref()
            .map(|c| c.count())
            .filter(|&c| c > 0)
            .ok_or_else(|| unsupported("no channel count".into()))?;
        let channels =
            u16::try_from(channels).map_err(|_| unsupported(format!("{channels} channels")))?;
        // Lossless containers say exactly how long they are, and so does an MP3 with a
        // LAME tag (its Xing frame count); other lengths are estimates, not promises.
        let lossless = params.codec == CODEC_ID_FLAC || params.bits_per_coded_sample.is_some();
        let lame_tag = params.codec == CODEC_ID_MP3 && track.delay.is_some();
        let expected = if lossless || lame_tag {
            track
                .num_frames
                .filter(|&n| n > 0 && n < u64::from(u32::MAX))
        } else {
            None
        };
        Ok(Decoder {
            name,
            format,
            decoder,
            track_id,
            rate,
            channels,
            chunk_frames: ms_to_frames(chunk_ms, rate).max(1) as usize,
            pending: Vec::new(),
            pos: 0,
            scratch: Vec::new(),
            clock: StreamClock::new(),
            decoded: 0,
            expected,
            ended: false,
            failure: None,
            truncated: false,
        })
    }

    /// The file's sample rate.
    pub fn sample_rate(&self) -> u32 {
        self.rate
    }

    /// The file's channel count.
    pub fn channels(&self) -> u16 {
        self.channels
    }

    /// Frames per chunk.
    pub fn chunk_frames(&self) -> usize {
        self.chunk_frames
    }

    /// Frames handed out so far.
    pub fn frames_out(&self) -> u64 {
        self.clock.frames()
    }

    /// The next chunk, `None` at the end of the stream, or the error that ended it (after
    /// the samples decoded before it were handed out; then `None`).
    pub fn read_chunk(&mut self) -> Result<Option<AudioBuffer>, DecodeError> {
        let ch = usize::from(self.channels);
        let want = self.chunk_frames * ch;
        loop {
            let available = self.pending.len() - self.pos;
            if available >= want || (self.ended && available > 0) {
                let n = available.min(want);
                let samples = self.pending[self.pos..self.pos + n].to_vec();
                self.pos += n;
                if self.pos == self.pending.len() {
                    self.pending.clear();
                    self.pos = 0;
                }
                return Ok(Some(self.clock.stamp(samples, self.rate, self.channels)));
            }
            if self.ended {
                return match self.failure.take() {
                    Some(e) => Err(e),
                    None => Ok(None),
                };
            }
            self.decode_packet();
        }
    }

    /// Decodes one more packet into `pending`, or marks the end (with its failure).
    fn decode_packet(&mut self) {
        // Keep what is left at the front, so `pending` never grows past a chunk plus a
        // packet.
        if self.pos > 0 {
            self.pending.drain(..self.pos);
            self.pos = 0;
        }
        let packet = match self.format.next_packet() {
            Ok(Some(p)) => p,
            Ok(None) => return self.end(None),
            Err(SymphoniaError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return self.end(Some("the file ends early (truncated)".into()))
            }
            Err(e) => return self.end(Some(format!("cannot read the stream: {e}"))),
        };
        if packet.track_id != self.track_id {
            return;
        }
        let buf = match self.decoder.decode(&packet) {
            Ok(b) => b,
            Err(e) => return self.end(Some(format!("corrupt audio data: {e}"))),
        };
        if buf.num_planes() != usize::from(self.channels) {
            let reason = format!(
                "the stream changed from {} to {} channels",
                self.channels,
                buf.num_planes()
            );
            return self.end(Some(reason));
        }
        if buf.spec().rate() != self.rate {
            let reason = format!(
                "the stream changed from {} Hz to {} Hz",
                self.rate,
                buf.spec().rate()
            );
            return self.end(Some(reason));
        }
        self.decoded += buf.frames() as u64;
        buf.copy_to_vec_interleaved(&mut self.scratch);
        self.pending.extend_from_slice(&self.scratch);
    }

    fn end(&mut self, reason: Option<String>) {
        self.ended = true;
        let reason = reason.or_else(|| match self.expected {
            Some(n) if self.decoded < n => Some(format!(
                "the file ends early (truncated; its header announces {n} frames)"
            )),
            _ if self.truncated => Some("the file ends early (truncated)".into()),
            _ => None,
        });
        self.failure = reason.map(|reason| DecodeError::Corrupt {
            name: self.name.clone(),
            frame: self.decoded,
            sample_rate: self.rate,
            reason,
        });
    }

    /// Time of the next chunk, in microseconds.
    pub fn next_pts_us(&self) -> i64 {
        frames_to_us(self.clock.frames(), self.rate)
    }
}

impl Iterator for Decoder {
    type Item = Result<AudioBuffer, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.read_chunk().transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containers_are_recognised_by_content() {
        assert_eq!(sniff(b"RIFF\x24\x00\x00\x00WAVEfmt "), Some(Container::Wav));
        assert_eq!(sniff(b"fLaC\0\0\0\x22"), Some(Container::Flac));
        assert_eq!(sniff(b"OggS\0\x02"), Some(Container::Ogg));
        assert_eq!(sniff(b"ID3\x04\0"), Some(Container::Mp3));
        assert_eq!(sniff(&[0xff, 0xfb, 0x90, 0x64]), Some(Container::Mp3));
        assert_eq!(sniff(b"{\"a\": 1}\n"), None);
        assert_eq!(sniff(b"RIFF\x24\x00\x00\x00AVI "), None);
    }

    #[test]
    fn junk_is_unsupported_and_names_the_source() {
        let e = Decoder::from_reader(
            std::io::Cursor::new(b"hello world, not audio".to_vec()),
            "x.bin",
            20.0,
        )
        .unwrap_err();
        let text = e.to_string();
        assert!(
            text.starts_with("x.bin: not a supported audio file"),
            "{text}"
        );
        let e = Decoder::open(Path::new("/nonexistent/a.wav"), 20.0).unwrap_err();
        assert!(
            e.to_string().starts_with("cannot open /nonexistent/a.wav:"),
            "{e}"
        );
    }
}
