//! Decoding against known samples (WAV written here) and against the reference
//! decoders' output (FLAC, MP3 and Ogg Vorbis encoded with `flac`, `lame` and `oggenc`,
//! decoded by `sox`/`flac -d`, `lame --decode` and `oggdec`).

use std::path::{Path, PathBuf};
use std::process::Command;

use remotemedia_audio::decode::{DecodeError, Decoder};
use remotemedia_core::{frames_to_us, AudioBuffer};

/// All chunks of a file, checking each chunk's size and time on the way.
fn decode_all(d: &mut Decoder) -> Vec<f32> {
    let chunk = d.chunk_frames();
    let mut out = Vec::new();
    let mut frames = 0u64;
    let mut last_short = false;
    for b in d.by_ref() {
        let b: AudioBuffer = b.unwrap_or_else(|e| panic!("{e}"));
        assert!(!last_short, "only the last chunk may be short");
        assert_eq!(b.pts_us, frames_to_us(frames, b.sample_rate));
        assert!(b.frames() <= chunk);
        last_short = b.frames() < chunk;
        frames += b.frames() as u64;
        out.extend_from_slice(&b.samples);
    }
    out
}

/// A test signal: a sine per channel plus a little deterministic noise, in [-0.9, 0.9].
fn signal(frames: usize, channels: usize, rate: u32) -> Vec<f64> {
    let mut x = 0x9e37_79b9_u32;
    let mut out = Vec::with_capacity(frames * channels);
    for f in 0..frames {
        for c in 0..channels {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let noise = (f64::from(x) / f64::from(u32::MAX) - 0.5) * 0.1;
            let t = f as f64 / f64::from(rate);
            let s = 0.8 * (std::f64::consts::TAU * (440.0 + 110.0 * c as f64) * t).sin();
            out.push(s + noise);
        }
    }
    out
}

fn write_int_wav(path: &Path, bits: u16, channels: u16, rate: u32, x: &[f64]) -> Vec<f64> {
    let spec = hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: bits,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    let scale = f64::from(1u32 << (bits - 1));
    let mut want = Vec::new();
    for &s in x {
        let v = (s * scale).round().clamp(-scale, scale - 1.0) as i32;
        if bits == 8 {
            w.write_sample(v as i8).unwrap();
        } else {
            w.write_sample(v).unwrap();
        }
        want.push(f64::from(v) / scale);
    }
    w.finalize().unwrap();
    want
}

#[test]
fn integer_and_float_wav_decode_exactly() {
    let dir = tempfile::tempdir().unwrap();
    for channels in [1u16, 2] {
        let rate = 22_050;
        let x = signal(10_000, usize::from(channels), rate);
        for bits in [8u16, 16, 24, 32] {
            let path = dir.path().join(format!("i{bits}_{channels}.wav"));
            let want = write_int_wav(&path, bits, channels, rate, &x);
            let mut d = Decoder::open(&path, 20.0).unwrap();
            assert_eq!((d.sample_rate(), d.channels()), (rate, channels));
            assert_eq!(d.chunk_frames(), 441);
            let got = decode_all(&mut d);
            assert_eq!(got.len(), want.len(), "{bits}-bit {channels} ch");
            // Exact to 1e-6 of the integer step; 32-bit values are as exact as f32 is
            // (24 bits of mantissa).
            let step = 1.0 / f64::from(1u32 << (bits - 1));
            let tol = if bits == 32 { 6e-8 } else { 1e-6 * step };
            for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (f64::from(g) - w).abs() <= tol,
                    "{bits}-bit {channels} ch sample {i}: {g} vs {w}"
                );
            }
        }
        let path = dir.path().join(format!("f32_{channels}.wav"));
        let spec = hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: 32,
            sample_format: hound::SampleFormat::Float,
        };
        let mut w = hound::WavWriter::create(&path, spec).unwrap();
        for &s in &x {
            w.write_sample(s as f32).unwrap();
        }
        w.finalize().unwrap();
        let got = decode_all(&mut Decoder::open(&path, 20.0).unwrap());
        let want: Vec<f32> = x.iter().map(|&s| s as f32).collect();
        assert_eq!(got, want, "float {channels} ch");
    }
}

