//! Entry points for the fuzz targets (`fuzz/` in the repository): the executor's
//! decoding of what a client sends, driven with arbitrary bytes instead of a socket.
//!
//! Not part of the API: each function runs one input through the same code the
//! server runs and must neither panic nor allocate beyond the server's limits,
//! whatever the bytes.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::{pin, Pin};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame};
use tonic::body::Body;

use crate::budget::{Budget, Shape, MIB};
use crate::convert::items_from_pb;
use crate::pb;
use crate::wire::Reader;

/// The limits the fuzz targets decode under: the server's defaults scaled down, so
/// that an input announcing more is refused as it would be, in less memory.
const MAX_MESSAGE: usize = 4 * MIB;
const PER_REQUEST: usize = 16 * MIB;
const BUDGET: usize = 32 * MIB;

/// An HTTP/2 request body whose data frames are all there already.
struct Frames(VecDeque<Bytes>);

impl HttpBody for Frames {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Poll::Ready(self.0.pop_front().map(|b| Ok(Frame::data(b))))
    }
}

/// Splits `bytes` into data frames of sizes drawn from `seed`, so that messages
/// straddle frames in every way a network could split them.
fn split(bytes: &[u8], seed: u8) -> VecDeque<Bytes> {
    let mut frames = VecDeque::new();
    let mut state = u32::from(seed) | 1;
    let mut rest = bytes;
    while !rest.is_empty() {
        // xorshift: cheap and deterministic for a given input.
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let n = (state as usize % 97 + 1).min(rest.len());
        frames.push_back(Bytes::copy_from_slice(&rest[..n]));
        rest = &rest[n..];
    }
    frames
}

/// Polls a future whose every input is ready; `None` if it would wait (it cannot).
fn ready<F: Future>(f: F) -> Option<F::Output> {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => Some(out),
        Poll::Pending => None,
    }
}

/// Reads a request body of gRPC messages as the executor does — deframing, the
/// memory admission of each message before it is taken in, protobuf decoding and
/// the conversion of every item to the runtime's data. The first byte chooses the
/// method (`ExecutePipeline` when odd, else `StreamPipeline`) and how the rest is
/// split into frames. Returns how many items were decoded.
pub fn executor_request(data: &[u8]) -> usize {
    let Some((&control, rest)) = data.split_first() else {
        return 0;
    };
    let mut decoded = 0;
    let shape = if control & 1 == 1 {
        Shape::Execute
    } else {
        Shape::Stream
    };
    let body = Body::new(Frames(split(rest, control)));
    let mut reader =
        Reader::new(body, MAX_MESSAGE).with_budget(Budget::new(BUDGET), PER_REQUEST, shape);
    loop {
        let more = match shape {
            Shape::Execute => match ready(reader.message_reserved::<pb::ExecuteRequest>()) {
                Some(Ok(Some((req, _held)))) => {
                    decoded += items_from_pb(req.inputs).map_or(0, |items| items.len());
                    true
                }
                _ => false,
            },
            Shape::Stream => match ready(reader.message_reserved::<pb::StreamRequest>()) {
                Some(Ok(Some((req, _held)))) => {
                    if let Some(pb::stream_request::Msg::Items(items)) = req.msg {
                        decoded += items_from_pb(items.items).map_or(0, |items| items.len());
                    }
                    true
                }
                _ => false,
            },
        };
        if !more {
            return decoded;
        }
    }
}

/// Well-formed request bodies (gRPC-framed, as [`executor_request`] takes them, the
/// control byte first): the fuzz target's seeds, and a check that the entry point
/// decodes real requests.
pub fn seeds() -> Vec<Vec<u8>> {
    use prost::Message;
    use remotemedia_core::{AudioBuffer, DType, Data, Tensor};

    use crate::convert::items_to_pb;
    use pb::stream_request::Msg;

    let items = items_to_pb(&[
        Data::Null,
        Data::Bool(true),
        Data::Int(-7),
        Data::Float(0.25),
        Data::text("héllo"),
        Data::Bytes(Bytes::from_static(b"\x00\xff")),
        Data::list(vec![Data::Int(1), Data::text("two")]),
        Data::map_from([("k", Data::Int(1)), ("nested", Data::list(vec![]))]),
        Data::Audio(std::sync::Arc::new(
            AudioBuffer::new(vec![0.0, 0.5, -0.5, 1.0], 16_000, 2).with_pts(20_000),
        )),
        Data::Tensor(std::sync::Arc::new(
            Tensor::new(vec![2, 2], DType::I16, Bytes::from(vec![1u8; 8])).unwrap(),
        )),
    ]);
    let manifest = r#"{"version":"v1","metadata":{"name":"p"},"nodes":[{"id":"a","node_type":"PassThrough"}]}"#;
    let framed = |messages: &[Vec<u8>]| {
        let mut out = Vec::new();
        for m in messages {
            out.push(0);
            out.extend((m.len() as u32).to_be_bytes());
            out.extend(m);
        }
        out
    };
    let stream = |msg: Msg| pb::StreamRequest { msg: Some(msg) }.encode_to_vec();
    let open = stream(Msg::Open(pb::Open {
        manifest_json: manifest.into(),
        head_inputs: vec!["src".into()],
    }));
    let batch = stream(Msg::Items(pb::Items {
        first_seq: 0,
        port: 0,
        items: items.clone(),
    }));
    let close = stream(Msg::Close(pb::Close {}));
    let execute = pb::ExecuteRequest {
        manifest_json: manifest.into(),
        inputs: items,
    }
    .encode_to_vec();
    let with = |control: u8, body: Vec<u8>| [vec![control], body].concat();
    vec![
        with(0, framed(&[open.clone(), batch.clone(), close])),
        with(2, framed(&[batch.clone(), batch])),
        with(4, framed(&[open])),
        with(1, framed(std::slice::from_ref(&execute))),
        with(3, framed(&[execute.clone(), execute])),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_decode_whatever_the_split_and_any_prefix_is_harmless() {
        let expected = [10, 20, 0, 10, 20];
        for (seed, expected) in seeds().into_iter().zip(expected) {
            for control in 0..=255u8 {
                // Same method, another split.
                if control & 1 == seed[0] & 1 {
                    let mut body = seed.clone();
                    body[0] = control;
                    assert_eq!(executor_request(&body), expected, "split {control}");
                }
            }
            for end in 0..seed.len() {
                executor_request(&seed[..end]);
            }
        }
    }

    #[test]
    fn split_keeps_every_byte_in_order() {
        let bytes: Vec<u8> = (0..=255).collect();
        for seed in [0u8, 1, 77, 255] {
            let joined: Vec<u8> = split(&bytes, seed).into_iter().flatten().collect();
            assert_eq!(joined, bytes);
        }
    }

    /// Writes the seeds into `REMOTEMEDIA_FUZZ_SEEDS` when it is set (how
    /// `fuzz/corpus/executor_wire` was made).
    #[test]
    fn write_seeds() {
        let Some(dir) = std::env::var_os("REMOTEMEDIA_FUZZ_SEEDS") else {
            return;
        };
        let dir = std::path::Path::new(&dir).join("executor_wire");
        std::fs::create_dir_all(&dir).unwrap();
        for (i, seed) in seeds().iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i:02}")), seed).unwrap();
        }
    }
}
