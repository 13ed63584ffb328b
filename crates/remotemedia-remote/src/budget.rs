//! The executor's memory budget: what requests may hold once decoded.
//!
//! A request's wire size says little about its decoded size: a null is 2 bytes on the
//! wire and over 100 bytes decoded (its protobuf form plus its item), so a 64 MiB
//! message of nulls takes about 2 GB. Before a message is decoded its bytes are
//! scanned (tags and lengths only, no allocation) to estimate what decoding will
//! allocate ([`estimate`]); that much is reserved from a budget shared by every
//! request, and given back when the request no longer holds the message. A request
//! that does not fit is refused with `RESOURCE_EXHAUSTED` before anything is decoded.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use remotemedia_core::Data;

use crate::pb;

/// One mebibyte, the unit of the limits in messages and flags.
pub(crate) const MIB: usize = 1 << 20;

/// Memory shared by all requests, in bytes.
#[derive(Debug)]
pub(crate) struct Budget {
    total: usize,
    used: AtomicUsize,
}

/// Why a reservation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OverBudget {
    /// What was asked for.
    pub wanted: usize,
    /// What was reserved by others at the time.
    pub used: usize,
    /// The whole budget.
    pub total: usize,
}

impl Budget {
    pub(crate) fn new(total: usize) -> Arc<Self> {
        Arc::new(Self {
            total,
            used: AtomicUsize::new(0),
        })
    }

    /// Bytes reserved now.
    pub(crate) fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// The whole budget in bytes.
    pub(crate) fn total(&self) -> usize {
        self.total
    }

    /// Takes `n` bytes if they fit; the compare-and-swap loop keeps concurrent
    /// reservations from overshooting together.
    fn take(&self, n: usize) -> Result<(), OverBudget> {
        let mut used = self.used.load(Ordering::Relaxed);
        loop {
            let after = used.checked_add(n).filter(|&a| a <= self.total);
            let Some(after) = after else {
                return Err(OverBudget {
                    wanted: n,
                    used,
                    total: self.total,
                });
            };
            match self
                .used
                .compare_exchange_weak(used, after, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return Ok(()),
                Err(now) => used = now,
            }
        }
    }

    /// An empty reservation, to grow with [`Reservation::grow`].
    pub(crate) fn reservation(self: &Arc<Self>) -> Reservation {
        Reservation {
            budget: Arc::clone(self),
            bytes: 0,
        }
    }
}

/// Bytes held from a [`Budget`] until dropped.
#[derive(Debug)]
pub(crate) struct Reservation {
    budget: Arc<Budget>,
    bytes: usize,
}

impl Reservation {
    /// Reserves `n` more bytes, or nothing when they do not fit.
    pub(crate) fn grow(&mut self, n: usize) -> Result<(), OverBudget> {
        self.budget.take(n)?;
        self.bytes += n;
        Ok(())
    }

    /// Bytes held.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

/// What decoding one value costs besides its payload: its protobuf form while the
/// message is decoded, its item afterwards, and slack for vectors growing by doubling.
fn value_cost() -> u64 {
    let pb_value = std::mem::size_of::<pb::Value>() as u64;
    let item = std::mem::size_of::<Data>() as u64;
    (pb_value + item) * 5 / 4
}

/// What one map entry costs besides its key, value and payloads: the protobuf entry
/// and the map's slot and index.
fn entry_cost() -> u64 {
    (std::mem::size_of::<pb::MapEntry>() + std::mem::size_of::<(String, Data)>() + 16) as u64
}

/// Which request message is scanned, for the field that holds its values.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Shape {
    /// `ExecuteRequest`: values in field 2.
    Execute,
    /// `StreamRequest`: values in field 3 of `Items` (field 2).
    Stream,
}

/// A malformed message: decoding it will fail anyway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Malformed;

