//! gRPC message framing for `StreamPipeline`, done here rather than by tonic's codec.
//!
//! tonic encodes each message into one contiguous buffer and gathers each incoming
//! message into another before decoding it, so every audio, tensor or bytes payload
//! would be copied twice per hop on top of the socket copies — at 1 MiB per item the
//! copies (and the fresh pages they land on) cost more than the network. Here:
//!
//! - an outgoing message is a list of HTTP/2 data chunks in which large byte fields are
//!   the payload's own shared buffers ([`encode`]);
//! - an incoming message is decoded straight from the received frames; a byte field
//!   that arrived in one frame is a slice of it ([`Reader`]).
//!
//! The bytes on the wire are plain gRPC, so either end still talks to any gRPC peer.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http_body::{Body as HttpBody, Frame};
use tokio::sync::mpsc;
use tonic::body::Body;
use tonic::codegen::http::{HeaderMap, HeaderValue};
use tonic::{Code, Status};

use crate::budget::{estimate, Budget, OverBudget, Reservation, Shape, MIB};

/// Path of the `StreamPipeline` method.
pub(crate) const STREAM_PIPELINE: &str = "/remotemedia.v1.Executor/StreamPipeline";

/// Path of the `ExecutePipeline` method.
pub(crate) const EXECUTE_PIPELINE: &str = "/remotemedia.v1.Executor/ExecutePipeline";

/// `content-type` of gRPC requests and responses.
pub(crate) const GRPC_CONTENT_TYPE: HeaderValue = HeaderValue::from_static("application/grpc");

/// The gRPC message prefix: a compression flag and a big-endian length.
const PREFIX: usize = 5;

/// Byte fields at least this large are sent as their own chunk instead of being copied
/// next to the rest of the message.
const SHARE_MIN: usize = 16 << 10;

/// What travels through an [`Outgoing`] body: one message's chunks, or the status that
/// ends the body.
pub(crate) type Encoded = Result<Vec<Bytes>, Status>;

/// One message with its gRPC prefix, as the chunks it is sent in.
pub(crate) fn encode<M: prost::Message>(msg: &M) -> Encoded {
    let len = msg.encoded_len();
    let len32 = u32::try_from(len).map_err(|_| {
        Status::resource_exhausted(format!(
            "a message of {len} bytes is over the 4 GiB gRPC limit"
        ))
    })?;
    let mut out = Chunks {
        done: Vec::new(),
        // Room for a whole message of small items; a larger one is mostly large fields,
        // which are not copied here.
        cur: BytesMut::with_capacity((PREFIX + len).min(64 << 10)),
    };
    out.cur.put_u8(0);
    out.cur.put_u32(len32);
    msg.encode(&mut out)
        .map_err(|e| Status::internal(format!("cannot encode a message: {e}")))?;
    if !out.cur.is_empty() {
        out.done.push(out.cur.freeze());
    }
    Ok(out.done)
}

/// A [`BufMut`] that copies small writes into a buffer and keeps large ones apart.
struct Chunks {
    done: Vec<Bytes>,
    cur: BytesMut,
}

// SAFETY: every method forwards to the `BytesMut` being written, which upholds the
// contract; `put` only adds finished chunks to `done`.
unsafe impl BufMut for Chunks {
    fn remaining_mut(&self) -> usize {
        self.cur.remaining_mut()
    }

    unsafe fn advance_mut(&mut self, cnt: usize) {
        // SAFETY: the caller's guarantee for `self` is the guarantee for `cur`.
        unsafe { self.cur.advance_mut(cnt) }
    }

    fn chunk_mut(&mut self) -> &mut bytes::buf::UninitSlice {
        self.cur.chunk_mut()
    }

    fn put<T: Buf>(&mut self, mut src: T)
    where
        Self: Sized,
    {
        if src.remaining() < SHARE_MIN {
            self.cur.put(src);
            return;
        }
        if !self.cur.is_empty() {
            self.done.push(self.cur.split().freeze());
        }
        // Shares the buffer when `src` is `Bytes` (how prost writes byte fields).
        self.done.push(src.copy_to_bytes(src.remaining()));
    }
}

/// Splits received frames into messages.
#[derive(Debug)]
struct Deframer {
    frames: VecDeque<Bytes>,
    buffered: usize,
    /// Length of the message being received, once its prefix is in.
    body_len: Option<usize>,
    max_len: usize,
}

impl Deframer {
    fn push(&mut self, data: Bytes) {
        if !data.is_empty() {
            self.buffered += data.len();
            self.frames.push_back(data);
        }
    }

