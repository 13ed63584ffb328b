//! What `--output` writes: JSON Lines (the default), a WAV file (`--output X.wav`,
//! `--output-format s16|f32`) or raw PCM (`--output-format s16le|f32le|u8|mulaw|alaw`).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use remotemedia_audio::pcm::PcmFormat;
use remotemedia_audio::wav::{WavError, WavFormat, WavWriter};
use remotemedia_core::Data;

use crate::jsonl::write_item;

/// The kind of output chosen by `--output` and `--output-format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputKind {
    /// One JSON value per line.
    Jsonl,
    /// A WAV file of the sink's audio.
    Wav(WavFormat),
    /// Headerless PCM of the sink's audio.
    Raw(PcmFormat),
}

/// Chooses the output from `--output` and `--output-format`; the error is the message to
/// print after `error: `.
pub fn choose(output: &str, format: Option<&str>) -> Result<OutputKind, String> {
    let is_wav = output.to_ascii_lowercase().ends_with(".wav");
    let wav = |f: WavFormat| {
        if output == "-" {
            Err(format!(
                "--output-format {} writes a WAV file: give --output FILE.wav",
                format.unwrap_or("s16")
            ))
        } else {
            Ok(OutputKind::Wav(f))
        }
    };
    match format.map(str::to_ascii_lowercase).as_deref() {
        None if is_wav => wav(WavFormat::S16),
        None | Some("jsonl") => Ok(OutputKind::Jsonl),
        Some("s16") => wav(WavFormat::S16),
        Some("f32") => wav(WavFormat::F32),
        Some(other) => other.parse().map(OutputKind::Raw).map_err(|_| {
            format!(
                "unknown --output-format `{other}`; expected s16 or f32 (a WAV file), s16le, f32le, \
                 u8, mulaw or alaw (raw PCM), or jsonl"
            )
        }),
    }
}

/// Why an output could not be written.
#[derive(Debug)]
pub enum OutputError {
    /// Writing failed.
    Io(String),
    /// Whoever read the output has gone (a closed pipe, as `| head -1` leaves): the run
    /// has no one to write for.
    Closed,
    /// An item that this output cannot hold (the message names the sink).
    Item(String),
}

impl std::fmt::Display for OutputError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OutputError::Io(e) => write!(f, "cannot write output: {e}"),
            OutputError::Closed => f.write_str("the output was closed"),
            OutputError::Item(m) => f.write_str(m),
        }
    }
}

impl From<std::io::Error> for OutputError {
    fn from(e: std::io::Error) -> OutputError {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            OutputError::Closed
        } else {
            OutputError::Io(e.to_string())
        }
    }
}

fn article(name: &str) -> String {
    let vowel = name.starts_with(['a', 'e', 'i', 'o', 'u']);
    format!("{} {name}", if vowel { "an" } else { "a" })
}

/// An open output.
pub enum Output {
    /// JSON Lines to a writer.
    Jsonl(Box<dyn Write + Send>),
    /// A WAV file.
    Wav { writer: WavWriter, name: String },
    /// Raw PCM to a writer, of one rate and channel count.
    Raw {
        out: Box<dyn Write + Send>,
        format: PcmFormat,
        name: String,
        stream: Option<(u32, u16)>,
        bytes: Vec<u8>,
    },
}

impl Output {
    /// An output of `kind`: `out` is where JSON Lines or raw PCM go, `name` the file's
    /// name as given (`-` for stdout), `path` the file a WAV writer creates.
    pub fn new(
        kind: OutputKind,
        name: &str,
        path: &Path,
        out: impl FnOnce() -> std::io::Result<Box<dyn Write + Send>>,
    ) -> std::io::Result<Output> {
        Ok(match kind {
            OutputKind::Jsonl => Output::Jsonl(out()?),
            OutputKind::Wav(f) => Output::Wav {
                writer: WavWriter::new(path, f),
                name: name.to_string(),
            },
            OutputKind::Raw(format) => Output::Raw {
                out: out()?,
                format,
                name: if name == "-" {
                    "stdout".into()
                } else {
                    name.to_string()
                },
                stream: None,
                bytes: Vec::new(),
            },
        })
    }

    /// Writes one output item of `sink`; `label` tags JSON Lines from one of several
    /// sinks.
    pub fn write(
        &mut self,
        sink: &str,
        label: Option<&str>,
        item: &Data,
    ) -> Result<(), OutputError> {
        match self {
            Output::Jsonl(out) => write_item(out, label, item).map_err(OutputError::from),
            Output::Wav { writer, name } => {
                let Data::Audio(a) = item else {
                    return Err(not_audio(name, sink, item));
                };
                writer.write(a).map_err(|e| match e {
                    WavError::FormatChanged {
                        rate,
                        channels,
                        got_rate,
                        got_channels,
                        ..
                    } => OutputError::Item(format!(
                        "output {name}: sink `{sink}` changed format from {rate} Hz, {channels} ch \
                         to {got_rate} Hz, {got_channels} ch; a WAV file holds one format"
                    )),
                    other => wav_io(name, other),
                })
            }
            Output::Raw {
                out,
                format,
                name,
                stream,
                bytes,
            } => {
                let Data::Audio(a) = item else {
                    return Err(not_audio(name, sink, item));
                };
                let (rate, channels) = *stream.get_or_insert((a.sample_rate, a.channels));
                if (a.sample_rate, a.channels) != (rate, channels) {
                    return Err(OutputError::Item(format!(
                        "output {name}: sink `{sink}` changed format from {rate} Hz, {channels} ch \
                         to {} Hz, {} ch; a raw PCM stream holds one format",
                        a.sample_rate, a.channels
                    )));
                }
                bytes.clear();
                format.encode_into(&a.samples, bytes);
                out.write_all(bytes).map_err(OutputError::from)
            }
        }
    }

