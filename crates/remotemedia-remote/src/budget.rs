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

use bytes::Buf;
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

/// Bytes that decoding the message in `buf` (without its gRPC prefix) will allocate,
/// the message's own bytes not included. Reads tags and lengths only.
pub(crate) fn estimate(shape: Shape, buf: &mut dyn Buf) -> Result<u64, Malformed> {
    match shape {
        Shape::Execute => fields(buf, &mut |field, wire, b| match (field, wire) {
            (1, LEN) => manifest(b),
            (2, LEN) => nested(b, 0, &mut |b| value(b, 0)),
            _ => skip(wire, b).map(|_| 0),
        }),
        Shape::Stream => fields(buf, &mut |field, wire, b| match (field, wire) {
            (2, LEN) => nested(b, 0, &mut |b| {
                fields(b, &mut |field, wire, b| match (field, wire) {
                    (3, LEN) => nested(b, 0, &mut |b| value(b, 0)),
                    _ => skip(wire, b).map(|_| 0),
                })
            }),
            (1, LEN) => nested(b, 0, &mut |b| {
                fields(b, &mut |field, wire, b| match (field, wire) {
                    (1, LEN) => manifest(b),
                    // The head's input names.
                    (2, LEN) => text(b),
                    _ => skip(wire, b).map(|_| 0),
                })
            }),
            _ => skip(wire, b).map(|_| 0),
        }),
    }
}

const VARINT: u8 = 0;
const I64: u8 = 1;
const LEN: u8 = 2;
const I32: u8 = 5;

/// Deeper messages are refused by prost's decoder (its recursion limit is 100).
const MAX_DEPTH: u32 = 100;

/// Says what one field costs, given its number, its wire type and the bytes after
/// its key (it consumes the field's value).
type FieldCost<'a> = dyn FnMut(u64, u8, &mut dyn Buf) -> Result<u64, Malformed> + 'a;

/// Walks the fields of the message in `buf`, summing what `each` says they cost.
fn fields(buf: &mut dyn Buf, each: &mut FieldCost<'_>) -> Result<u64, Malformed> {
    let mut total = 0u64;
    while buf.has_remaining() {
        let key = varint(buf)?;
        let wire = (key & 7) as u8;
        let field = key >> 3;
        total = total.saturating_add(each(field, wire, buf)?);
    }
    Ok(total)
}

/// Runs `inner` over the length-delimited field at the front of `buf`.
fn nested(
    buf: &mut dyn Buf,
    depth: u32,
    inner: &mut dyn FnMut(&mut dyn Buf) -> Result<u64, Malformed>,
) -> Result<u64, Malformed> {
    if depth > MAX_DEPTH {
        return Err(Malformed);
    }
    let len = length(buf)?;
    let mut sub = buf.take(len);
    let cost = inner(&mut sub)?;
    let rest = sub.remaining();
    sub.advance(rest);
    Ok(cost)
}

/// How many times its size a manifest may take once parsed: JSON's smallest values
/// (`1,`, `{},`) take 2 or 3 bytes of text and about 80 bytes as parsed values, and the
/// validated pipeline keeps copies of the params.
const MANIFEST_FACTOR: u64 = 64;

/// The manifest field: parsed into JSON values, then validated into a pipeline.
fn manifest(buf: &mut dyn Buf) -> Result<u64, Malformed> {
    let len = length(buf)?;
    buf.advance(len);
    Ok(MANIFEST_FACTOR.saturating_mul(len as u64))
}

/// A string field: copied once into the protobuf form and once into the item.
fn text(buf: &mut dyn Buf) -> Result<u64, Malformed> {
    let len = length(buf)?;
    buf.advance(len);
    Ok(2 * len as u64)
}

