//! The binary form of [`Data`] exchanged with worker processes, and its frames.
//!
//! A frame is `u32 length` (of what follows), `u8 kind`, payload; integers are
//! little-endian. A value is a tag byte and its payload:
//!
//! | tag | value | payload |
//! |---|---|---|
//! | 0 | null | — |
//! | 1 / 2 | false / true | — |
//! | 3 | int | i64 |
//! | 4 | float | f64 |
//! | 5 | text | u32 length, UTF-8 |
//! | 6 | bytes | u32 length, bytes |
//! | 7 | list | u32 count, values |
//! | 8 | map | u32 count, then per entry u32 key length, UTF-8 key, value |
//! | 9 | audio | u32 sample rate, u16 channels, i64 `pts_us`, u32 byte length, f32 samples (interleaved) |
//! | 10 | tensor | u8 dtype name length, dtype name, u8 rank, u64 per dimension, u32 byte length, data |
//! | 11 | tuple | u32 count, values (a list that is a `tuple` in Python) |
//!
//! The worker side of this format is in `worker.py`.

use std::io::{self, Read, Write};
use std::sync::Arc;

use bytes::Bytes;
use remotemedia_core::{AudioBuffer, DType, Data, DataMap, Tensor};

/// Largest frame accepted (1 GiB).
pub const MAX_FRAME: usize = 1 << 30;

/// Why bytes could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    /// The buffer ended inside a value.
    #[error("truncated value at byte {0}")]
    Truncated(usize),
    /// An unknown tag byte.
    #[error("unknown value tag {tag} at byte {at}")]
    BadTag {
        /// The tag.
        tag: u8,
        /// Its offset.
        at: usize,
    },
    /// Text that is not UTF-8.
    #[error("text at byte {0} is not UTF-8")]
    Utf8(usize),
    /// Lists and maps nested deeper than the runtime's `MAX_DEPTH`.
    #[error("the value at byte {0} is nested deeper than {max} levels", max = remotemedia_core::MAX_DEPTH)]
    TooDeep(usize),
    /// A malformed audio or tensor value.
    #[error("invalid media value at byte {at}: {message}")]
    Media {
        /// Offset.
        at: usize,
        /// What is wrong.
        message: String,
    },
    /// A value too large for the format.
    #[error("value too large for the wire format ({0} bytes)")]
    TooLarge(usize),
}

fn len32(n: usize) -> Result<[u8; 4], WireError> {
    u32::try_from(n)
        .map(u32::to_le_bytes)
        .map_err(|_| WireError::TooLarge(n))
}

/// Appends the encoding of `d` to `out`.
pub fn encode(d: &Data, out: &mut Vec<u8>) -> Result<(), WireError> {
    match d {
        Data::Null => out.push(0),
        Data::Bool(false) => out.push(1),
        Data::Bool(true) => out.push(2),
        Data::Int(i) => {
            out.push(3);
            out.extend_from_slice(&i.to_le_bytes());
        }
        Data::Float(f) => {
            out.push(4);
            out.extend_from_slice(&f.to_le_bytes());
        }
        Data::Text(s) => {
            out.push(5);
            out.extend_from_slice(&len32(s.len())?);
            out.extend_from_slice(s.as_bytes());
        }
        Data::Bytes(b) => {
            out.push(6);
            out.extend_from_slice(&len32(b.len())?);
            out.extend_from_slice(b);
        }
        Data::List(items) | Data::Tuple(items) => {
            out.push(if matches!(d, Data::Tuple(_)) { 11 } else { 7 });
            out.extend_from_slice(&len32(items.len())?);
            for item in items.iter() {
                encode(item, out)?;
            }
        }
        Data::Map(map) => {
            out.push(8);
            out.extend_from_slice(&len32(map.len())?);
            for (k, v) in map.iter() {
                out.extend_from_slice(&len32(k.len())?);
                out.extend_from_slice(k.as_bytes());
                encode(v, out)?;
            }
        }
        Data::Audio(a) => {
            out.push(9);
            out.extend_from_slice(&a.sample_rate.to_le_bytes());
            out.extend_from_slice(&a.channels.to_le_bytes());
            out.extend_from_slice(&a.pts_us.to_le_bytes());
            out.extend_from_slice(&len32(a.samples.len() * 4)?);
            out.reserve(a.samples.len() * 4);
            for s in a.samples.iter() {
                out.extend_from_slice(&s.to_le_bytes());
            }
        }
        Data::Tensor(t) => {
            out.push(10);
            let name = t.dtype.name();
            out.push(name.len() as u8);
            out.extend_from_slice(name.as_bytes());
            let rank =
                u8::try_from(t.shape.len()).map_err(|_| WireError::TooLarge(t.shape.len()))?;
            out.push(rank);
            for dim in &t.shape {
                out.extend_from_slice(&(*dim as u64).to_le_bytes());
            }
            out.extend_from_slice(&len32(t.data.len())?);
            out.extend_from_slice(&t.data);
        }
    }
    Ok(())
}