    /// Writes out what is buffered (a WAV file's header too, so it is valid as it stands).
    pub fn flush(&mut self) -> Result<(), OutputError> {
        match self {
            Output::Jsonl(out) | Output::Raw { out, .. } => out.flush().map_err(OutputError::from),
            Output::Wav { writer, name } => writer.flush().map_err(|e| wav_io(name, e)),
        }
    }

    /// Ends the output: flushes it, finalizes a WAV file.
    pub fn finish(&mut self) -> Result<(), OutputError> {
        match self {
            Output::Wav { writer, name } => {
                writer.finalize().map(|_| ()).map_err(|e| wav_io(name, e))
            }
            _ => self.flush(),
        }
    }
}

/// A WAV writer's error naming the output as given, not the file written meanwhile.
fn wav_io(name: &str, e: WavError) -> OutputError {
    match e {
        WavError::Io { source, .. } => OutputError::Io(format!("{name}: {source}")),
        other => OutputError::Io(other.to_string()),
    }
}

/// An output file written under a temporary name in its directory and renamed over
/// the file asked for only when [`PendingFile::commit`]ted: a run that fails before it
/// starts leaves an existing file as it was. Dropped uncommitted, the temporary file
/// is removed. A target that exists and is not a regular file (`/dev/null`, a named
/// pipe) is written directly.
#[derive(Debug)]
pub struct PendingFile {
    /// The file written.
    path: PathBuf,
    /// Where it goes at the end, when that is not `path`.
    target: Option<PathBuf>,
}

impl PendingFile {
    /// Creates the file to write for `target`, and opens it.
    pub fn create(target: &Path) -> std::io::Result<(PendingFile, File)> {
        // A link is followed: its target is replaced, not the link.
        let target = std::fs::canonicalize(target).unwrap_or_else(|_| target.to_path_buf());
        let meta = std::fs::metadata(&target).ok();
        if meta.as_ref().is_some_and(|m| !m.is_file()) {
            let file = File::create(&target)?;
            let pending = PendingFile {
                path: target,
                target: None,
            };
            return Ok((pending, file));
        }
        let dir = match target.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let base = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut attempt = 0u32;
        loop {
            let path = dir.join(format!(".{base}.{}-{attempt}.tmp", std::process::id()));
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(file) => {
                    // The file keeps the permissions of the one it replaces.
                    if let Some(m) = &meta {
                        let _ = std::fs::set_permissions(&path, m.permissions());
                    }
                    let pending = PendingFile {
                        path,
                        target: Some(target),
                    };
                    return Ok((pending, file));
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempt < 100 => {
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Puts the written file in place of the target.
    pub fn commit(mut self) -> std::io::Result<()> {
        match self.target.take() {
            Some(target) => std::fs::rename(&self.path, target),
            None => Ok(()),
        }
    }
}

impl Drop for PendingFile {
    fn drop(&mut self) {
        if self.target.is_some() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Whether two paths name the same existing file (hard and symbolic links included).
pub fn same_file(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let (Ok(x), Ok(y)) = (std::fs::metadata(a), std::fs::metadata(b)) {
            return (x.dev(), x.ino()) == (y.dev(), y.ino());
        }
        false
    }
    #[cfg(not(unix))]
    {
        match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
            (Ok(x), Ok(y)) => x == y,
            _ => false,
        }
    }
}

fn not_audio(name: &str, sink: &str, item: &Data) -> OutputError {
    OutputError::Item(format!(
        "output {name}: sink `{sink}` emitted {}, not audio; only audio can be written there",
        article(item.type_name())
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_output_is_chosen_by_extension_and_format() {
        assert_eq!(choose("-", None), Ok(OutputKind::Jsonl));
        assert_eq!(choose("out.jsonl", None), Ok(OutputKind::Jsonl));
        assert_eq!(choose("out.WAV", None), Ok(OutputKind::Wav(WavFormat::S16)));
        assert_eq!(
            choose("out.wav", Some("f32")),
            Ok(OutputKind::Wav(WavFormat::F32))
        );
        assert_eq!(
            choose("-", Some("s16le")),
            Ok(OutputKind::Raw(PcmFormat::S16le))
        );
        assert_eq!(
            choose("x.pcm", Some("mulaw")),
            Ok(OutputKind::Raw(PcmFormat::Mulaw))
        );
        assert_eq!(
            choose("-", Some("f32")).unwrap_err(),
            "--output-format f32 writes a WAV file: give --output FILE.wav"
        );
        assert!(choose("-", Some("s24le"))
            .unwrap_err()
            .starts_with("unknown --output-format `s24le`; expected s16 or f32"));
    }
}