    fn next<M: prost::Message + Default>(
        &mut self,
        check: &mut dyn FnMut(Check<'_>) -> Result<(), Status>,
    ) -> Result<Option<M>, Status> {
        let len = match self.body_len {
            Some(len) => len,
            None => {
                if self.buffered < PREFIX {
                    return Ok(None);
                }
                let mut prefix = [0u8; PREFIX];
                self.take(PREFIX).copy_to_slice(&mut prefix);
                if prefix[0] != 0 {
                    return Err(Status::internal(
                        "compressed messages are not supported on this stream",
                    ));
                }
                let len = u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]) as usize;
                if len > self.max_len {
                    return Err(Status::out_of_range(format!(
                        "Error, decoded message length too large: found {len} bytes, the limit is: {} bytes",
                        self.max_len
                    )));
                }
                check(Check::Length(len))?;
                self.body_len = Some(len);
                len
            }
        };
        if self.buffered < len {
            return Ok(None);
        }
        self.body_len = None;
        let body = self.take(len);
        check(Check::Body(&body))?;
        M::decode(body)
            .map(Some)
            .map_err(|e| Status::internal(format!("invalid message: {e}")))
    }

    /// The next `n` buffered bytes (`n <= self.buffered`).
    fn take(&mut self, n: usize) -> Frames {
        self.buffered -= n;
        let mut out = Frames {
            chunks: VecDeque::new(),
            remaining: n,
        };
        let mut left = n;
        while left > 0 {
            let front = self
                .frames
                .front_mut()
                .expect("buffered bytes are in frames");
            if front.len() <= left {
                left -= front.len();
                out.chunks.extend(self.frames.pop_front());
            } else {
                out.chunks.push_back(front.split_to(left));
                left = 0;
            }
        }
        out
    }

    fn is_empty(&self) -> bool {
        self.buffered == 0 && self.body_len.is_none()
    }
}

/// What a [`Reader`] may refuse before it buffers or decodes a message.
enum Check<'a> {
    /// A message of this many bytes is announced; nothing of it is buffered yet.
    Length(usize),
    /// The message is in, not decoded yet.
    Body(&'a Frames),
}

/// Bytes of one message, spread over the frames they arrived in.
struct Frames {
    chunks: VecDeque<Bytes>,
    remaining: usize,
}

impl Buf for Frames {
    fn remaining(&self) -> usize {
        self.remaining
    }

    fn chunk(&self) -> &[u8] {
        self.chunks.front().map_or(&[], |c| c.as_ref())
    }

    fn advance(&mut self, mut cnt: usize) {
        assert!(cnt <= self.remaining, "advance past the end of a message");
        self.remaining -= cnt;
        while cnt > 0 {
            let front = self
                .chunks
                .front_mut()
                .expect("remaining bytes are in chunks");
            if front.len() <= cnt {
                cnt -= front.len();
                self.chunks.pop_front();
            } else {
                front.advance(cnt);
                cnt = 0;
            }
        }
    }

    /// A field within one frame is shared; only one split across frames is copied.
    fn copy_to_bytes(&mut self, len: usize) -> Bytes {
        match self.chunks.front_mut() {
            Some(front) if front.len() >= len => {
                self.remaining -= len;
                let out = front.split_to(len);
                if front.is_empty() {
                    self.chunks.pop_front();
                }
                out
            }
            _ => {
                assert!(len <= self.remaining, "read past the end of a message");
                let mut out = BytesMut::with_capacity(len);
                out.put((&mut *self).take(len));
                out.freeze()
            }
        }
    }
}

/// Reads gRPC messages from an HTTP/2 body.
#[derive(Debug)]
pub(crate) struct Reader {
    body: Body,
    frames: Deframer,
    trailers: Option<HeaderMap>,
    ended: bool,
    admission: Option<Admission>,
}

/// Memory a reader reserves for each message before taking it in.
#[derive(Debug)]
struct Admission {
    budget: Arc<Budget>,
    per_request: usize,
    shape: Shape,
    /// What the message being received holds.
    held: Option<Reservation>,
}

fn mib(bytes: usize) -> String {
    format!("{:.1} MiB", bytes as f64 / MIB as f64)
}