#[test]
fn the_format_comes_from_the_content_and_readers_need_not_seek() {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("a.wav");
    let want = write_int_wav(&wav, 16, 2, 16_000, &signal(3_000, 2, 16_000));
    // Misnamed: the content decides.
    let misnamed = dir.path().join("a.mp3");
    std::fs::copy(&wav, &misnamed).unwrap();
    let got = decode_all(&mut Decoder::open(&misnamed, 10.0).unwrap());
    assert_eq!(got.len(), want.len());
    // From a plain reader (no seeking), as stdin is.
    let bytes = std::fs::read(&wav).unwrap();
    let mut d = Decoder::from_reader(Plain(std::io::Cursor::new(bytes)), "stdin", 10.0).unwrap();
    assert_eq!(d.chunk_frames(), 160);
    let got2 = decode_all(&mut d);
    assert_eq!(got, got2);
}

/// A reader that is only `Read` (a `Cursor` would be seekable).
struct Plain<R>(R);
impl<R: std::io::Read> std::io::Read for Plain<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
    }
}

#[test]
fn a_truncated_wav_fails_naming_the_file_and_position_after_its_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("speech.wav");
    write_int_wav(&wav, 16, 1, 8_000, &signal(16_000, 1, 8_000));
    let bytes = std::fs::read(&wav).unwrap();
    // Keep the header and 1.5 s of the 2 s.
    let cut = dir.path().join("cut.wav");
    std::fs::write(&cut, &bytes[..44 + 12_000 * 2]).unwrap();
    let mut d = Decoder::open(&cut, 20.0).unwrap();
    let mut frames = 0u64;
    let err = loop {
        match d.read_chunk() {
            Ok(Some(b)) => frames += b.frames() as u64,
            Ok(None) => panic!("a truncated file decoded to its end"),
            Err(e) => break e,
        }
    };
    assert!(matches!(err, DecodeError::Corrupt { .. }));
    let text = err.to_string();
    assert!(text.starts_with(&format!("{}: ", cut.display())), "{text}");
    assert!(text.contains("truncated"), "{text}");
    // Everything before the cut was handed out, and the position says where it is.
    assert_eq!(frames, 12_000, "{text}");
    assert!(text.contains("at 1.500 s (frame 12000)"), "{text}");
    assert_eq!(err.position_secs(), Some(1.5));
    assert!(d.read_chunk().unwrap().is_none());
}

fn tool(name: &str) -> Command {
    let ok = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "`{name}` is needed to make the fixtures: apt-get install sox libsox-fmt-all flac lame vorbis-tools"
    );
    Command::new(name)
}