/// A cursor over an encoded buffer.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Reads from the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if self.remaining() < n {
            return Err(WireError::Truncated(self.pos));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// Reads one byte.
    pub fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }

    /// Reads a little-endian u16.
    pub fn u16(&mut self) -> Result<u16, WireError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    /// Reads a little-endian u32.
    pub fn u32(&mut self) -> Result<u32, WireError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64, WireError> {
        let b = self.take(8)?;
        Ok(u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }

    fn str(&mut self) -> Result<&'a str, WireError> {
        let n = self.u32()? as usize;
        let at = self.pos;
        std::str::from_utf8(self.take(n)?).map_err(|_| WireError::Utf8(at))
    }

    /// Reads one value.
    pub fn value(&mut self) -> Result<Data, WireError> {
        self.value_at(0)
    }

    /// A value inside `depth` lists and maps.
    fn value_at(&mut self, depth: usize) -> Result<Data, WireError> {
        let at = self.pos;
        let tag = self.u8()?;
        if tag == 7 || tag == 8 || tag == 11 {
            remotemedia_core::data::check_container_depth(depth)
                .map_err(|_| WireError::TooDeep(at))?;
        }
        Ok(match tag {
            0 => Data::Null,
            1 => Data::Bool(false),
            2 => Data::Bool(true),
            3 => Data::Int(self.u64()? as i64),
            4 => Data::Float(f64::from_bits(self.u64()?)),
            5 => Data::text(self.str()?),
            6 => {
                let n = self.u32()? as usize;
                Data::Bytes(Bytes::copy_from_slice(self.take(n)?))
            }
            7 | 11 => {
                let n = self.u32()? as usize;
                let mut items = Vec::with_capacity(n.min(self.remaining()));
                for _ in 0..n {
                    items.push(self.value_at(depth + 1)?);
                }
                if tag == 11 {
                    Data::tuple(items)
                } else {
                    Data::list(items)
                }
            }
            8 => {
                let n = self.u32()? as usize;
                let mut map = DataMap::with_capacity(n.min(self.remaining()));
                for _ in 0..n {
                    let k = self.str()?.to_string();
                    let v = self.value_at(depth + 1)?;
                    map.insert(k, v);
                }
                Data::map(map)
            }
            9 => {
                let sample_rate = self.u32()?;
                let channels = self.u16()?;
                let pts_us =
                    i64::from_le_bytes(self.take(8)?.try_into().expect("take returns 8 bytes"));
                let n = self.u32()? as usize;
                let raw = self.take(n)?;
                let media = |message: &str| WireError::Media {
                    at,
                    message: message.into(),
                };
                if channels == 0
                    || !n.is_multiple_of(4)
                    || !(n / 4).is_multiple_of(channels as usize)
                {
                    return Err(media("samples do not split into the channels"));
                }
                let samples: Vec<f32> = raw
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect();
                Data::Audio(Arc::new(
                    AudioBuffer::new(samples, sample_rate, channels).with_pts(pts_us),
                ))
            }
            10 => {
                let name_len = self.u8()? as usize;
                let name =
                    std::str::from_utf8(self.take(name_len)?).map_err(|_| WireError::Utf8(at))?;
                let dtype = DType::from_name(name).ok_or_else(|| WireError::Media {
                    at,
                    message: format!("unknown dtype `{name}`"),
                })?;
                let rank = self.u8()? as usize;
                let mut shape = Vec::with_capacity(rank);
                for _ in 0..rank {
                    shape.push(self.u64()? as usize);
                }
                let n = self.u32()? as usize;
                let data = Bytes::copy_from_slice(self.take(n)?);
                let t = Tensor::new(shape, dtype, data).map_err(|e| WireError::Media {
                    at,
                    message: e.to_string(),
                })?;
                Data::Tensor(Arc::new(t))
            }
            tag => return Err(WireError::BadTag { tag, at }),
        })
    }
}

