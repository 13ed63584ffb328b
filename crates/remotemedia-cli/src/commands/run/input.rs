//! What `--input` reads: JSON Lines, an audio file (recognised by its first bytes) or
//! raw PCM (`--input-format`), handed to the session in batches, optionally paced
//! at the speed of its timestamps (`--realtime`).

use std::fs::File;
use std::io::{BufReader, Cursor, Read};
use std::time::{Duration, Instant};

use remotemedia_audio::decode::{sniff, Decoder, SNIFF_LEN};
use remotemedia_audio::pcm::{PcmSpec, PcmStreamDecoder};
use remotemedia_audio::stream::ms_to_frames;
use remotemedia_core::Data;

use crate::jsonl::read_items;

/// The first bytes of a stream, put back in front of the rest.
type Peeked<R> = std::io::Chain<Cursor<Vec<u8>>, R>;

/// An opened input.
pub enum Input {
    /// JSON Lines.
    Jsonl(BufReader<Box<dyn Read + Send>>),
    /// An audio file or stream.
    Audio(Box<Decoder>),
    /// Headerless PCM.
    Pcm {
        reader: Box<dyn Read + Send>,
        spec: PcmSpec,
        name: String,
        chunk_frames: usize,
    },
}

/// Bytes that may start an audio stream: `R`IFF/`R`F64, `f`LaC, `O`ggS, `I`D3, an MPEG
/// frame sync. A JSON Lines input starting with anything else needs no more look-ahead.
fn may_be_audio(first: u8) -> bool {
    matches!(first, b'R' | b'f' | b'O' | b'I' | 0xff)
}

/// Reads the head of `r`: enough to recognise audio, but never waiting for more once
/// the input is plainly text (a line typed on a terminal is handed on at once).
fn peek(r: &mut impl Read) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(SNIFF_LEN);
    let mut buf = [0u8; SNIFF_LEN];
    while head.len() < SNIFF_LEN {
        let n = match r.read(&mut buf[..SNIFF_LEN - head.len()]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        head.extend_from_slice(&buf[..n]);
        if !may_be_audio(head[0]) || head.contains(&b'\n') {
            break;
        }
    }
    Ok(head)
}

fn chain<R: Read>(head: Vec<u8>, rest: R) -> Peeked<R> {
    Cursor::new(head).chain(rest)
}

/// Opens `--input` (`-` is stdin) as `spec`'s raw PCM, or as audio or JSON Lines by its
/// content. The error is the message to print after `error: `.
pub fn open(input: &str, pcm: Option<PcmSpec>, chunk_ms: f64) -> Result<Input, String> {
    let stdin = input == "-";
    let name = if stdin {
        "stdin".to_string()
    } else {
        input.to_string()
    };
    if let Some(spec) = pcm {
        let reader: Box<dyn Read + Send> = if stdin {
            Box::new(std::io::stdin())
        } else {
            Box::new(File::open(input).map_err(|e| format!("cannot open input {input}: {e}"))?)
        };
        let chunk_frames = ms_to_frames(chunk_ms, spec.sample_rate).max(1) as usize;
        return Ok(Input::Pcm {
            reader,
            spec,
            name,
            chunk_frames,
        });
    }
    if stdin {
        let mut r = std::io::stdin();
        let head = peek(&mut r).map_err(|e| format!("cannot read input stdin: {e}"))?;
        if sniff(&head).is_some() {
            let d = Decoder::from_reader(chain(head, r), name, chunk_ms)
                .map_err(|e| format!("input {e}"))?;
            return Ok(Input::Audio(Box::new(d)));
        }
        return Ok(Input::Jsonl(BufReader::with_capacity(
            JSONL_BUFFER,
            Box::new(chain(head, r)),
        )));
    }
    let mut f = File::open(input).map_err(|e| format!("cannot open input {input}: {e}"))?;
    let head = peek(&mut f).map_err(|e| format!("cannot read input {input}: {e}"))?;
    if sniff(&head).is_some() {
        // Opened again by path: a file can seek, which some containers use.
        let d = Decoder::open(std::path::Path::new(input), chunk_ms)
            .map_err(|e| format!("input {e}"))?;
        return Ok(Input::Audio(Box::new(d)));
    }
    Ok(Input::Jsonl(BufReader::with_capacity(
        JSONL_BUFFER,
        Box::new(chain(head, f)),
    )))
}

/// Bytes of JSON Lines read at once.
const JSONL_BUFFER: usize = 1 << 16;

/// Holds items back until their stream time has come (`--realtime`): an item with
/// `pts_us` p lasting d is due at `start + p + d`, as a live source delivers it.
pub struct Pacer {
    start: Instant,
}

impl Pacer {
    /// A pacer whose stream time 0 is `start`.
    pub fn new(start: Instant) -> Pacer {
        Pacer { start }
    }