/// Bytes that decoding the message in `chunks` (its bytes in order, without the gRPC
/// prefix) will allocate, the message's own bytes not included. Reads tags and
/// lengths only; byte payloads are skipped, not read.
pub(crate) fn estimate(shape: Shape, chunks: &[&[u8]]) -> Result<u64, Malformed> {
    let mut c = Cursor::new(chunks);
    let end = c.total;
    match shape {
        Shape::Execute => execute_request(&mut c, end),
        Shape::Stream => stream_request(&mut c, end),
    }
}

const VARINT: u8 = 0;
const I64: u8 = 1;
const LEN: u8 = 2;
const I32: u8 = 5;

/// Deeper messages are refused by prost's decoder (its recursion limit is 100).
const MAX_DEPTH: u32 = 100;

/// Reads a message spread over several buffers (the frames it arrived in) without
/// joining them.
struct Cursor<'a> {
    chunks: &'a [&'a [u8]],
    /// The rest of the current chunk.
    cur: &'a [u8],
    /// Index of the current chunk.
    idx: usize,
    /// Bytes consumed so far.
    pos: usize,
    total: usize,
}

impl<'a> Cursor<'a> {
    fn new(chunks: &'a [&'a [u8]]) -> Self {
        Self {
            chunks,
            cur: chunks.first().copied().unwrap_or(&[]),
            idx: 0,
            pos: 0,
            total: chunks.iter().map(|c| c.len()).sum(),
        }
    }

    #[inline]
    fn byte(&mut self) -> Result<u8, Malformed> {
        loop {
            if let Some((&b, rest)) = self.cur.split_first() {
                self.cur = rest;
                self.pos += 1;
                return Ok(b);
            }
            self.idx += 1;
            self.cur = self.chunks.get(self.idx).copied().ok_or(Malformed)?;
        }
    }

    #[inline]
    fn varint(&mut self) -> Result<u64, Malformed> {
        let mut out = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            out |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(out);
            }
        }
        Err(Malformed)
    }

    /// Skips `n` bytes, which must lie before `end`.
    fn skip(&mut self, n: usize, end: usize) -> Result<(), Malformed> {
        if n > end.saturating_sub(self.pos) {
            return Err(Malformed);
        }
        self.pos += n;
        let mut left = n;
        while left > self.cur.len() {
            left -= self.cur.len();
            self.idx += 1;
            self.cur = self.chunks.get(self.idx).copied().ok_or(Malformed)?;
        }
        self.cur = &self.cur[left..];
        Ok(())
    }

    /// A length prefix; the end of the field it announces, which must lie within
    /// `end`.
    fn length(&mut self, end: usize) -> Result<usize, Malformed> {
        let len = usize::try_from(self.varint()?).map_err(|_| Malformed)?;
        if len > end.saturating_sub(self.pos) {
            return Err(Malformed);
        }
        Ok(self.pos + len)
    }

    /// The next field's number and wire type, or `None` at `end`.
    #[inline]
    fn key(&mut self, end: usize) -> Result<Option<(u64, u8)>, Malformed> {
        if self.pos >= end {
            return if self.pos == end {
                Ok(None)
            } else {
                Err(Malformed)
            };
        }
        let key = self.varint()?;
        Ok(Some((key >> 3, (key & 7) as u8)))
    }

    /// Skips a field's value of wire type `wire`.
    fn skip_value(&mut self, wire: u8, end: usize) -> Result<(), Malformed> {
        match wire {
            VARINT => self.varint().map(|_| ()),
            I64 => self.skip(8, end),
            LEN => {
                let field_end = self.length(end)?;
                self.skip(field_end - self.pos, end)
            }
            I32 => self.skip(4, end),
            _ => Err(Malformed),
        }
    }

    /// Skips a length-delimited field, returning its length.
    fn skip_len(&mut self, end: usize) -> Result<u64, Malformed> {
        let field_end = self.length(end)?;
        let len = field_end - self.pos;
        self.skip(len, end)?;
        Ok(len as u64)
    }
}