fn run(mut c: Command) {
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{c:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Interleaved f32 samples from `sox FILE -t f32 -`.
fn sox_f32(path: &Path) -> Vec<f32> {
    let out = tool("sox")
        .arg(path)
        .args(["-t", "f32", "-"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// 16-bit WAV samples as f32 (`v / 32768`).
fn wav_i16(path: &Path) -> Vec<f32> {
    hound::WavReader::open(path)
        .unwrap()
        .samples::<i16>()
        .map(|s| f32::from(s.unwrap()) / 32768.0)
        .collect()
}

/// A 16-bit stereo 44.1 kHz source for the encoders, 1 s.
fn source(dir: &Path) -> (PathBuf, Vec<f64>) {
    let wav = dir.join("src.wav");
    let want = write_int_wav(&wav, 16, 2, 44_100, &signal(44_100, 2, 44_100));
    (wav, want)
}

#[test]
fn flac_matches_the_reference_decoder_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let (wav, want) = source(dir.path());
    let flac = dir.path().join("a.flac");
    let mut c = tool("flac");
    c.args(["-s", "-f", "-o"]).arg(&flac).arg(&wav);
    run(c);
    let mut d = Decoder::open(&flac, 20.0).unwrap();
    assert_eq!((d.sample_rate(), d.channels()), (44_100, 2));
    let got = decode_all(&mut d);
    // sox's decode, and `flac -d` back to WAV: all three agree to the bit.
    let reference = sox_f32(&flac);
    let back = dir.path().join("back.wav");
    let mut c = tool("flac");
    c.args(["-s", "-d", "-f", "-o"]).arg(&back).arg(&flac);
    run(c);
    let flac_d = wav_i16(&back);
    assert_eq!(got.len(), want.len());
    assert_eq!(got.len(), reference.len());
    for i in 0..got.len() {
        let g = f64::from(got[i]);
        assert!((g - want[i]).abs() < 1e-6 / 32768.0, "sample {i}");
        assert!(
            (got[i] - reference[i]).abs() < 1e-6 / 32768.0,
            "sample {i} vs sox"
        );
        assert_eq!(got[i], flac_d[i], "sample {i} vs flac -d");
    }
}

/// Best alignment of `got` against `reference` (interleaved, `ch` channels) within
/// `max_shift` frames either way: (shift in frames, SNR in dB over the overlap).
fn aligned_snr(got: &[f32], reference: &[f32], ch: usize, max_shift: isize) -> (isize, f64) {
    let frames_g = (got.len() / ch) as isize;
    let frames_r = (reference.len() / ch) as isize;
    let mut best = (0, f64::MIN);
    for shift in -max_shift..=max_shift {
        let (mut sig, mut err) = (0.0f64, 0.0f64);
        for f in 0..frames_r {
            let g = f + shift;
            if g < 0 || g >= frames_g {
                continue;
            }
            for c in 0..ch {
                let r = f64::from(reference[f as usize * ch + c]);
                let v = f64::from(got[g as usize * ch + c]);
                sig += r * r;
                err += (r - v) * (r - v);
            }
        }
        let snr = 10.0 * (sig / err.max(1e-20)).log10();
        if snr > best.1 {
            best = (shift, snr);
        }
    }
    best
}

#[test]
fn mp3_matches_the_reference_decoder() {
    let dir = tempfile::tempdir().unwrap();
    let (wav, _) = source(dir.path());
    let mp3 = dir.path().join("a.mp3");
    let mut c = tool("lame");
    c.args(["--quiet", "-b", "192"]).arg(&wav).arg(&mp3);
    run(c);
    let mut d = Decoder::open(&mp3, 20.0).unwrap();
    assert_eq!((d.sample_rate(), d.channels()), (44_100, 2));
    let got = decode_all(&mut d);
    let back = dir.path().join("back.wav");
    let mut c = tool("lame");
    c.args(["--quiet", "--decode"]).arg(&mp3).arg(&back);
    run(c);
    let reference = wav_i16(&back);
    // Both decoders trim the encoder's delay and padding (from the LAME tag): the
    // length is the source's and the best alignment is no shift. The search allows a
    // granule (576 frames) either way, so a delay handled differently shows as a shift.
    let frames = got.len() / 2;
    assert_eq!(frames, 44_100);
    let (shift, snr) = aligned_snr(&got, &reference, 2, 576);
    // The decoders then differ in rounding only (the reference output is 16-bit:
    // its quantisation alone limits the SNR to about 90 dB).
    assert_eq!(shift, 0, "SNR {snr:.1} dB");
    assert!(snr > 80.0, "SNR {snr:.1} dB");
    eprintln!("mp3: {frames} frames, shift {shift}, SNR vs lame --decode {snr:.1} dB");
}

#[test]
fn vorbis_matches_the_reference_decoder() {
    let dir = tempfile::tempdir().unwrap();
    let (wav, _) = source(dir.path());
    let ogg = dir.path().join("a.ogg");
    let mut c = tool("oggenc");
    c.args(["--quiet", "-q", "6", "-o"]).arg(&ogg).arg(&wav);
    run(c);
    let mut d = Decoder::open(&ogg, 20.0).unwrap();
    assert_eq!((d.sample_rate(), d.channels()), (44_100, 2));
    let got = decode_all(&mut d);
    let back = dir.path().join("back.wav");
    let mut c = tool("oggdec");
    c.args(["--quiet", "-o"]).arg(&back).arg(&ogg);
    run(c);
    let reference = wav_i16(&back);
    // The granule positions trim the stream to the source's length exactly.
    let frames = got.len() / 2;
    assert_eq!(frames, 44_100);
    let (shift, snr) = aligned_snr(&got, &reference, 2, 576);
    assert_eq!(shift, 0, "SNR {snr:.1} dB");
    assert!(snr > 80.0, "SNR {snr:.1} dB");
    eprintln!("vorbis: {frames} frames, shift {shift}, SNR vs oggdec {snr:.1} dB");
}

#[test]
fn a_corrupt_flac_fails_naming_the_file_and_position() {
    let dir = tempfile::tempdir().unwrap();
    let (wav, _) = source(dir.path());
    let flac = dir.path().join("a.flac");
    let mut c = tool("flac");
    c.args(["-s", "-f", "-o"]).arg(&flac).arg(&wav);
    run(c);
    let bytes = std::fs::read(&flac).unwrap();
    let cut = dir.path().join("cut.flac");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let mut d = Decoder::open(&cut, 20.0).unwrap();
    let mut frames = 0u64;
    let err = loop {
        match d.read_chunk() {
            Ok(Some(b)) => frames += b.frames() as u64,
            Ok(None) => panic!("a truncated FLAC decoded to its end"),
            Err(e) => break e,
        }
    };
    let text = err.to_string();
    assert!(text.starts_with(&format!("{}: ", cut.display())), "{text}");
    assert!(
        frames > 10_000 && frames < 44_100,
        "{frames} frames; {text}"
    );
    eprintln!("{text}");
    let at = err.position_secs().unwrap();
    assert!((at - frames as f64 / 44_100.0).abs() < 1e-9, "{text}");
    assert!(text.contains(&format!("at {at:.3} s")), "{text}");
}

#[test]
fn cut_lossy_files_fail_naming_the_position_after_their_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let (wav, _) = source(dir.path());
    let ogg = dir.path().join("a.ogg");
    let mut c = tool("oggenc");
    c.args(["--quiet", "-o"]).arg(&ogg).arg(&wav);
    run(c);
    let mp3 = dir.path().join("a.mp3");
    let mut c = tool("lame");
    c.args(["--quiet"]).arg(&wav).arg(&mp3);
    run(c);
    for f in [ogg, mp3] {
        let bytes = std::fs::read(&f).unwrap();
        let ext = f.extension().unwrap().to_str().unwrap().to_string();
        let cut = dir.path().join(format!("cut.{ext}"));
        // Half the file: the Ogg reader cannot find its last page, the MP3's LAME tag
        // announces more frames than there are.
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
        let mut d = Decoder::open(&cut, 20.0).unwrap_or_else(|e| panic!("{e}"));
        let mut frames = 0u64;
        let err = loop {
            match d.read_chunk() {
                Ok(Some(b)) => frames += b.frames() as u64,
                Ok(None) => panic!("a cut {ext} decoded to its end"),
                Err(e) => break e,
            }
        };
        let text = err.to_string();
        assert!(
            frames > 5_000 && frames < 40_000,
            "{ext}: {frames} frames; {text}"
        );
        assert!(
            text.starts_with(&format!(
                "{}: the file ends early (truncated",
                cut.display()
            )),
            "{text}"
        );
        assert!(
            text.ends_with(&format!(
                "at {:.3} s (frame {frames})",
                frames as f64 / 44_100.0
            )),
            "{text}"
        );
        // Cut inside its headers: nothing to decode, and it says so.
        std::fs::write(&cut, &bytes[..200]).unwrap();
        let e = Decoder::open(&cut, 20.0).unwrap_err().to_string();
        if ext == "ogg" {
            assert_eq!(
                e,
                format!(
                    "{}: the file ends early (truncated) before its first audio frame, at 0.000 s",
                    cut.display()
                )
            );
        }
    }
}