    /// Waits until `item` is due.
    pub fn wait_for(&self, item: &Data) {
        if let Some(t) = due_us(item) {
            let due = self.start + Duration::from_micros(u64::try_from(t).unwrap_or(0));
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
    }
}

/// When an input item is complete in stream time: an audio buffer's end, an event's
/// `pts_us`.
pub fn due_us(item: &Data) -> Option<i64> {
    match item {
        Data::Audio(a) => Some(a.end_pts_us()),
        other => stream_time_us(other),
    }
}

/// The stream time an output stands for: an audio buffer's end (its last frame has
/// been heard), a map's `pts_us`.
pub fn stream_time_us(item: &Data) -> Option<i64> {
    match item {
        Data::Audio(a) => Some(a.end_pts_us()),
        Data::Map(m) => m.get("pts_us").and_then(Data::as_i64),
        _ => None,
    }
}

/// Feeds `input` to `send` in batches of up to `batch` items (one at a time when
/// paced), JSON Lines of at most `max_line` bytes. With `eager` (a pipe or terminal), no item waits for more input: JSON Lines
/// move in batches of the lines at hand, audio chunk by chunk. Returns the items read,
/// or the message of what stopped the input (items before it have been sent). `send`
/// returns false to stop early.
pub fn feed(
    input: Input,
    batch: usize,
    eager: bool,
    max_line: usize,
    pacer: Option<&Pacer>,
    mut send: impl FnMut(Vec<Data>) -> bool,
) -> Result<u64, String> {
    let batch = batch.max(1);
    if let Input::Jsonl(r) = input {
        return match pacer {
            None => read_items(r, batch, eager, max_line, send),
            Some(p) => read_items(r, 1, true, max_line, |items| {
                items.iter().for_each(|i| p.wait_for(i));
                send(items)
            }),
        }
        .map_err(|bad| format!("input line {}: {}", bad.line, bad.message));
    }
    let batch = if pacer.is_some() || eager { 1 } else { batch };
    let mut count = 0u64;
    let mut pending: Vec<Data> = Vec::new();
    // Queues an item; false when the session stopped taking input.
    let mut push = |item: Data, pending: &mut Vec<Data>| -> bool {
        if let Some(p) = pacer {
            p.wait_for(&item);
        }
        count += 1;
        pending.push(item);
        pending.len() < batch || send(std::mem::take(pending))
    };
    let result = match input {
        Input::Jsonl(_) => Ok(()),
        Input::Audio(mut d) => loop {
            match d.read_chunk() {
                Ok(Some(buf)) => {
                    if !push(Data::from(buf), &mut pending) {
                        return Ok(count);
                    }
                }
                Ok(None) => break Ok(()),
                Err(e) => break Err(format!("input {e}")),
            }
        },
        Input::Pcm {
            mut reader,
            spec,
            name,
            chunk_frames,
        } => {
            let mut decoder = PcmStreamDecoder::new(spec);
            let mut buf = vec![0u8; chunk_frames * spec.frame_bytes()];
            loop {
                // Fill a whole chunk (a pipe hands over what it has).
                let mut filled = 0;
                let mut eof = false;
                while filled < buf.len() {
                    match reader.read(&mut buf[filled..]) {
                        Ok(0) => {
                            eof = true;
                            break;
                        }
                        Ok(n) => filled += n,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(format!("cannot read input {name}: {e}")),
                    }
                }
                if let Some(audio) = decoder.push(&buf[..filled]) {
                    if !push(Data::from(audio), &mut pending) {
                        return Ok(count);
                    }
                }
                if eof {
                    break decoder.finish().map_err(|e| format!("input {name}: {e}"));
                }
            }
        }
    };
    if !pending.is_empty() {
        send(pending);
    }
    result.map(|()| count)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands over one byte per read, as a slow pipe may.
    struct Trickle(Cursor<Vec<u8>>);
    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = buf.len().min(1);
            self.0.read(&mut buf[..n])
        }
    }

    #[test]
    fn text_is_not_held_back_for_a_sniff() {
        let trickle = |b: &[u8]| Trickle(Cursor::new(b.to_vec()));
        // Text that cannot be audio: the first byte is enough.
        assert_eq!(peek(&mut trickle(b"{\"a\": 1}\n")).unwrap(), b"{");
        // Text that could start like audio: up to the end of its first line.
        assert_eq!(peek(&mut trickle(b"false\n1\n")).unwrap(), b"false\n");
        // Audio: the whole magic.
        let head = peek(&mut trickle(b"RIFF\x10\0\0\0WAVEfmt data")).unwrap();
        assert_eq!(head, b"RIFF\x10\0\0\0WAVE");
        assert!(sniff(&head).is_some());
    }
}