/// How many times its size a manifest may take once parsed: JSON's smallest values
/// (`1,`, `{},`) take 2 or 3 bytes of text and about 80 bytes as parsed values, and the
/// validated pipeline keeps copies of the params.
const MANIFEST_FACTOR: u64 = 64;

fn execute_request(c: &mut Cursor<'_>, end: usize) -> Result<u64, Malformed> {
    let mut total = 0u64;
    while let Some((field, wire)) = c.key(end)? {
        let cost = match (field, wire) {
            (1, LEN) => MANIFEST_FACTOR.saturating_mul(c.skip_len(end)?),
            (2, LEN) => value_field(c, end, 0)?,
            _ => c.skip_value(wire, end).map(|_| 0)?,
        };
        total = total.saturating_add(cost);
    }
    Ok(total)
}

fn stream_request(c: &mut Cursor<'_>, end: usize) -> Result<u64, Malformed> {
    let mut total = 0u64;
    while let Some((field, wire)) = c.key(end)? {
        let cost = match (field, wire) {
            // `Open`: the manifest, and the head's input names.
            (1, LEN) => {
                let open_end = c.length(end)?;
                let mut cost = 0u64;
                while let Some((field, wire)) = c.key(open_end)? {
                    cost = cost.saturating_add(match (field, wire) {
                        (1, LEN) => MANIFEST_FACTOR.saturating_mul(c.skip_len(open_end)?),
                        (2, LEN) => 2 * c.skip_len(open_end)?,
                        _ => c.skip_value(wire, open_end).map(|_| 0)?,
                    });
                }
                cost
            }
            // `Items`: the values in field 3.
            (2, LEN) => {
                let items_end = c.length(end)?;
                let mut cost = 0u64;
                while let Some((field, wire)) = c.key(items_end)? {
                    cost = cost.saturating_add(match (field, wire) {
                        (3, LEN) => value_field(c, items_end, 0)?,
                        _ => c.skip_value(wire, items_end).map(|_| 0)?,
                    });
                }
                cost
            }
            _ => c.skip_value(wire, end).map(|_| 0)?,
        };
        total = total.saturating_add(cost);
    }
    Ok(total)
}

/// A length-delimited `Value` field at the cursor.
fn value_field(c: &mut Cursor<'_>, end: usize, depth: u32) -> Result<u64, Malformed> {
    if depth > MAX_DEPTH {
        return Err(Malformed);
    }
    let value_end = c.length(end)?;
    let mut cost = value_cost();
    while let Some((field, wire)) = c.key(value_end)? {
        let content = match (field, wire) {
            // text: a String, then the item's own copy.
            (5, LEN) => 2 * c.skip_len(value_end)?,
            // bytes: shared with the received frames unless split across two; counted
            // once as if copied.
            (6, LEN) => c.skip_len(value_end)?,
            (7, LEN) => {
                let list_end = c.length(value_end)?;
                let mut items = 0u64;
                while let Some((field, wire)) = c.key(list_end)? {
                    items = items.saturating_add(match (field, wire) {
                        (1, LEN) => value_field(c, list_end, depth + 1)?,
                        _ => c.skip_value(wire, list_end).map(|_| 0)?,
                    });
                }
                items
            }
            (8, LEN) => {
                let map_end = c.length(value_end)?;
                let mut entries = 0u64;
                while let Some((field, wire)) = c.key(map_end)? {
                    entries = entries.saturating_add(match (field, wire) {
                        (1, LEN) => map_entry(c, map_end, depth + 1)?,
                        _ => c.skip_value(wire, map_end).map(|_| 0)?,
                    });
                }
                entries
            }
            // audio: the bytes, then the samples as f32s.
            (9, LEN) => {
                let audio_end = c.length(value_end)?;
                let mut samples = 0u64;
                while let Some((field, wire)) = c.key(audio_end)? {
                    samples = samples.saturating_add(match (field, wire) {
                        (3, LEN) => 2 * c.skip_len(audio_end)?,
                        _ => c.skip_value(wire, audio_end).map(|_| 0)?,
                    });
                }
                samples
            }
            // tensor: the data (shared) and the shape twice (protobuf and item).
            (10, LEN) => {
                let tensor_end = c.length(value_end)?;
                let mut parts = 0u64;
                while let Some((field, wire)) = c.key(tensor_end)? {
                    parts = parts.saturating_add(match (field, wire) {
                        (1, LEN) => 16 * c.skip_len(tensor_end)?,
                        (1, VARINT) => c.varint().map(|_| 16)?,
                        (3, LEN) => c.skip_len(tensor_end)?,
                        _ => c.skip_value(wire, tensor_end).map(|_| 0)?,
                    });
                }
                parts
            }
            _ => c.skip_value(wire, value_end).map(|_| 0)?,
        };
        cost = cost.saturating_add(content);
    }
    Ok(cost)
}

