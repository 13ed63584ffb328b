//! Writing audio to a WAV file as it streams in: 16-bit integer (rounded, clipped) or
//! 32-bit float samples, the rate and channels taken from the first buffer.
//!
//! The header is rewritten when the writer is finalized, so a stream that fails half
//! way (a buffer of another format, an error upstream) still leaves a valid file with
//! everything written before it.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use remotemedia_core::AudioBuffer;
use schemars::JsonSchema;
use serde::Deserialize;

use crate::pcm::f32_to_i16;

/// Sample format of a written WAV file.
#[derive(Clone, Copy, Debug, Default, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum WavFormat {
    /// 16-bit signed integer (rounded to the nearest step, clipped to full scale).
    #[default]
    S16,
    /// 32-bit IEEE float (written as is).
    F32,
}

/// Why a WAV file could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WavError {
    /// Creating or writing the file failed.
    #[error("cannot write {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The reason.
        source: hound::Error,
    },
    /// A buffer of another rate or channel count than the first one.
    #[error(
        "{}: the stream changed format from {rate} Hz, {channels} ch to {got_rate} Hz, {got_channels} ch; \
         a WAV file holds one format",
        path.display()
    )]
    FormatChanged {
        /// The file.
        path: PathBuf,
        /// The file's rate.
        rate: u32,
        /// The file's channels.
        channels: u16,
        /// The buffer's rate.
        got_rate: u32,
        /// The buffer's channels.
        got_channels: u16,
    },
}

/// What was written, once finalized.
#[derive(Clone, Debug, PartialEq)]
pub struct WavSummary {
    /// The file.
    pub path: PathBuf,
    /// Frames written.
    pub frames: u64,
    /// Rate of the file.
    pub sample_rate: u32,
    /// Channels of the file.
    pub channels: u16,
}

impl WavSummary {
    /// Length of the written audio, in milliseconds.
    pub fn duration_ms(&self) -> f64 {
        if self.sample_rate == 0 {
            return 0.0;
        }
        self.frames as f64 * 1000.0 / f64::from(self.sample_rate)
    }
}

/// A WAV file being written. The file is created at the first buffer (which sets its
/// rate and channels); finalizing a writer that got none writes an empty 16 kHz mono
/// file, so the path always ends up holding a valid WAV.
pub struct WavWriter {
    path: PathBuf,
    format: WavFormat,
    writer: Option<hound::WavWriter<BufWriter<File>>>,
    rate: u32,
    channels: u16,
    frames: u64,
    finalized: bool,
}

impl std::fmt::Debug for WavWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WavWriter")
            .field("path", &self.path)
            .field("format", &self.format)
            .field("frames", &self.frames)
            .finish_non_exhaustive()
    }
}

impl WavWriter {
    /// A writer of `path` in `format`; nothing is created before the first buffer.
    pub fn new(path: impl Into<PathBuf>, format: WavFormat) -> WavWriter {
        WavWriter {
            path: path.into(),
            format,
            writer: None,
            rate: 0,
            channels: 0,
            frames: 0,
            finalized: false,
        }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Frames written so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    fn io(&self, source: hound::Error) -> WavError {
        WavError::Io {
            path: self.path.clone(),
            source,
        }
    }

    fn open(&mut self, rate: u32, channels: u16) -> Result<(), WavError> {
        let spec = hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: match self.format {
                WavFormat::S16 => 16,
                WavFormat::F32 => 32,
            },
            sample_format: match self.format {
                WavFormat::S16 => hound::SampleFormat::Int,
                WavFormat::F32 => hound::SampleFormat::Float,
            },
        };
        let w = hound::WavWriter::create(&self.path, spec).map_err(|e| self.io(e))?;
        self.writer = Some(w);
        self.rate = rate;
        self.channels = channels;
        Ok(())
    }

    /// Appends `buf`; the first buffer creates the file.
    pub fn write(&mut self, buf: &AudioBuffer) -> Result<(), WavError> {
        if self.writer.is_none() && !self.finalized {
            self.open(buf.sample_rate, buf.channels)?;
        }
        if buf.sample_rate != self.rate || buf.channels != self.channels {
            return Err(WavError::FormatChanged {
                path: self.path.clone(),
                rate: self.rate,
                channels: self.channels,
                got_rate: buf.sample_rate,
                got_channels: buf.channels,
            });
        }
        let format = self.format;
        let Some(w) = self.writer.as_mut() else {
            return Err(self.io(hound::Error::IoError(std::io::Error::other(
                "the file was already finalized",
            ))));
        };
        let result = match format {
            WavFormat::S16 => {
                let mut w16 = w.get_i16_writer(buf.samples.len() as u32);
                for &s in buf.samples.iter() {
                    w16.write_sample(f32_to_i16(s));
                }
                w16.flush()
            }
            WavFormat::F32 => buf.samples.iter().try_for_each(|&s| w.write_sample(s)),
        };
        result.map_err(|e| self.io(e))?;
        self.frames += buf.frames() as u64;
        Ok(())
    }