/// Writes one frame: length, kind, payload.
pub fn write_frame(w: &mut impl Write, kind: u8, payload: &[u8]) -> io::Result<()> {
    let len = u32::try_from(payload.len() + 1)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame too large"))?;
    w.write_all(&len.to_le_bytes())?;
    w.write_all(&[kind])?;
    w.write_all(payload)?;
    w.flush()
}

/// Reads one frame: `(kind, payload)`; `Ok(None)` at a clean end of stream.
pub fn read_frame(r: &mut impl Read) -> io::Result<Option<(u8, Vec<u8>)>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_le_bytes(len) as usize;
    if len == 0 || len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("bad frame length {len}"),
        ));
    }
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf)?;
    let kind = buf.remove(0);
    Ok(Some((kind, buf)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip() {
        let tensor = Tensor::new(vec![2, 2], DType::I16, Bytes::from(vec![1u8; 8])).unwrap();
        let d = Data::list(vec![
            Data::Null,
            Data::Bool(true),
            Data::Int(-5),
            Data::Float(2.5),
            Data::text("é"),
            Data::Bytes(Bytes::from_static(b"\x00\x01")),
            Data::map_from([("k", Data::Int(1))]),
            Data::from(AudioBuffer::new(vec![0.5f32, -0.5], 16_000, 2).with_pts(-40)),
            Data::from(tensor),
        ]);
        let mut buf = Vec::new();
        encode(&d, &mut buf).unwrap();
        let mut r = Reader::new(&buf);
        assert_eq!(r.value().unwrap(), d);
        assert_eq!(r.remaining(), 0);
    }

    #[test]
    fn tuples_are_their_own_tag() {
        let t = Data::tuple(vec![Data::Int(1), Data::list(vec![])]);
        let mut buf = Vec::new();
        encode(&t, &mut buf).unwrap();
        assert_eq!(buf[0], 11);
        let back = Reader::new(&buf).value().unwrap();
        assert!(matches!(&back, Data::Tuple(items) if matches!(items[1], Data::List(_))));
    }

    #[test]
    fn values_nested_deeper_than_max_depth_are_refused() {
        let nest = |depth: usize| (0..depth).fold(Data::Null, |d, _| Data::list(vec![d]));
        let mut buf = Vec::new();
        encode(&nest(remotemedia_core::MAX_DEPTH), &mut buf).unwrap();
        assert_eq!(
            Reader::new(&buf).value().unwrap(),
            nest(remotemedia_core::MAX_DEPTH)
        );
        buf.clear();
        encode(&nest(remotemedia_core::MAX_DEPTH + 1), &mut buf).unwrap();
        assert_eq!(
            Reader::new(&buf).value().unwrap_err().to_string(),
            "the value at byte 160 is nested deeper than 32 levels"
        );
    }

    #[test]
    fn truncated_and_bad_tags_are_errors() {
        assert_eq!(Reader::new(&[3, 1]).value(), Err(WireError::Truncated(1)));
        assert_eq!(
            Reader::new(&[42]).value(),
            Err(WireError::BadTag { tag: 42, at: 0 })
        );
    }

    #[test]
    fn frames_round_trip() {
        let mut buf = Vec::new();
        write_frame(&mut buf, b'P', b"abc").unwrap();
        let mut r = &buf[..];
        assert_eq!(read_frame(&mut r).unwrap(), Some((b'P', b"abc".to_vec())));
        assert_eq!(read_frame(&mut r).unwrap(), None);
    }
}