/// One `MapEntry`: its key copied twice, its value, and the map's slot for it.
fn map_entry(c: &mut Cursor<'_>, end: usize, depth: u32) -> Result<u64, Malformed> {
    let entry_end = c.length(end)?;
    let mut cost = entry_cost();
    while let Some((field, wire)) = c.key(entry_end)? {
        cost = cost.saturating_add(match (field, wire) {
            (1, LEN) => 2 * c.skip_len(entry_end)?,
            (2, LEN) => value_field(c, entry_end, depth)?,
            _ => c.skip_value(wire, entry_end).map(|_| 0)?,
        });
    }
    Ok(cost)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::items_to_pb;
    use prost::Message;
    use remotemedia_core::AudioBuffer;

    fn execute(items: &[Data]) -> Vec<u8> {
        pb::ExecuteRequest {
            manifest_json: "{}".into(),
            inputs: items_to_pb(items),
        }
        .encode_to_vec()
    }

    fn est(shape: Shape, bytes: &[u8]) -> u64 {
        estimate(shape, &[bytes]).unwrap()
    }

    #[test]
    fn nulls_cost_far_more_decoded_than_on_the_wire() {
        let items = vec![Data::Null; 10_000];
        let wire = execute(&items);
        let e = est(Shape::Execute, &wire);
        assert!(wire.len() < 50_000, "{}", wire.len());
        assert_eq!(
            e,
            10_000 * value_cost() + 2 * MANIFEST_FACTOR,
            "values plus the manifest"
        );
        assert!(value_cost() >= 64, "{}", value_cost());
    }

    #[test]
    fn payloads_count_by_their_size_and_nesting_is_followed() {
        let audio = Data::from(AudioBuffer::new(vec![0.5f32; 1000], 16_000, 1));
        let bytes = Data::Bytes(vec![7u8; 5000].into());
        let nested = Data::list(vec![
            Data::text("abcd"),
            Data::list(vec![Data::Int(1), Data::Int(2)]),
        ]);
        let a = est(Shape::Execute, &execute(&[audio]));
        assert_eq!(a, 2 * 4000 + value_cost() + 2 * MANIFEST_FACTOR);
        let b = est(Shape::Execute, &execute(&[bytes]));
        assert_eq!(b, 5000 + value_cost() + 2 * MANIFEST_FACTOR);
        let n = est(Shape::Execute, &execute(&[nested]));
        assert_eq!(n, 5 * value_cost() + 2 * 4 + 2 * MANIFEST_FACTOR);
        let mut map = remotemedia_core::DataMap::new();
        map.insert("key".into(), Data::Int(3));
        let m = est(Shape::Execute, &execute(&[Data::Map(Arc::new(map))]));
        assert_eq!(
            m,
            2 * value_cost() + entry_cost() + 2 * 3 + 2 * MANIFEST_FACTOR
        );
    }

    #[test]
    fn stream_items_and_opens_are_scanned() {
        let items = pb::StreamRequest {
            msg: Some(pb::stream_request::Msg::Items(pb::Items {
                first_seq: 3,
                port: 1,
                items: items_to_pb(&[Data::Null, Data::text("xy")]),
            })),
        }
        .encode_to_vec();
        assert_eq!(est(Shape::Stream, &items), 2 * value_cost() + 4);
        let open = pb::StreamRequest {
            msg: Some(pb::stream_request::Msg::Open(pb::Open {
                manifest_json: "0123456789".into(),
                head_inputs: vec!["a".into()],
            })),
        }
        .encode_to_vec();
        assert_eq!(est(Shape::Stream, &open), MANIFEST_FACTOR * 10 + 2);
    }

    #[test]
    fn malformed_bytes_are_told_apart() {
        let mut wire = execute(&[Data::text("hello")]);
        wire.truncate(wire.len() - 2);
        assert_eq!(estimate(Shape::Execute, &[&wire]), Err(Malformed));
        assert_eq!(estimate(Shape::Execute, &[&[0xffu8; 11]]), Err(Malformed));
        // Deeper than prost decodes.
        let mut deep = Data::Null;
        for _ in 0..120 {
            deep = Data::list(vec![deep]);
        }
        let wire = execute(&[deep]);
        assert_eq!(estimate(Shape::Execute, &[&wire]), Err(Malformed));
    }

    #[test]
    fn reservations_are_bounded_and_given_back() {
        let budget = Budget::new(1000);
        let mut a = budget.reservation();
        a.grow(600).unwrap();
        let mut b = budget.reservation();
        assert_eq!(
            b.grow(500),
            Err(OverBudget {
                wanted: 500,
                used: 600,
                total: 1000
            })
        );
        assert_eq!(b.bytes(), 0);
        b.grow(400).unwrap();
        assert_eq!(budget.used(), 1000);
        drop(a);
        assert_eq!(budget.used(), 400);
        drop(b);
        assert_eq!(budget.used(), 0);
        assert!(budget.reservation().grow(usize::MAX).is_err());
    }

    #[test]
    fn the_estimate_is_the_same_however_the_bytes_are_split() {
        let audio = Data::from(AudioBuffer::new(vec![0.5f32; 300], 16_000, 1));
        let mut map = remotemedia_core::DataMap::new();
        map.insert("k".into(), Data::text("v"));
        let wire = execute(&[
            Data::Null,
            Data::text("hello"),
            audio,
            Data::list(vec![Data::Int(7), Data::Map(Arc::new(map))]),
            Data::Bytes(vec![1u8; 700].into()),
        ]);
        let whole = est(Shape::Execute, &wire);
        for step in [1, 2, 3, 7, 64, 1000] {
            let pieces: Vec<&[u8]> = wire.chunks(step).collect();
            assert_eq!(
                estimate(Shape::Execute, &pieces),
                Ok(whole),
                "split every {step}"
            );
        }
        // Empty chunks in between change nothing either.
        let (a, b) = wire.split_at(10);
        assert_eq!(estimate(Shape::Execute, &[a, &[], &[], b]), Ok(whole));
    }

    #[test]
    fn millions_of_nulls_are_scanned_without_decoding() {
        let wire: Vec<u8> = [0x12u8, 0x02, 0x08, 0x01].repeat(4 << 20);
        let pieces: Vec<&[u8]> = wire.chunks(1 << 20).collect();
        let start = std::time::Instant::now();
        let e = estimate(Shape::Execute, &pieces).unwrap();
        let took = start.elapsed();
        assert_eq!(e, (4 << 20) * value_cost());
        // Generous even for an unoptimized build (optimized, 64 MiB of nulls take
        // about 0.35 s).
        assert!(took < std::time::Duration::from_secs(20), "{took:?}");
    }
}