impl Admission {
    fn check(&mut self, check: Check<'_>) -> Result<(), Status> {
        match check {
            // The bytes are held while the message comes in: reserve them first.
            Check::Length(len) => {
                let mut held = self.budget.reservation();
                self.fits(len, len)?;
                held.grow(len).map_err(|e| self.over_budget(e))?;
                self.held = Some(held);
                Ok(())
            }
            Check::Body(frames) => {
                // A malformed message is left to the decoder, which names the problem.
                let chunks: Vec<&[u8]> = frames.chunks.iter().map(|b| b.as_ref()).collect();
                let Ok(decoded) = estimate(self.shape, &chunks) else {
                    return Ok(());
                };
                let decoded = usize::try_from(decoded).unwrap_or(usize::MAX);
                let wire = frames.remaining;
                if let Err(e) = self.fits(wire, wire.saturating_add(decoded)) {
                    // Refused: the bytes are dropped with the message.
                    self.held = None;
                    return Err(e);
                }
                let held = self.held.get_or_insert_with(|| self.budget.reservation());
                if let Err(e) = held.grow(decoded) {
                    let e = OverBudget {
                        wanted: e.wanted.saturating_add(held.bytes()),
                        used: e.used.saturating_sub(held.bytes()),
                        ..e
                    };
                    self.held = None;
                    return Err(self.over_budget(e));
                }
                Ok(())
            }
        }
    }

    fn fits(&self, wire: usize, needed: usize) -> Result<(), Status> {
        if needed <= self.per_request {
            return Ok(());
        }
        Err(Status::resource_exhausted(format!(
            "the request needs about {} of memory once decoded ({wire} bytes on the wire), \
             over this executor's limit of {} per request (--max-request-memory-mb)",
            mib(needed),
            mib(self.per_request)
        )))
    }

    fn over_budget(&self, e: OverBudget) -> Status {
        Status::resource_exhausted(format!(
            "the executor's memory budget is taken: the request needs about {}, and {} of \
             its {} are reserved by requests in progress (--memory-budget-mb); try again later",
            mib(e.wanted),
            mib(e.used),
            mib(e.total)
        ))
    }
}

impl Reader {
    /// Reads `body`, refusing messages over `max_len` bytes.
    pub(crate) fn new(body: Body, max_len: usize) -> Self {
        Self {
            body,
            frames: Deframer {
                frames: VecDeque::new(),
                buffered: 0,
                body_len: None,
                max_len,
            },
            trailers: None,
            ended: false,
            admission: None,
        }
    }

    /// Reserves each message's bytes and estimated decoded size from `budget` before
    /// buffering and decoding it, refusing one that would take more than `per_request`
    /// bytes or does not fit the budget (`RESOURCE_EXHAUSTED`).
    pub(crate) fn with_budget(
        mut self,
        budget: Arc<Budget>,
        per_request: usize,
        shape: Shape,
    ) -> Self {
        self.admission = Some(Admission {
            budget,
            per_request,
            shape,
            held: None,
        });
        self
    }

    /// The next message, or `None` at the end of the body (its trailers are then in
    /// [`Reader::trailers`]).
    pub(crate) async fn message<M: prost::Message + Default>(
        &mut self,
    ) -> Result<Option<M>, Status> {
        Ok(self.message_reserved().await?.map(|(m, _)| m))
    }

    /// Like [`Reader::message`], with what the message holds from the budget (with
    /// [`Reader::with_budget`]): keep it while the message or what it decoded into is
    /// alive.
    pub(crate) async fn message_reserved<M: prost::Message + Default>(
        &mut self,
    ) -> Result<Option<(M, Option<Reservation>)>, Status> {
        loop {
            let admission = &mut self.admission;
            let mut check = |c: Check<'_>| match admission {
                Some(a) => a.check(c),
                None => Ok(()),
            };
            if let Some(m) = self.frames.next(&mut check)? {
                let held = self.admission.as_mut().and_then(|a| a.held.take());
                return Ok(Some((m, held)));
            }
            if self.ended {
                return if self.frames.is_empty() {
                    Ok(None)
                } else {
                    Err(Status::internal("the stream ended inside a message"))
                };
            }
            match poll_fn(|cx| Pin::new(&mut self.body).poll_frame(cx)).await {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => self.frames.push(data),
                    Err(frame) => {
                        if let Ok(t) = frame.into_trailers() {
                            self.trailers.get_or_insert_with(HeaderMap::new).extend(t);
                        }
                    }
                },
                Some(Err(status)) => return Err(status),
                None => self.ended = true,
            }
        }
    }

    /// The length of the message being received, once its prefix is in.
    pub(crate) fn announced(&self) -> Option<usize> {
        self.frames.body_len
    }

    /// The trailers received so far.
    pub(crate) fn trailers(&self) -> Option<&HeaderMap> {
        self.trailers.as_ref()
    }
}

