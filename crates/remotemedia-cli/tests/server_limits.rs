//! Resource exhaustion against a real `remotemedia serve` on loopback: abandoned and
//! overdue runs, streams that never open, connection floods and idle connections,
//! requests that would decode into gigabytes, pipelines asking for thousands of
//! threads or processes, and a shutdown with a node call that never returns.
//!
//! Every attack is followed by the same checks: other clients are still served within
//! a bounded time, and the capacity the attacker held comes back once it is gone.
//! Calls are crafted with the generated gRPC client (or raw bytes where a message is
//! too large to build as values). Linux only: the tests read `/proc` and send signals.
#![cfg(target_os = "linux")]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use prost::Message;
use remotemedia_remote::pb;
use remotemedia_remote::pb::executor_client::ExecutorClient;
use remotemedia_remote::tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use remotemedia_remote::tonic::codegen::http::uri::PathAndQuery;
use remotemedia_remote::tonic::transport::{Channel, Endpoint};
use remotemedia_remote::tonic::{self, Code, Status};
use tokio::runtime::Runtime;

mod support;

use support::{spawn_serve, BIN};

fn caps() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/remote/cpu-capabilities.json")
}

/// A `remotemedia serve` on a free loopback port; killed when dropped.
struct Server {
    addr: SocketAddr,
    /// Where metrics are served, when asked for with `--metrics-listen`.
    metrics: Option<SocketAddr>,
    child: Child,
    stderr: PathBuf,
    _stdout: BufReader<ChildStdout>,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start(extra: &[&str]) -> Server {
        Self::start_on("127.0.0.1:0", extra)
    }

    fn start_on(listen: &str, extra: &[&str]) -> Server {
        Self::spawn(Command::new(BIN), listen, extra)
    }

    /// Started with at most `fds` open file descriptors.
    fn start_with_fd_limit(fds: u32, extra: &[&str]) -> Server {
        let mut sh = Command::new("sh");
        sh.args(["-c", &format!("ulimit -n {fds} && exec \"$0\" \"$@\""), BIN]);
        Self::spawn(sh, "127.0.0.1:0", extra)
    }

    fn spawn(command: Command, listen: &str, extra: &[&str]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let stderr = dir.path().join("serve.stderr");
        let mut args = vec!["--listen", listen];
        args.extend_from_slice(extra);
        let (child, addr, stdout) = spawn_serve(command, dir.path(), &caps(), &args, &stderr);
        let addr = addr.parse().unwrap();
        Server {
            addr,
            child,
            stderr,
            metrics: None,
            _stdout: stdout,
            _dir: dir,
        }
        .with_metrics_line(extra)
    }

    /// Reads the `metrics on ADDR` line that follows when metrics were asked for.
    fn with_metrics_line(mut self, extra: &[&str]) -> Server {
        if extra.contains(&"--metrics-listen") {
            let mut line = String::new();
            self._stdout.read_line(&mut line).unwrap();
            let addr = line
                .trim()
                .strip_prefix("metrics on ")
                .expect("a metrics line");
            self.metrics = Some(addr.parse().unwrap());
        }
        self
    }