/// One `Value` (the length-delimited body at the front of `buf` is its content).
fn value(buf: &mut dyn Buf, depth: u32) -> Result<u64, Malformed> {
    if depth > MAX_DEPTH {
        return Err(Malformed);
    }
    let content = fields(buf, &mut |field, wire, b| match (field, wire) {
        // text: a String, then the item's own copy.
        (5, LEN) => text(b),
        // bytes: shared with the received frames unless split across two; counted
        // once as if copied. Tensor data likewise.
        (6, LEN) => {
            let len = length(b)?;
            b.advance(len);
            Ok(len as u64)
        }
        (7, LEN) => nested(b, depth, &mut |b| {
            fields(b, &mut |field, wire, b| match (field, wire) {
                (1, LEN) => nested(b, depth + 1, &mut |b| value(b, depth + 1)),
                _ => skip(wire, b).map(|_| 0),
            })
        }),
        (8, LEN) => nested(b, depth, &mut |b| {
            fields(b, &mut |field, wire, b| match (field, wire) {
                (1, LEN) => nested(b, depth + 1, &mut |b| {
                    let entry = fields(b, &mut |field, wire, b| match (field, wire) {
                        (1, LEN) => text(b),
                        (2, LEN) => nested(b, depth + 1, &mut |b| value(b, depth + 1)),
                        _ => skip(wire, b).map(|_| 0),
                    })?;
                    Ok(entry.saturating_add(entry_cost()))
                }),
                _ => skip(wire, b).map(|_| 0),
            })
        }),
        // audio: the bytes, then the samples as f32s.
        (9, LEN) => nested(b, depth, &mut |b| {
            fields(b, &mut |field, wire, b| match (field, wire) {
                (3, LEN) => {
                    let len = length(b)?;
                    b.advance(len);
                    Ok(2 * len as u64)
                }
                _ => skip(wire, b).map(|_| 0),
            })
        }),
        // tensor: the data (shared) and the shape twice (protobuf and item).
        (10, LEN) => nested(b, depth, &mut |b| {
            fields(b, &mut |field, wire, b| match (field, wire) {
                (1, LEN) => {
                    let len = length(b)?;
                    b.advance(len);
                    Ok(16 * len as u64)
                }
                (3, LEN) => {
                    let len = length(b)?;
                    b.advance(len);
                    Ok(len as u64)
                }
                (1, VARINT) => skip(VARINT, b).map(|_| 16),
                _ => skip(wire, b).map(|_| 0),
            })
        }),
        _ => skip(wire, b).map(|_| 0),
    })?;
    Ok(content.saturating_add(value_cost()))
}

fn varint(buf: &mut dyn Buf) -> Result<u64, Malformed> {
    let mut out = 0u64;
    for shift in (0..64).step_by(7) {
        if !buf.has_remaining() {
            return Err(Malformed);
        }
        let b = buf.get_u8();
        out |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(out);
        }
    }
    Err(Malformed)
}

/// A length prefix that fits in what is left.
fn length(buf: &mut dyn Buf) -> Result<usize, Malformed> {
    let len = usize::try_from(varint(buf)?).map_err(|_| Malformed)?;
    if len > buf.remaining() {
        return Err(Malformed);
    }
    Ok(len)
}

fn skip(wire: u8, buf: &mut dyn Buf) -> Result<(), Malformed> {
    let n = match wire {
        VARINT => return varint(buf).map(|_| ()),
        I64 => 8,
        LEN => length(buf)?,
        I32 => 4,
        _ => return Err(Malformed),
    };
    if buf.remaining() < n {
        return Err(Malformed);
    }
    buf.advance(n);
    Ok(())
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
        estimate(shape, &mut &bytes[..]).unwrap()
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
        assert_eq!(estimate(Shape::Execute, &mut &wire[..]), Err(Malformed));
        assert_eq!(
            estimate(Shape::Execute, &mut &[0xffu8; 11][..]),
            Err(Malformed)
        );
        // Deeper than prost decodes.
        let mut deep = Data::Null;
        for _ in 0..120 {
            deep = Data::list(vec![deep]);
        }
        let wire = execute(&[deep]);
        assert_eq!(estimate(Shape::Execute, &mut &wire[..]), Err(Malformed));
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
}