/// An HTTP/2 body that sends messages as they are queued: for a request, until the
/// sender is dropped; for a response, then ends with the status as trailers.
pub(crate) struct Outgoing {
    rx: mpsc::Receiver<Encoded>,
    queued: VecDeque<Bytes>,
    trailers: bool,
    done: bool,
    /// Kept until the body is sent or dropped ([`Outgoing::holding`]).
    guard: Option<Box<dyn Send + Sync>>,
}

impl std::fmt::Debug for Outgoing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outgoing")
            .field("queued", &self.queued.len())
            .field("done", &self.done)
            .finish()
    }
}

impl Outgoing {
    /// A request body fed by `rx`.
    pub(crate) fn request(rx: mpsc::Receiver<Encoded>) -> Self {
        Self::new(rx, false)
    }

    /// A response body fed by `rx`; a queued error or the end of `rx` becomes the
    /// `grpc-status` trailers.
    pub(crate) fn response(rx: mpsc::Receiver<Encoded>) -> Self {
        Self::new(rx, true)
    }

    fn new(rx: mpsc::Receiver<Encoded>, trailers: bool) -> Self {
        Self {
            rx,
            queued: VecDeque::new(),
            trailers,
            done: false,
            guard: None,
        }
    }

    /// Keeps `guard` alive until the whole body has been sent or the body is dropped:
    /// what a response holds (a slot, a memory reservation) stays taken while a client
    /// that reads slowly, or not at all, keeps the response waiting.
    pub(crate) fn holding(mut self, guard: impl Send + Sync + 'static) -> Self {
        self.guard = Some(Box::new(guard));
        self
    }

    fn end(&mut self, status: Status) -> Option<Result<Frame<Bytes>, Status>> {
        self.done = true;
        if !self.trailers {
            return (status.code() != Code::Ok).then_some(Err(status));
        }
        let mut map = HeaderMap::new();
        if let Err(bad) = status.add_header(&mut map) {
            map.clear();
            let _ = Status::internal(bad.message().to_string()).add_header(&mut map);
        }
        Some(Ok(Frame::trailers(map)))
    }
}