    /// Writes out what is buffered and updates the header, so that the file is valid
    /// as it stands (writing may go on).
    pub fn flush(&mut self) -> Result<(), WavError> {
        let result = match self.writer.as_mut() {
            Some(w) => w.flush(),
            None => Ok(()),
        };
        result.map_err(|e| self.io(e))
    }

    /// Rewrites the header and closes the file (once; later calls return the same
    /// summary).
    pub fn finalize(&mut self) -> Result<WavSummary, WavError> {
        if !self.finalized {
            if self.writer.is_none() {
                self.open(16_000, 1)?;
            }
            self.finalized = true;
            if let Some(w) = self.writer.take() {
                w.finalize().map_err(|e| self.io(e))?;
            }
        }
        Ok(WavSummary {
            path: self.path.clone(),
            frames: self.frames,
            sample_rate: self.rate,
            channels: self.channels,
        })
    }
}

impl Drop for WavWriter {
    fn drop(&mut self) {
        if let Some(w) = self.writer.take() {
            let _ = w.finalize();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sixteen_bit_rounds_and_clips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.wav");
        let mut w = WavWriter::new(&path, WavFormat::S16);
        let samples = vec![
            0.0,
            0.5,
            -0.5,
            1.5,
            -1.5,
            1.0,
            100.4 / 32768.0,
            100.6 / 32768.0,
        ];
        w.write(&AudioBuffer::new(samples.clone(), 8000, 2))
            .unwrap();
        let s = w.finalize().unwrap();
        assert_eq!((s.frames, s.sample_rate, s.channels), (4, 8000, 2));
        let mut r = hound::WavReader::open(&path).unwrap();
        assert_eq!(r.spec().bits_per_sample, 16);
        let got: Vec<i16> = r.samples::<i16>().map(Result::unwrap).collect();
        assert_eq!(got, [0, 16384, -16384, 32767, -32768, 32767, 100, 101]);
    }

    #[test]
    fn float_is_written_as_is_and_a_format_change_keeps_the_file_valid() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.wav");
        let mut w = WavWriter::new(&path, WavFormat::F32);
        let samples: Vec<f32> = (0..100).map(|i| i as f32 / 77.0 - 0.6).collect();
        w.write(&AudioBuffer::new(samples.clone(), 44_100, 1))
            .unwrap();
        let e = w
            .write(&AudioBuffer::new(vec![0.0; 4], 48_000, 1))
            .unwrap_err();
        assert!(
            e.to_string().ends_with(
                "f.wav: the stream changed format from 44100 Hz, 1 ch to 48000 Hz, 1 ch; a WAV file holds one format"
            ),
            "{e}"
        );
        // Flushed, the file is valid as it stands.
        w.flush().unwrap();
        assert_eq!(hound::WavReader::open(&path).unwrap().duration(), 100);
        w.finalize().unwrap();
        let mut r = hound::WavReader::open(&path).unwrap();
        assert_eq!(r.spec().sample_format, hound::SampleFormat::Float);
        assert_eq!(r.duration(), 100);
        let got: Vec<f32> = r.samples::<f32>().map(Result::unwrap).collect();
        assert_eq!(got, samples);
    }

    #[test]
    fn dropping_an_unfinished_writer_still_finalizes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.wav");
        {
            let mut w = WavWriter::new(&path, WavFormat::S16);
            w.write(&AudioBuffer::new(vec![0.25; 10], 16_000, 1))
                .unwrap();
        }
        assert_eq!(hound::WavReader::open(&path).unwrap().duration(), 10);
        let empty = dir.path().join("e.wav");
        let s = WavWriter::new(&empty, WavFormat::S16).finalize().unwrap();
        assert_eq!(s.frames, 0);
        assert_eq!(hound::WavReader::open(&empty).unwrap().duration(), 0);
    }
}