    /// One sample of the Prometheus text (`name{labels}` as written there).
    fn metric(&self, sample: &str) -> u64 {
        let mut sock = TcpStream::connect(self.metrics.expect("served with metrics")).unwrap();
        sock.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut text = String::new();
        sock.read_to_string(&mut text).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {sample} in the metrics:\n{text}"))
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A field of `/proc/PID/status` in its first unit (kB for memory).
    fn status(&self, field: &str) -> u64 {
        let text = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no {field} in /proc status"))
    }

    fn rss_mb(&self) -> u64 {
        self.status("VmRSS") / 1024
    }

    fn peak_rss_mb(&self) -> u64 {
        self.status("VmHWM") / 1024
    }

    /// CPU time used so far (user + system).
    fn cpu_time(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap();
        // Fields after the command name (which may hold spaces): state is the 3rd
        // field, utime and stime the 14th and 15th.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let f: Vec<u64> = rest
            .split_whitespace()
            .map(|x| x.parse().unwrap_or(0))
            .collect();
        // Clock ticks are 1/100 s on Linux.
        Duration::from_millis((f[11] + f[12]) * 10)
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A fresh connection (a channel of its own).
async fn connect(url: &str) -> Result<Channel, tonic::transport::Error> {
    Endpoint::from_shared(url.to_string())
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
}

async fn client(url: &str) -> ExecutorClient<Channel> {
    ExecutorClient::new(connect(url).await.unwrap())
}

const CALC: &str = r#"{"version":"v1","metadata":{"name":"calc"},
  "nodes":[{"id":"in","node_type":"PassThrough"},
           {"id":"add","node_type":"Calculator","params":{"operation":"add","operand":1}}],
  "connections":[{"from":"in","to":"add"}]}"#;

/// A node that fails every item and waits 20 s before each of its 5 retries: without
/// cancellation, a call holds its slot for minutes.
const STUCK: &str = r#"{"version":"v1","metadata":{"name":"stuck"},
  "nodes":[{"id":"div","node_type":"Calculator","params":{"operation":"divide","operand":0},
            "retry":{"max_retries":5,"initial_backoff_ms":20000,"max_backoff_ms":20000}}],
  "connections":[]}"#;

fn int(i: i64) -> pb::Value {
    pb::Value {
        kind: Some(pb::value::Kind::IntValue(i)),
    }
}

fn execute_request(manifest: &str, inputs: Vec<pb::Value>) -> pb::ExecuteRequest {
    pb::ExecuteRequest {
        manifest_json: manifest.to_string(),
        inputs,
    }
}

/// The server still answers, quickly: capabilities and a small run, each within 5 s
/// on a fresh connection. The check after every attack.
async fn still_serving(url: &str) {
    let start = Instant::now();
    let mut c = tokio::time::timeout(Duration::from_secs(5), client(url))
        .await
        .expect("connecting took over 5 s");
    let out = tokio::time::timeout(
        Duration::from_secs(5),
        c.execute_pipeline(execute_request(CALC, vec![int(1)])),
    )
    .await
    .expect("a small run took over 5 s")
    .unwrap()
    .into_inner();
    assert_eq!(out.error, None);
    assert_eq!(out.outputs[0].items, vec![int(2)]);
    assert!(start.elapsed() < Duration::from_secs(8));
}

async fn load(url: &str) -> pb::Load {
    let mut c = client(url).await;
    c.health(pb::HealthRequest {})
        .await
        .unwrap()
        .into_inner()
        .load
        .unwrap()
}

/// Waits (at most `within`) until `check` holds for the executor's load.
async fn wait_for_load(url: &str, within: Duration, what: &str, check: impl Fn(&pb::Load) -> bool) {
    let start = Instant::now();
    loop {
        let l = load(url).await;
        if check(&l) {
            return;
        }
        assert!(
            start.elapsed() < within,
            "{what} not reached within {within:?}: {l:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A unary call made with bare HTTP/2, so that the client enforces no deadline of its
/// own (tonic's channel gives up at `grpc-timeout` itself): what the server answers
/// at the deadline is what comes back. Returns `grpc-status` and `grpc-message`.
async fn bare_call(
    addr: SocketAddr,
    path: &str,
    grpc_timeout: &str,
    message: &[u8],
) -> (String, String) {
    bare_request(addr, path, Some(grpc_timeout), Some(message)).await
}

/// [`bare_call`] with an optional deadline and request message (without one, the
/// request body is left open and empty).
async fn bare_request(
    addr: SocketAddr,
    path: &str,
    grpc_timeout: Option<&str>,
    message: Option<&[u8]>,
) -> (String, String) {
    use remotemedia_remote::tonic::codegen::http;
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut h2, conn) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut req = http::Request::builder()
        .method("POST")
        .uri(format!("http://{addr}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    if let Some(t) = grpc_timeout {
        req = req.header("grpc-timeout", t);
    }
    let (response, mut send) = h2.send_request(req.body(()).unwrap(), false).unwrap();
    if let Some(message) = message {
        let mut framed = BytesMut::new();
        framed.put_u8(0);
        framed.put_u32(message.len() as u32);
        framed.put_slice(message);
        send.send_data(framed.freeze(), true).unwrap();
    }
    let (parts, mut body) = response.await.unwrap().into_parts();
    let headers = if parts.headers.contains_key("grpc-status") {
        parts.headers
    } else {
        while let Some(data) = body.data().await {
            let data = data.unwrap();
            let _ = body.flow_control().release_capacity(data.len());
        }
        body.trailers().await.unwrap().expect("trailers")
    };
    let get = |k: &str| {
        headers
            .get(k)
            .map(|v| percent_decode(v.to_str().unwrap()))
            .unwrap_or_default()
    };
    (get("grpc-status"), get("grpc-message"))
}

/// `grpc-message` is percent-encoded.
fn percent_decode(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&text[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

const EXECUTE_PATH: &str = "/remotemedia.v1.Executor/ExecutePipeline";

#[test]
fn abandoned_and_overdue_runs_are_cancelled_and_free_their_slots() {
    let server = Server::start(&["--max-streams", "2"]);
    let url = server.url();
    runtime().block_on(async {
        let shared = connect(&url).await.unwrap();
        // One call on a shared connection (dropping it resets the stream), one on a
        // connection of its own (dropping it closes the connection).
        let mut on_shared = ExecutorClient::new(shared.clone());
        let reset = tokio::spawn(async move {
            on_shared
                .execute_pipeline(execute_request(STUCK, vec![int(1)]))
                .await
        });
        let own = connect(&url).await.unwrap();
        let closed = tokio::spawn(async move {
            ExecutorClient::new(own)
                .execute_pipeline(execute_request(STUCK, vec![int(1)]))
                .await
        });
        wait_for_load(&url, Duration::from_secs(5), "two stuck runs", |l| {
            l.active_streams == 2
        })
        .await;
        let err = ExecutorClient::new(shared.clone())
            .execute_pipeline(execute_request(CALC, vec![int(1)]))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::ResourceExhausted, "{err}");
        assert!(err.message().contains("--max-streams"), "{err}");

        reset.abort();
        closed.abort();
        let gone = Instant::now();
        wait_for_load(&url, Duration::from_secs(5), "slots freed", |l| {
            l.active_streams == 0
        })
        .await;
        assert!(gone.elapsed() < Duration::from_secs(5));
        still_serving(&url).await;

        // A deadline (grpc-timeout) cancels the run too, and says so.
        let start = Instant::now();
        let request = execute_request(STUCK, vec![int(1)]).encode_to_vec();
        let (status, message) = bare_call(server.addr, EXECUTE_PATH, "500m", &request).await;
        assert_eq!(
            status,
            (Code::DeadlineExceeded as i32).to_string(),
            "{message}"
        );
        assert!(message.contains("deadline (500 ms"), "{message}");
        assert!(start.elapsed() < Duration::from_secs(5));
        wait_for_load(
            &url,
            Duration::from_secs(5),
            "slot freed after the deadline",
            |l| l.active_streams == 0,
        )
        .await;
        still_serving(&url).await;
    });
}

/// A `StreamPipeline` call whose request messages are fed from the returned sender.
async fn open_stream(
    channel: Channel,
    req: tonic::Request<()>,
) -> (
    tokio::sync::mpsc::Sender<pb::StreamRequest>,
    tokio::task::JoinHandle<Result<tonic::Streaming<pb::StreamResponse>, Status>>,
) {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let (meta, ext, ()) = req.into_parts();
    let body =
        tonic::Request::from_parts(meta, ext, tokio_stream::wrappers::ReceiverStream::new(rx));
    let call = tokio::spawn(async move {
        ExecutorClient::new(channel)
            .stream_pipeline(body)
            .await
            .map(|r| r.into_inner())
    });
    (tx, call)
}

fn open_msg(manifest: &str) -> pb::StreamRequest {
    pb::StreamRequest {
        msg: Some(pb::stream_request::Msg::Open(pb::Open {
            manifest_json: manifest.to_string(),
            head_inputs: Vec::new(),
        })),
    }
}

fn items_msg(items: Vec<pb::Value>) -> pb::StreamRequest {
    pb::StreamRequest {
        msg: Some(pb::stream_request::Msg::Items(pb::Items {
            first_seq: 0,
            port: 0,
            items,
        })),
    }
}

#[test]
fn an_answer_the_client_does_not_read_keeps_its_slot_and_memory_until_the_client_goes() {
    use remotemedia_remote::tonic::codegen::http;
    let server = Server::start(&["--max-streams", "1"]);
    let url = server.url();
    runtime().block_on(async {
        // A client with a 1 KiB window that never reads: an 8 MiB answer cannot go out.
        let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        let (mut h2, conn) = h2::client::Builder::new()
            .initial_window_size(1024)
            .handshake::<_, Bytes>(tcp)
            .await
            .unwrap();
        let conn = tokio::spawn(async move {
            let _ = conn.await;
        });
        let pass = r#"{"version":"v1","metadata":{"name":"p"},
          "nodes":[{"id":"p","node_type":"PassThrough"}],"connections":[]}"#;
        let big = pb::Value {
            kind: Some(pb::value::Kind::BytesValue(vec![7u8; 8 << 20].into())),
        };
        let message = execute_request(pass, vec![big]).encode_to_vec();
        let req = http::Request::builder()
            .method("POST")
            .uri(format!("http://{}{EXECUTE_PATH}", server.addr))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(())
            .unwrap();
        let (response, mut send) = h2.send_request(req, false).unwrap();
        let mut framed = BytesMut::new();
        framed.put_u8(0);
        framed.put_u32(message.len() as u32);
        framed.put_slice(&message);
        send.send_data(framed.freeze(), true).unwrap();
        let _unread = response.await.unwrap();
        // The run is over, but its answer is not out: slot and memory stay counted.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let l = load(&url).await;
        assert_eq!(l.active_streams, 1, "{l:?}");
        assert!(l.memory_reserved_bytes >= 8 << 20, "{l:?}");
        let err = client(&url)
            .await
            .execute_pipeline(execute_request(CALC, vec![int(1)]))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::ResourceExhausted, "{err}");
        // Gone: everything comes back.
        conn.abort();
        drop((_unread, send, h2));
        wait_for_load(&url, Duration::from_secs(5), "slot and memory back", |l| {
            l.active_streams == 0 && l.memory_reserved_bytes == 0
        })
        .await;
        still_serving(&url).await;
    });
}

#[test]
fn streams_stuck_in_a_back_off_are_cancelled_when_the_client_goes_or_the_deadline_passes() {
    let server = Server::start(&["--max-streams", "2"]);
    let url = server.url();
    runtime().block_on(async {
        let channel = connect(&url).await.unwrap();
        let (tx, call) = open_stream(channel.clone(), tonic::Request::new(())).await;
        tx.send(open_msg(STUCK)).await.unwrap();
        tx.send(items_msg(vec![int(1)])).await.unwrap();
        let mut responses = call.await.unwrap().unwrap();
        let opened = responses.message().await.unwrap().unwrap();
        assert!(matches!(
            opened.msg,
            Some(pb::stream_response::Msg::Opened(_))
        ));
        // The item is now failing and waiting 20 s before its retry.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(load(&url).await.active_streams, 1);
        drop(responses);
        drop(tx);
        wait_for_load(&url, Duration::from_secs(5), "stream slot freed", |l| {
            l.active_streams == 0
        })
        .await;

        // With a deadline, the stream ends with DEADLINE_EXCEEDED in its back-off.
        let mut req = tonic::Request::new(());
        req.set_timeout(Duration::from_millis(700));
        let (tx, call) = open_stream(channel.clone(), req).await;
        tx.send(open_msg(STUCK)).await.unwrap();
        tx.send(items_msg(vec![int(1)])).await.unwrap();
        let start = Instant::now();
        let mut responses = call.await.unwrap().unwrap();
        let status = loop {
            match tokio::time::timeout(Duration::from_secs(5), responses.message())
                .await
                .expect("the deadline ends the stream")
            {
                Ok(Some(_)) => continue,
                Ok(None) => panic!("the stream ended without a status"),
                Err(status) => break status,
            }
        };
        assert_eq!(status.code(), Code::DeadlineExceeded, "{status}");
        assert!(start.elapsed() < Duration::from_secs(5));
        drop(tx);
        wait_for_load(
            &url,
            Duration::from_secs(5),
            "slot freed after the deadline",
            |l| l.active_streams == 0,
        )
        .await;
        still_serving(&url).await;
    });
}

#[test]
fn streams_that_never_open_hold_a_counted_slot_until_the_handshake_timeout() {
    let server = Server::start(&["--max-streams", "2", "--handshake-timeout", "1"]);
    let url = server.url();
    runtime().block_on(async {
        let channel = connect(&url).await.unwrap();
        let start = Instant::now();
        // Two calls that send no message at all.
        let (tx1, silent1) = open_stream(channel.clone(), tonic::Request::new(())).await;
        let (tx2, silent2) = open_stream(channel.clone(), tonic::Request::new(())).await;
        wait_for_load(
            &url,
            Duration::from_secs(1),
            "handshakes counted as active",
            |l| l.active_streams == 2,
        )
        .await;
        let err = ExecutorClient::new(channel.clone())
            .execute_pipeline(execute_request(CALC, vec![int(1)]))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::ResourceExhausted);
        for call in [silent1, silent2] {
            let err = tokio::time::timeout(Duration::from_secs(5), call)
                .await
                .expect("the handshake timeout ends the call")
                .unwrap()
                .unwrap_err();
            assert_eq!(err.code(), Code::DeadlineExceeded, "{err}");
            assert!(err.message().contains("--handshake-timeout"), "{err}");
        }
        let waited = start.elapsed();
        assert!(waited >= Duration::from_millis(900), "{waited:?}");
        assert!(waited < Duration::from_secs(5), "{waited:?}");
        drop((tx1, tx2));
        // The same for a run whose request never comes.
        let start = Instant::now();
        let (status, message) = bare_request(server.addr, EXECUTE_PATH, None, None).await;
        assert_eq!(
            status,
            (Code::DeadlineExceeded as i32).to_string(),
            "{message}"
        );
        assert!(message.contains("--handshake-timeout"), "{message}");
        assert!(start.elapsed() < Duration::from_secs(5));

        // A request that announces 2 MiB and trickles a byte every 100 ms gets the
        // handshake timeout plus a second per MiB, not forever.
        let start = Instant::now();
        let (status, message) = trickled_request(server.addr, 2 << 20).await;
        let waited = start.elapsed();
        assert_eq!(
            status,
            (Code::DeadlineExceeded as i32).to_string(),
            "{message}"
        );
        assert!(message.contains("within 3.0 s"), "{message}");
        assert!(waited >= Duration::from_millis(2900), "{waited:?}");
        assert!(waited < Duration::from_secs(8), "{waited:?}");
        wait_for_load(&url, Duration::from_secs(2), "slots freed", |l| {
            l.active_streams == 0
        })
        .await;
        still_serving(&url).await;
    });
}

/// An `ExecutePipeline` call whose message prefix announces `len` bytes, which then
/// come one every 100 ms (at most 100 of them); its `grpc-status` and `grpc-message`.
async fn trickled_request(addr: SocketAddr, len: u32) -> (String, String) {
    use remotemedia_remote::tonic::codegen::http;
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut h2, conn) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let req = http::Request::builder()
        .method("POST")
        .uri(format!("http://{addr}{EXECUTE_PATH}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap();
    let (response, mut send) = h2.send_request(req, false).unwrap();
    let mut prefix = BytesMut::new();
    prefix.put_u8(0);
    prefix.put_u32(len);
    send.send_data(prefix.freeze(), false).unwrap();
    let trickle = tokio::spawn(async move {
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if send.send_data(Bytes::from_static(&[0x0a]), false).is_err() {
                return;
            }
        }
    });
    let (parts, _) = response.await.unwrap().into_parts();
    trickle.abort();
    let get = |k: &str| {
        parts
            .headers
            .get(k)
            .map(|v| percent_decode(v.to_str().unwrap()))
            .unwrap_or_default()
    };
    (get("grpc-status"), get("grpc-message"))
}

/// Reads from `sock` until the server closes it; the time it took, or `None` when
/// it was still open after `within`.
fn time_to_close(sock: &mut TcpStream, within: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        let left = within.checked_sub(start.elapsed())?;
        sock.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        match sock.read(&mut buf) {
            Ok(0) => return Some(start.elapsed()),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return None,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return None,
            Err(_) => return Some(start.elapsed()),
        }
    }
}

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

#[test]
fn a_connection_flood_is_bounded_and_silent_connections_are_closed() {
    let server = Server::start(&[
        "--max-connections",
        "40",
        "--idle-timeout",
        "2",
        "--metrics-listen",
        "127.0.0.1:0",
    ]);
    let url = server.url();
    // 40 connections that never send a byte, 10 more that stop after the preface.
    let mut silent: Vec<TcpStream> = (0..40)
        .map(|_| TcpStream::connect(server.addr).unwrap())
        .collect();
    // Each was accepted after this point, so none may be closed for silence before
    // the idle timeout counted from here.
    let opened = Instant::now();
    std::thread::sleep(Duration::from_millis(300));
    // Over the limit: accepted and closed at once, never left in the backlog.
    for _ in 0..10 {
        let mut over = TcpStream::connect(server.addr).unwrap();
        let closed = time_to_close(&mut over, Duration::from_secs(1));
        assert!(
            closed.is_some(),
            "a connection over the limit was kept open"
        );
    }
    let rt = runtime();
    rt.block_on(async {
        let refused = async {
            let mut c = ExecutorClient::new(connect(&url).await?);
            c.health(pb::HealthRequest {}).await.map_err(Into::into)
        };
        let r: Result<_, Box<dyn std::error::Error>> = refused.await;
        assert!(r.is_err(), "a client over the connection limit got in");
    });
    // Silence for the idle timeout (the preface bound here): every one is closed,
    // none before it.
    let mut earliest = Duration::MAX;
    for sock in &mut silent {
        let left = Duration::from_secs(6).saturating_sub(opened.elapsed());
        assert!(
            time_to_close(sock, left).is_some(),
            "a silent connection outlived the idle timeout"
        );
        earliest = earliest.min(opened.elapsed());
    }
    assert!(
        earliest >= Duration::from_millis(1950),
        "closed too early: {earliest:?}"
    );
    rt.block_on(async {
        still_serving(&url).await;
        // A preface, then nothing: closed too (the keepalive ping goes unanswered, or
        // the idle timeout passes).
        let mut after_preface: Vec<TcpStream> = (0..10)
            .map(|_| {
                let mut s = TcpStream::connect(server.addr).unwrap();
                s.write_all(PREFACE).unwrap();
                s
            })
            .collect();
        let l = load(&url).await;
        assert!(l.active_connections >= 11, "{l:?}");
        assert_eq!(l.max_connections, 40);
        for sock in &mut after_preface {
            assert!(time_to_close(sock, Duration::from_secs(8)).is_some());
        }
        wait_for_load(&url, Duration::from_secs(3), "connections back down", |l| {
            l.active_connections <= 2
        })
        .await;
    });
    // The metrics count the connections closed, and why.
    let limit = server.metric("remotemedia_connections_closed_total{reason=\"limit\"}");
    assert!(limit >= 11, "{limit} closed at the limit");
    let idle = server.metric("remotemedia_connections_closed_total{reason=\"idle\"}");
    assert!(idle >= 50, "{idle} closed for idleness");
    assert_eq!(server.metric("remotemedia_connection_slots"), 40);
    assert!(server.metric("remotemedia_connections_active") <= 2);
    drop(silent);
}

#[test]
fn hundreds_of_idle_and_busy_connections_at_once() {
    let server = Server::start(&["--idle-timeout", "6", "--max-streams", "64"]);
    let url = server.url();
    let before = server.rss_mb();
    let idle: Vec<TcpStream> = (0..300)
        .map(|_| TcpStream::connect(server.addr).unwrap())
        .collect();
    let rt = runtime();
    let l = rt.block_on(load(&url));
    assert!(l.active_connections >= 301, "{l:?}");
    let with_idle = server.rss_mb();
    let slowest = rt.block_on(async {
        // 40 busy clients on connections of their own, 10 runs of 100 items each,
        // while the idle connections are still open.
        let mut tasks = Vec::new();
        for _ in 0..40 {
            let url = url.clone();
            tasks.push(tokio::spawn(async move {
                let mut c = client(&url).await;
                let inputs: Vec<pb::Value> = (0..100).map(int).collect();
                let mut slowest = Duration::ZERO;
                for _ in 0..10 {
                    let start = Instant::now();
                    let out = c
                        .execute_pipeline(execute_request(CALC, inputs.clone()))
                        .await
                        .unwrap()
                        .into_inner();
                    assert_eq!(out.error, None);
                    assert_eq!(out.outputs[0].items.len(), 100);
                    slowest = slowest.max(start.elapsed());
                }
                slowest
            }));
        }
        let mut slowest = Duration::ZERO;
        for t in tasks {
            slowest = slowest.max(t.await.unwrap());
        }
        slowest
    });
    let busy = server.rss_mb();
    eprintln!(
        "RSS: {before} MB at start, {with_idle} MB with 300 idle connections, {busy} MB \
         after 40 busy clients ran 400 runs alongside (slowest run {slowest:?})"
    );
    assert!(slowest < Duration::from_secs(10), "a run took {slowest:?}");
    assert!(busy < before + 200, "{before} MB -> {busy} MB");
    // Once the idle timeout has passed, the idle connections are gone.
    rt.block_on(wait_for_load(
        &url,
        Duration::from_secs(10),
        "idle connections closed",
        |l| l.active_connections <= 2,
    ));
    drop(idle);
    rt.block_on(still_serving(&url));
}

#[test]
fn running_out_of_file_descriptors_pauses_accepting_instead_of_spinning() {
    // A connection limit above what the process may open: descriptors run out first.
    let server =
        Server::start_with_fd_limit(64, &["--max-connections", "1000", "--idle-timeout", "2"]);
    let url = server.url();
    let flood: Vec<TcpStream> = (0..100)
        .map(|_| TcpStream::connect(server.addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    // Accepting fails with EMFILE while the flood holds every descriptor: the loop
    // waits between attempts instead of burning a core on them.
    let cpu = server.cpu_time();
    std::thread::sleep(Duration::from_secs(1));
    let spent = server.cpu_time() - cpu;
    assert!(
        spent < Duration::from_millis(400),
        "{spent:?} of CPU in 1 s"
    );
    // The flood stays connected, but sends nothing: once the idle timeout closes it,
    // the executor serves again, and it never stopped accepting.
    let start = Instant::now();
    runtime().block_on(still_serving(&url));
    let waited = start.elapsed();
    eprintln!("under EMFILE: {spent:?} of CPU in 1 s; served again after {waited:?}");
    assert!(waited < Duration::from_secs(10), "{waited:?}");
    assert!(
        server
            .stderr()
            .contains("cannot accept connections: pausing"),
        "{}",
        server.stderr()
    );
    drop(flood);
}

/// Sends pre-encoded request bytes as one gRPC message and decodes the answer.
#[derive(Clone, Copy, Default)]
struct RawCodec;

struct RawEncoder;
struct RawDecoder;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = pb::ExecuteResponse;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;

    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }

    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

impl Encoder for RawEncoder {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for RawDecoder {
    type Item = pb::ExecuteResponse;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Status> {
        let bytes = src.copy_to_bytes(src.remaining());
        pb::ExecuteResponse::decode(bytes)
            .map(Some)
            .map_err(|e| Status::internal(e.to_string()))
    }
}

/// An `ExecuteRequest` of `nulls` null items, 4 bytes each on the wire.
fn nulls_request(manifest: &str, nulls: usize) -> Bytes {
    let head = pb::ExecuteRequest {
        manifest_json: manifest.to_string(),
        inputs: Vec::new(),
    }
    .encode_to_vec();
    let mut out = BytesMut::with_capacity(head.len() + 4 * nulls);
    out.put_slice(&head);
    for _ in 0..nulls {
        // inputs (field 2, length 2): Value { null_value (field 1): true }
        out.put_slice(&[0x12, 0x02, 0x08, 0x01]);
    }
    out.freeze()
}

async fn raw_execute(channel: Channel, body: Bytes) -> Result<pb::ExecuteResponse, Status> {
    let mut grpc = tonic::client::Grpc::new(channel)
        .max_encoding_message_size(usize::MAX)
        .max_decoding_message_size(usize::MAX);
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?;
    grpc.unary(
        tonic::Request::new(body),
        PathAndQuery::from_static("/remotemedia.v1.Executor/ExecutePipeline"),
        RawCodec,
    )
    .await
    .map(|r| r.into_inner())
}

#[test]
fn requests_that_would_decode_into_gigabytes_are_refused_before_decoding() {
    let server = Server::start(&[
        "--memory-budget-mb",
        "160",
        "--max-request-memory-mb",
        "120",
    ]);
    let url = server.url();
    runtime().block_on(async {
        let channel = connect(&url).await.unwrap();
        // 64 MB of nulls: about 2 GB once decoded.
        let huge = nulls_request(CALC, (64 << 20) / 4 - 64);
        let err = raw_execute(channel.clone(), huge).await.unwrap_err();
        assert_eq!(err.code(), Code::ResourceExhausted, "{err}");
        assert!(
            err.message().contains("once decoded")
                && err.message().contains("--max-request-memory-mb")
                && err.message().contains("120.0 MiB"),
            "{err}"
        );
        let peak = server.peak_rss_mb();
        eprintln!("peak RSS after refusing a 64 MB request of 16M nulls: {peak} MB");
        assert!(peak < 400, "peak RSS {peak} MB");
        still_serving(&url).await;

        // A manifest is parsed into JSON values: 20 MB of small numbers would take
        // over a gigabyte, so it counts for what it expands to.
        let numbers = vec!["1"; 10 << 20].join(",");
        let manifest = format!(
            r#"{{"version":"v1","metadata":{{"name":"big"}},"nodes":[],"connections":[],"x":[{numbers}]}}"#
        );
        let big = execute_request(&manifest, Vec::new()).encode_to_vec();
        let err = raw_execute(channel.clone(), big.into()).await.unwrap_err();
        assert_eq!(err.code(), Code::ResourceExhausted, "{err}");
        assert!(err.message().contains("once decoded"), "{err}");
        let peak = server.peak_rss_mb();
        assert!(peak < 400, "peak RSS {peak} MB");

        // The budget is shared: a request held by a stuck run leaves too little for a
        // second one, which is refused until the first is gone.
        let first_nulls = 400_000;
        let first = tokio::spawn(raw_execute(
            connect(&url).await.unwrap(),
            nulls_request(STUCK, first_nulls),
        ));
        wait_for_load(&url, Duration::from_secs(5), "memory reserved", |l| {
            // Past the wire bytes (4 per null): the decoded estimate is in.
            l.memory_reserved_bytes > first_nulls as u64 * 32
        })
        .await;
        let l = load(&url).await;
        let budget = 160u64 << 20;
        assert_eq!(l.memory_budget_bytes, budget);
        let reserved = l.memory_reserved_bytes;
        assert!(reserved > first_nulls as u64 * 4, "{l:?}");
        // A second request 10% larger than what is left, within the per-request limit.
        let per_null = reserved as f64 / first_nulls as f64;
        let second_nulls = ((budget - reserved) as f64 / per_null * 1.1) as usize;
        assert!(
            (second_nulls as f64 * per_null) < (120 << 20) as f64,
            "the second request fits one request's limit"
        );
        let second = nulls_request(STUCK, second_nulls);
        let err = raw_execute(channel.clone(), second.clone())
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::ResourceExhausted, "{err}");
        assert!(
            err.message().contains("memory budget") && err.message().contains("--memory-budget-mb"),
            "{err}"
        );
        eprintln!(
            "refused while {reserved} bytes were reserved: {}",
            err.message()
        );
        let held = second;
        first.abort();
        wait_for_load(&url, Duration::from_secs(5), "memory given back", |l| {
            l.memory_reserved_bytes == 0 && l.active_streams == 0
        })
        .await;
        // Now it fits: admitted, stuck in its node's back-off, ended by its deadline
        // (long enough for a debug build to decode it first: a deadline that passes
        // while the request is still being decoded is tonic's to report).
        let (status, message) = bare_call(server.addr, EXECUTE_PATH, "3S", &held).await;
        assert_eq!(
            status,
            (Code::DeadlineExceeded as i32).to_string(),
            "{message}"
        );
        still_serving(&url).await;
    });
}

#[test]
fn pipelines_asking_for_too_many_nodes_threads_or_workers_are_refused() {
    // Serves a Python class (never imported here: the refusal comes first).
    let server = Server::start(&["--python-node", "c=m:C"]);
    let url = server.url();
    let threads_before = server.status("Threads");
    runtime().block_on(async {
        let mut c = client(&url).await;
        let chain = |n: usize, extra: &str| {
            let nodes: Vec<String> = (0..n)
                .map(|i| format!(r#"{{"id":"n{i}","node_type":"PassThrough"{extra}}}"#))
                .collect();
            let edges: Vec<String> = (1..n)
                .map(|i| format!(r#"{{"from":"n{}","to":"n{i}"}}"#, i - 1))
                .collect();
            format!(
                r#"{{"version":"v1","metadata":{{"name":"big"}},"nodes":[{}],"connections":[{}]}}"#,
                nodes.join(","),
                edges.join(",")
            )
        };
        let refusal = |m: String| {
            let mut c = c.clone();
            async move {
                c.execute_pipeline(execute_request(&m, vec![int(1)]))
                    .await
                    .unwrap_err()
            }
        };
        let err = refusal(chain(3000, r#","timeout_ms":60000"#)).await;
        assert_eq!(err.code(), Code::ResourceExhausted, "{err}");
        assert!(err.message().contains("3000 nodes") && err.message().contains("--max-nodes"));
        let err = refusal(chain(40, r#","timeout_ms":60000"#)).await;
        assert_eq!(err.code(), Code::ResourceExhausted, "{err}");
        assert!(err.message().contains("--max-timeout-nodes"), "{err}");
        let python: Vec<String> = (0..4)
            .map(|i| {
                format!(
                    r#"{{"id":"p{i}","node_type":"PythonNode","params":{{"module":"m","class":"C","workers":64}}}}"#
                )
            })
            .collect();
        let m = format!(
            r#"{{"version":"v1","metadata":{{"name":"py"}},"nodes":[{}],"connections":[]}}"#,
            python.join(",")
        );
        let err = refusal(m.clone()).await;
        assert_eq!(err.code(), Code::ResourceExhausted, "{err}");
        assert!(
            err.message().contains("256 worker processes") && err.message().contains("--max-workers"),
            "{err}"
        );
        // Streams are held to the same limits at `open`.
        let channel = connect(&url).await.unwrap();
        let (tx, call) = open_stream(channel, tonic::Request::new(())).await;
        tx.send(open_msg(&chain(300, ""))).await.unwrap();
        let err = call.await.unwrap().unwrap_err();
        assert_eq!(err.code(), Code::ResourceExhausted, "{err}");
        assert!(err.message().contains("--max-nodes"), "{err}");
        // Within the limits, a long chain with timeouts runs.
        let out = c
            .execute_pipeline(execute_request(&chain(20, r#","timeout_ms":60000"#), vec![int(5)]))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(out.error, None);
        assert_eq!(out.outputs[0].items, vec![int(5)]);
        still_serving(&url).await;
    });
    let threads_after = server.status("Threads");
    assert!(
        threads_after < threads_before + 64,
        "threads: {threads_before} -> {threads_after}"
    );
}

fn python_available() -> bool {
    Command::new("python3")
        .arg("-c")
        .arg("pass")
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn sigterm_exits_within_the_drain_timeout_while_node_calls_never_return() {
    if !python_available() {
        eprintln!("skipped: no python3");
        return;
    }
    // A call stuck in a worker process, and one in embedded CPython when the binary
    // has it.
    let mut runtimes = vec!["process"];
    if cfg!(feature = "cpython") {
        runtimes.push("cpython");
    }
    let mut server = Server::start(&["--allow-python-source", "--drain-timeout", "1"]);
    let url = server.url();
    let source = "import time\nclass Sleepy:\n    def process(self, x):\n        time.sleep(600)\n        return x\n";
    let rt = runtime();
    let mut calls = Vec::new();
    for runtime_name in &runtimes {
        let manifest = serde_json::json!({
            "version": "v1",
            "metadata": {"name": "sleepy"},
            "nodes": [{"id": "sleep", "node_type": "PythonNode",
                       "params": {"class": "Sleepy", "source": source, "runtime": runtime_name}}],
            "connections": []
        })
        .to_string();
        let mut c = rt.block_on(client(&url));
        calls.push(rt.spawn(async move {
            c.execute_pipeline(execute_request(&manifest, vec![int(1)]))
                .await
        }));
    }
    let n = runtimes.len() as u32;
    rt.block_on(async {
        wait_for_load(&url, Duration::from_secs(10), "the runs started", |l| {
            l.active_streams == n
        })
        .await;
        // Let the calls reach the node's sleep.
        tokio::time::sleep(Duration::from_millis(1500)).await;
    });
    let pid = server.child.id().to_string();
    let workers = String::from_utf8(
        Command::new("pgrep")
            .args(["-P", &pid])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let workers: Vec<&str> = workers.split_whitespace().collect();
    assert_eq!(workers.len(), 1, "one worker process: {workers:?}");
    let sent = Instant::now();
    let ok = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let status = loop {
        if let Some(s) = server.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            sent.elapsed() < Duration::from_secs(8),
            "still running 8 s after SIGTERM with --drain-timeout 1; stderr: {}",
            server.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let took = sent.elapsed();
    eprintln!("exited {took:?} after SIGTERM with node calls stuck in {runtimes:?}");
    assert!(
        took >= Duration::from_millis(900),
        "exited before the drain timeout: {took:?}"
    );
    assert!(status.success(), "{status:?}; stderr: {}", server.stderr());
    let stderr = server.stderr();
    assert!(
        stderr.contains("streams still open at the drain deadline"),
        "{stderr}"
    );
    // The stuck worker does not outlive the executor (gone, or a zombie not yet
    // reaped by its new parent).
    let worker = workers[0];
    let start = Instant::now();
    loop {
        let state = std::fs::read_to_string(format!("/proc/{worker}/stat")).ok();
        let alive = state.as_deref().is_some_and(|s| {
            let rest = &s[s.rfind(')').unwrap() + 2..];
            !rest.starts_with('Z')
        });
        if !alive {
            break;
        }
        if start.elapsed() > Duration::from_secs(3) {
            let _ = Command::new("kill").args(["-KILL", worker]).status();
            panic!("worker {worker} outlived the executor; stderr: {stderr}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(calls);
}

#[test]
fn a_dual_stack_listener_prints_its_port_and_takes_both_loopbacks() {
    let server = Server::start_on("[::]:0", &[]);
    assert_ne!(
        server.addr.port(),
        0,
        "the startup line names the bound port"
    );
    assert!(server.addr.ip().is_unspecified(), "{}", server.addr);
    let port = server.addr.port();
    runtime().block_on(async {
        for url in [
            format!("http://127.0.0.1:{port}"),
            format!("http://[::1]:{port}"),
        ] {
            let mut c = client(&url).await;
            let out = c
                .execute_pipeline(execute_request(CALC, vec![int(41)]))
                .await
                .unwrap_or_else(|e| panic!("{url}: {e}"))
                .into_inner();
            assert_eq!(out.outputs[0].items, vec![int(42)], "{url}");
        }
    });
    // Requested on port 0, the first line of a loopback listener names the real port.
    let v4 = Server::start(&[]);
    assert_ne!(v4.addr.port(), 0);
}

#[test]
fn limits_that_would_refuse_everything_are_refused_at_start() {
    let cases: [(&[&str], &str); 5] = [
        (&["--max-connections", "0"], "--max-connections"),
        (&["--memory-budget-mb", "0"], "--memory-budget-mb"),
        (&["--max-workers", "0"], "--max-workers"),
        (
            &["--idle-timeout", "0"],
            "--idle-timeout must be a positive number of seconds",
        ),
        (
            &["--handshake-timeout=-1"],
            "--handshake-timeout must be a positive number of seconds",
        ),
    ];
    for (args, why) in cases {
        let o = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--capabilities"])
            .arg(caps())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(why), "{args:?}: {stderr}");
        assert!(o.stdout.is_empty(), "{args:?} started listening");
    }
}