impl HttpBody for Outgoing {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = self.get_mut();
        loop {
            if let Some(chunk) = this.queued.pop_front() {
                return Poll::Ready(Some(Ok(Frame::data(chunk))));
            }
            if this.done {
                this.guard = None;
                return Poll::Ready(None);
            }
            match ready!(this.rx.poll_recv(cx)) {
                Some(Ok(chunks)) => this.queued.extend(chunks),
                Some(Err(status)) => return Poll::Ready(this.end(status)),
                None => return Poll::Ready(this.end(Status::new(Code::Ok, ""))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::{items_from_pb, items_to_pb};
    use crate::pb;
    use remotemedia_core::{AudioBuffer, Data};

    fn items(data: Vec<Data>) -> pb::StreamRequest {
        pb::StreamRequest {
            msg: Some(pb::stream_request::Msg::Items(pb::Items {
                first_seq: 7,
                port: 0,
                items: items_to_pb(&data),
            })),
        }
    }

    fn deframer() -> Deframer {
        Deframer {
            frames: VecDeque::new(),
            buffered: 0,
            body_len: None,
            max_len: 64 << 20,
        }
    }

    fn decoded_items(m: pb::StreamRequest) -> Vec<Data> {
        match m.msg {
            Some(pb::stream_request::Msg::Items(i)) => items_from_pb(i.items).unwrap(),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn large_fields_are_shared_not_copied() {
        let samples: Vec<f32> = (0..(64 << 10)).map(|i| i as f32).collect();
        let audio = AudioBuffer::new(samples, 48_000, 2);
        let shared = audio.samples.as_ptr().cast::<u8>();
        let chunks = encode(&items(vec![Data::Int(1), Data::from(audio.clone())])).unwrap();
        assert!(chunks.iter().any(|c| c.as_ptr() == shared));
        // The wire bytes are exactly prost's encoding behind the gRPC prefix.
        let m = items(vec![Data::Int(1), Data::from(audio)]);
        let wire: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
        assert_eq!(wire[0], 0);
        assert_eq!(
            &wire[1..5],
            &(prost::Message::encoded_len(&m) as u32).to_be_bytes()
        );
        assert_eq!(wire[5..], prost::Message::encode_to_vec(&m));
    }

    #[test]
    fn messages_decode_however_the_bytes_are_split() {
        let audio = Data::from(AudioBuffer::new(vec![0.25f32; 9000], 16_000, 1));
        let sent = [
            vec![Data::Int(1), Data::text("a")],
            vec![audio.clone(), Data::Int(2)],
            vec![],
        ];
        let wire: Vec<u8> = sent
            .iter()
            .flat_map(|d| encode(&items(d.clone())).unwrap())
            .flat_map(|c| c.to_vec())
            .collect();
        for step in [1, 3, 5, 4096, 36_000, wire.len()] {
            let mut d = deframer();
            let mut got = Vec::new();
            for piece in wire.chunks(step) {
                d.push(Bytes::copy_from_slice(piece));
                while let Some(m) = d.next::<pb::StreamRequest>(&mut |_| Ok(())).unwrap() {
                    got.push(decoded_items(m));
                }
            }
            assert!(d.is_empty());
            assert_eq!(got, sent, "split every {step} bytes");
        }
    }

    #[test]
    fn oversized_and_compressed_messages_are_refused() {
        let mut d = deframer();
        d.max_len = 10;
        d.push(Bytes::from_static(&[0, 0, 0, 0, 11]));
        let err = d.next::<pb::StreamRequest>(&mut |_| Ok(())).unwrap_err();
        assert_eq!(err.code(), Code::OutOfRange);
        assert!(err.message().contains("message length too large"));
        let mut d = deframer();
        d.push(Bytes::from_static(&[1, 0, 0, 0, 0]));
        assert_eq!(
            d.next::<pb::StreamRequest>(&mut |_| Ok(()))
                .unwrap_err()
                .code(),
            Code::Internal
        );
    }

    fn admission(budget: &Arc<Budget>, per_request: usize) -> Admission {
        Admission {
            budget: Arc::clone(budget),
            per_request,
            shape: Shape::Stream,
            held: None,
        }
    }

    #[test]
    fn messages_reserve_their_decoded_size_before_decoding() {
        let budget = Budget::new(64 << 20);
        let mut a = admission(&budget, 32 << 20);
        let wire: Vec<u8> = encode(&items(vec![Data::Null; 1000]))
            .unwrap()
            .iter()
            .flat_map(|c| c.to_vec())
            .collect();
        let mut d = deframer();
        // The prefix alone reserves the announced bytes.
        d.push(Bytes::copy_from_slice(&wire[..PREFIX]));
        assert!(d
            .next::<pb::StreamRequest>(&mut |c| a.check(c))
            .unwrap()
            .is_none());
        assert_eq!(budget.used(), wire.len() - PREFIX);
        d.push(Bytes::copy_from_slice(&wire[PREFIX..]));
        let m = d
            .next::<pb::StreamRequest>(&mut |c| a.check(c))
            .unwrap()
            .unwrap();
        assert_eq!(decoded_items(m).len(), 1000);
        let held = a.held.take().unwrap();
        assert!(held.bytes() > 1000 * 64, "{}", held.bytes());
        assert_eq!(budget.used(), held.bytes());
        drop(held);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn messages_over_a_limit_are_refused_undecoded_and_hold_nothing() {
        let wire: Vec<u8> = encode(&items(vec![Data::Null; 100_000]))
            .unwrap()
            .iter()
            .flat_map(|c| c.to_vec())
            .collect();
        // Over one request's share: named with the flag.
        let budget = Budget::new(1 << 30);
        let mut a = admission(&budget, 1 << 20);
        let mut d = deframer();
        d.push(Bytes::from(wire.clone()));
        let err = d
            .next::<pb::StreamRequest>(&mut |c| a.check(c))
            .unwrap_err();
        assert_eq!(err.code(), Code::ResourceExhausted);
        assert!(err.message().contains("--max-request-memory-mb"), "{err}");
        assert!(err.message().contains("1.0 MiB per request"), "{err}");
        assert!(a.held.is_none());
        assert_eq!(budget.used(), 0);
        // Over what the budget has left: names what is taken.
        let budget = Budget::new(4 << 20);
        let mut other = budget.reservation();
        other.grow(2 << 20).unwrap();
        let mut a = admission(&budget, 1 << 30);
        let mut d = deframer();
        d.push(Bytes::from(wire));
        let err = d
            .next::<pb::StreamRequest>(&mut |c| a.check(c))
            .unwrap_err();
        assert_eq!(err.code(), Code::ResourceExhausted);
        assert!(
            err.message()
                .contains("2.0 MiB of its 4.0 MiB are reserved")
                && err.message().contains("--memory-budget-mb"),
            "{err}"
        );
        assert!(a.held.is_none());
        assert_eq!(budget.used(), 2 << 20);
    }
}
