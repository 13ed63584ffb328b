//! Live sessions against a real `remotemedia serve --pipelines`: every protocol
//! message and control, the limits (token, origin, sessions, frame size, idle, input
//! rate), barge-in while a node is busy, clients that vanish, SIGTERM with sessions
//! open, separate state per session, the gRPC transport and `remotemedia connect`.
#![cfg(unix)]

mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use support::{write, Executor, BIN};

const LEVEL: &str = r#"
version: v1
metadata:
  name: level
  overridable: [gain.db]
nodes:
  - { id: level, node_type: AudioLevel, params: { interval_ms: 100 } }
  - { id: gain, node_type: AudioGain, params: { db: -6 } }
"#;

const MONO_VAD: &str = r#"
version: v1
metadata:
  name: mono-vad
nodes:
  - { id: vad, node_type: VoiceActivity, params: { engine: energy } }
"#;

const COUNTER: &str = r#"
version: v1
metadata:
  name: counter
nodes:
  - id: count
    node_type: PythonNode
    params:
      class: Count
      source: |
        class Count:
            def __init__(self):
                self.n = 0
            def process(self, x):
                self.n += 1
                return {"seen": self.n, "x": x}
"#;

const SLOW: &str = r#"
version: v1
metadata:
  name: slow
nodes:
  - id: sleepy
    node_type: PythonNode
    params:
      class: Sleepy
      runtime: process
      source: |
        import time
        class Sleepy:
            def process(self, x):
                if x == "slow":
                    time.sleep(30)
                return x
"#;

const CALC: &str = r#"
version: v1
metadata:
  name: calc
nodes:
  - { id: add, node_type: Calculator, params: { operation: add, operand: 1 } }
"#;

/// A temporary directory with the pipelines and a capabilities file.
struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let pipelines = dir.path().join("pipelines");
        std::fs::create_dir_all(&pipelines).unwrap();
        write(&pipelines, "level.yaml", LEVEL);
        write(&pipelines, "mono-vad.yaml", MONO_VAD);
        write(&pipelines, "counter.yaml", COUNTER);
        write(&pipelines, "slow.yaml", SLOW);
        write(&pipelines, "calc.yaml", CALC);
        write(
            dir.path(),
            "caps.json",
            r#"{"cpu_cores": 4, "arch": "x86_64", "memory_total_gb": 16.0, "gpus": []}"#,
        );
        Setup { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn serve(&self, extra: &[&str]) -> Executor {
        let mut args = vec!["--pipelines", "pipelines"];
        args.extend_from_slice(extra);
        Executor::start(
            self.path(),
            "sessions",
            &self.path().join("caps.json"),
            &args,
        )
    }
}

/// What a test reads from the server.
#[derive(Debug)]
enum Got {
    Text(Value),
    Binary(Vec<u8>),
    Closed(Option<u16>),
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

struct Client {
    ws: Ws,
}

/// Connects to `/v1/sessions/{pipeline}` with extra headers; the HTTP status and body
/// when the upgrade is refused.
async fn connect_with(
    addr: &str,
    pipeline: &str,
    headers: &[(&str, &str)],
) -> Result<Client, (u16, String)> {
    let mut req = format!("ws://{addr}/v1/sessions/{pipeline}")
        .into_client_request()
        .unwrap();
    for (k, v) in headers {
        req.headers_mut().insert(
            tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    match tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::connect_async(req),
    )
    .await
    {
        Ok(Ok((ws, _))) => Ok(Client { ws }),
        Ok(Err(tokio_tungstenite::tungstenite::Error::Http(r))) => Err((
            r.status().as_u16(),
            String::from_utf8_lossy(r.body().as_deref().unwrap_or_default()).to_string(),
        )),
        Ok(Err(e)) => panic!("connect failed: {e}"),
        Err(_) => panic!("connect timed out"),
    }
}

async fn connect(addr: &str, pipeline: &str) -> Client {
    connect_with(addr, pipeline, &[]).await.unwrap()
}

impl Client {
    async fn text(&mut self, v: Value) {
        self.ws
            .send(Message::Text(v.to_string().into()))
            .await
            .unwrap();
    }

    async fn raw_text(&mut self, t: &str) {
        self.ws
            .send(Message::Text(t.to_string().into()))
            .await
            .unwrap();
    }

    async fn binary(&mut self, b: Vec<u8>) {
        self.ws.send(Message::Binary(b.into())).await.unwrap();
    }

    async fn next(&mut self) -> Got {
        loop {
            let m = tokio::time::timeout(Duration::from_secs(20), self.ws.next())
                .await
                .expect("no message from the server within 20 s");
            return match m {
                None => Got::Closed(None),
                Some(Err(_)) => Got::Closed(None),
                Some(Ok(Message::Text(t))) => Got::Text(serde_json::from_str(t.as_str()).unwrap()),
                Some(Ok(Message::Binary(b))) => Got::Binary(b.to_vec()),
                Some(Ok(Message::Close(f))) => Got::Closed(f.map(|f| u16::from(f.code))),
                Some(Ok(_)) => continue,
            };
        }
    }

    async fn json(&mut self) -> Value {
        match self.next().await {
            Got::Text(v) => v,
            other => panic!("expected a text message, got {other:?}"),
        }
    }

    /// Sends `start` and expects `ready`.
    async fn start(&mut self, input: Option<Value>) {
        let mut m = json!({"type": "start"});
        if let Some(i) = input {
            m["input"] = i;
        }
        self.text(m).await;
        let ready = self.json().await;
        assert_eq!(ready["type"], "ready", "{ready}");
        assert!(ready["session"].as_str().is_some_and(|s| !s.is_empty()));
    }

    /// Every message until the close: texts, binaries, and the close code.
    async fn rest(&mut self) -> (Vec<Value>, Vec<Vec<u8>>, Option<u16>) {
        let (mut texts, mut bins) = (Vec::new(), Vec::new());
        loop {
            match self.next().await {
                Got::Text(v) => texts.push(v),
                Got::Binary(b) => bins.push(b),
                Got::Closed(code) => return (texts, bins, code),
            }
        }
    }
}

fn s16_16k() -> Value {
    json!({"format": "s16le", "sample_rate": 16000, "channels": 1})
}

/// `seconds` of a 440 Hz tone at 16 kHz, amplitude 0.5, as s16le.
fn tone_s16(seconds: f64) -> Vec<u8> {
    let n = (16000.0 * seconds) as usize;
    (0..n)
        .flat_map(|i| {
            let x = 0.5 * (2.0 * std::f64::consts::PI * 440.0 * i as f64 / 16000.0).sin();
            ((x * 32767.0).round() as i16).to_le_bytes()
        })
        .collect()
}

fn rt_test(f: impl std::future::Future<Output = ()>) {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f);
}

fn http_get(addr: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // One write: a TLS port refuses the first bytes and closes, and a request written
    // piece by piece would then meet a reset connection half-way.
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let code = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (code, body)
}

fn metric(addr: &str, line_start: &str) -> u64 {
    let (_, body) = http_get(addr, "/metrics");
    body.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no metric {line_start} in {body}"))
}

#[test]
fn audio_round_trip_with_events_audio_ping_and_summary() {
    let setup = Setup::new();
    let server = setup.serve(&[]);
    rt_test(async {
        let mut c = connect(&server.addr, "level").await;
        c.start(Some(s16_16k())).await;
        c.text(json!({"type": "ping"})).await;
        assert_eq!(c.json().await, json!({"type": "pong"}));
        // One second in frames of odd sizes (a frame may split a sample): the server
        // re-frames into 20 ms chunks.
        let pcm = tone_s16(1.0);
        for piece in pcm.chunks(777) {
            c.binary(piece.to_vec()).await;
        }
        c.text(json!({"type": "end"})).await;
        let (texts, bins, code) = c.rest().await;
        assert_eq!(code, Some(1000), "{texts:?}");
        let levels: Vec<&Value> = texts.iter().filter(|t| t["type"] == "output").collect();
        assert_eq!(levels.len(), 10, "{texts:?}");
        for (i, l) in levels.iter().enumerate() {
            assert_eq!(l["sink"], "level");
            assert_eq!(l["item"]["type"], "level");
            assert_eq!(l["pts_us"], json!((i as i64 + 1) * 100_000));
            // A 0.5 sine: RMS -9.03 dBFS.
            let rms = l["item"]["rms_dbfs"][0].as_f64().unwrap();
            assert!((rms + 9.03).abs() < 0.05, "{rms}");
        }
        let headers: Vec<&Value> = texts.iter().filter(|t| t["type"] == "audio").collect();
        assert_eq!(headers.len(), 50, "20 ms chunks of one second");
        assert_eq!(headers.len(), bins.len());
        let mut pts = 0;
        for (h, b) in headers.iter().zip(&bins) {
            assert_eq!(h["sink"], "gain");
            assert_eq!(h["format"], "s16le");
            assert_eq!(h["sample_rate"], 16000);
            assert_eq!(h["channels"], 1);
            assert_eq!(h["bytes"].as_u64().unwrap() as usize, b.len());
            assert_eq!(h["pts_us"], json!(pts));
            pts += 20_000;
        }
        // The audio back, 6 dB down: every sample about half the input's.
        let back: Vec<i16> = bins
            .concat()
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect();
        let sent: Vec<i16> = pcm
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect();
        assert_eq!(back.len(), sent.len());
        let gain = 10f64.powf(-6.0 / 20.0);
        for (b, s) in back.iter().zip(&sent) {
            assert!(
                (f64::from(*b) - f64::from(*s) * gain).abs() <= 1.5,
                "{b} vs {s}"
            );
        }
        let summary = texts.last().unwrap();
        assert_eq!(summary["type"], "summary", "{summary}");
        assert_eq!(summary["metrics"]["outputs"], 60);
        assert!(summary["metrics"]["latency_us"]["count"].as_u64().unwrap() > 0);
    });
    let active = metric(&server.addr, "remotemedia_active_sessions ");
    assert_eq!(active, 0);
    assert!(
        metric(
            &server.addr,
            "remotemedia_session_frames_out_total{pipeline=\"level\"}"
        ) >= 60
    );
}

#[test]
fn json_items_in_and_out() {
    let setup = Setup::new();
    let server = setup.serve(&[]);
    rt_test(async {
        let mut c = connect(&server.addr, "calc").await;
        c.start(None).await;
        for x in [1, 2, 3] {
            c.text(json!({"type": "item", "item": x})).await;
        }
        c.text(json!({"type": "end"})).await;
        let (texts, _, code) = c.rest().await;
        let outs: Vec<Value> = texts
            .iter()
            .filter(|t| t["type"] == "output")
            .map(|t| t["item"].clone())
            .collect();
        assert_eq!(outs, vec![json!(2), json!(3), json!(4)]);
        assert_eq!(code, Some(1000));
        // Audio without an input format is refused, and the session lives on.
        let mut c = connect(&server.addr, "calc").await;
        c.start(None).await;
        c.binary(vec![0, 0]).await;
        let e = c.json().await;
        assert_eq!(e["kind"], "bad_input", "{e}");
        assert!(
            e["message"]
                .as_str()
                .unwrap()
                .contains("gave no `input` format"),
            "{e}"
        );
        c.text(json!({"type": "item", "item": {"$tensor": "nope"}}))
            .await;
        let e = c.json().await;
        assert_eq!(e["kind"], "bad_input", "{e}");
        c.text(json!({"type": "item", "item": 41})).await;
        let out = c.json().await;
        assert_eq!(out["item"], json!(42), "{out}");
    });
}

#[test]
fn bad_client_messages_get_errors_and_the_session_lives_on_where_safe() {
    let setup = Setup::new();
    let server = setup.serve(&[]);
    rt_test(async {
        let mut c = connect(&server.addr, "calc").await;
        c.start(None).await;
        c.raw_text("{not json").await;
        let e = c.json().await;
        assert_eq!(e["type"], "error");
        assert_eq!(e["kind"], "bad_message");
        assert!(e["message"].as_str().unwrap().contains("not JSON"), "{e}");
        c.raw_text(r#"{"type":"shout"}"#).await;
        let e = c.json().await;
        assert!(
            e["message"]
                .as_str()
                .unwrap()
                .contains("unknown message type `shout`"),
            "{e}"
        );
        c.raw_text(r#"{"type":"start"}"#).await;
        let e = c.json().await;
        assert_eq!(e["kind"], "protocol", "{e}");
        c.text(json!({"type": "ping"})).await;
        assert_eq!(c.json().await["type"], "pong");

        // Anything but `start` first closes the session.
        let mut c = connect(&server.addr, "calc").await;
        c.text(json!({"type": "item", "item": 1})).await;
        let e = c.json().await;
        assert_eq!(e["kind"], "protocol");
        assert_eq!(e["message"], "the first message must be `start`");
        assert!(matches!(c.next().await, Got::Closed(_)));

        // A wrong audio format in `start`.
        let mut c = connect(&server.addr, "level").await;
        c.text(json!({"type": "start", "input": {"format": "s24le", "sample_rate": 16000, "channels": 1}})).await;
        let e = c.json().await;
        assert_eq!(e["kind"], "bad_message", "{e}");
        assert!(e["message"].as_str().unwrap().contains("s24le"), "{e}");
        let mut c = connect(&server.addr, "level").await;
        c.text(json!({"type": "start", "input": {"format": "s16le", "sample_rate": 16000, "channels": 9}})).await;
        let e = c.json().await;
        assert_eq!(e["kind"], "bad_start", "{e}");
        assert_eq!(
            e["message"],
            "`input.channels` must be from 1 to 8, found 9"
        );
        assert!(matches!(c.next().await, Got::Closed(_)));
    });
}

#[test]
fn a_node_error_names_the_node_and_closes_the_session() {
    let setup = Setup::new();
    let server = setup.serve(&[]);
    rt_test(async {
        let mut c = connect(&server.addr, "mono-vad").await;
        c.start(Some(
            json!({"format": "s16le", "sample_rate": 16000, "channels": 2}),
        ))
        .await;
        c.binary(tone_s16(0.1)).await;
        let (texts, _, code) = c.rest().await;
        let e = texts
            .iter()
            .find(|t| t["type"] == "error")
            .unwrap_or_else(|| panic!("{texts:?}"));
        assert_eq!(e["node_id"], "vad", "{e}");
        assert_eq!(e["kind"], "invalid_input", "{e}");
        assert!(
            e["message"].as_str().unwrap().contains("AudioChannels"),
            "{e}"
        );
        assert_eq!(code, Some(1008));
    });
}

#[test]
fn unknown_pipeline_and_params_not_declared_overridable() {
    let setup = Setup::new();
    let server = setup.serve(&[]);
    rt_test(async {
        let mut c = connect(&server.addr, "nope").await;
        let e = c.json().await;
        assert_eq!(e["kind"], "unknown_pipeline");
        assert!(
            e["message"]
                .as_str()
                .unwrap()
                .starts_with("no pipeline `nope`; this server has `calc`, `counter`, `level`"),
            "{e}"
        );
        assert!(matches!(c.next().await, Got::Closed(Some(1013))));

        let mut c = connect(&server.addr, "level").await;
        c.text(json!({"type": "start", "input": s16_16k(), "params": {"level.interval_ms": 5}}))
            .await;
        let e = c.json().await;
        assert_eq!(e["kind"], "bad_start");
        assert_eq!(
            e["message"],
            "param `level.interval_ms` cannot be set: pipeline `level` allows `gain.db`"
        );
        // A declared one with a bad value gets the manifest's own message.
        let mut c = connect(&server.addr, "level").await;
        c.text(json!({"type": "start", "input": s16_16k(), "params": {"gain.db": "loud"}}))
            .await;
        let e = c.json().await;
        assert_eq!(e["kind"], "bad_start");
        assert!(
            e["message"]
                .as_str()
                .unwrap()
                .contains("nodes[1].params.db"),
            "{e}"
        );
        // And a good one takes effect: 0 dB gives the input back.
        let mut c = connect(&server.addr, "level").await;
        c.text(json!({"type": "start", "input": s16_16k(), "params": {"gain.db": 0}}))
            .await;
        assert_eq!(c.json().await["type"], "ready");
        let pcm = tone_s16(0.02);
        c.binary(pcm.clone()).await;
        c.text(json!({"type": "end"})).await;
        let (_, bins, _) = c.rest().await;
        assert_eq!(bins.concat(), pcm);
    });
}

#[test]
fn token_and_origin() {
    let setup = Setup::new();
    let token = write(setup.path(), "token", "s3cret\n");
    let server = setup.serve(&[
        "--token-file",
        token.to_str().unwrap(),
        "--allowed-origin",
        "https://app.example.com",
    ]);
    rt_test(async {
        let (code, body) = connect_with(&server.addr, "calc", &[]).await.err().unwrap();
        assert_eq!(code, 401);
        assert!(body.contains("missing or wrong bearer token"), "{body}");
        let (code, _) = connect_with(&server.addr, "calc", &[("authorization", "Bearer wrong")])
            .await
            .err()
            .unwrap();
        assert_eq!(code, 401);
        let mut c = connect_with(&server.addr, "calc", &[("authorization", "Bearer s3cret")])
            .await
            .unwrap();
        c.start(None).await;
        // Browsers pass the token as a subprotocol; the server answers `remotemedia`.
        let mut req = format!("ws://{}/v1/sessions/calc", server.addr)
            .into_client_request()
            .unwrap();
        req.headers_mut().insert(
            "sec-websocket-protocol",
            "remotemedia, bearer.s3cret".parse().unwrap(),
        );
        let (ws, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
        assert_eq!(resp.headers()["sec-websocket-protocol"], "remotemedia");
        drop(ws);
        // A page of another origin is refused; a listed origin and the server's own page are not.
        let (code, body) = connect_with(
            &server.addr,
            "calc",
            &[
                ("authorization", "Bearer s3cret"),
                ("origin", "https://evil.example"),
            ],
        )
        .await
        .err()
        .unwrap();
        assert_eq!(code, 403);
        assert!(
            body.contains("origin `https://evil.example` may not open sessions"),
            "{body}"
        );
        connect_with(
            &server.addr,
            "calc",
            &[
                ("authorization", "Bearer s3cret"),
                ("origin", "https://app.example.com"),
            ],
        )
        .await
        .unwrap();
        let own = format!("http://{}", server.addr);
        connect_with(
            &server.addr,
            "calc",
            &[("authorization", "Bearer s3cret"), ("origin", own.as_str())],
        )
        .await
        .unwrap();
    });
    // The pipeline list needs the token too; health does not.
    assert_eq!(http_get(&server.addr, "/v1/pipelines").0, 401);
    assert_eq!(
        http_get(&server.addr, "/healthz"),
        (200, "ok\n".to_string())
    );
    assert!(metric(&server.addr, "remotemedia_session_auth_rejected_total ") >= 3);
}

#[test]
fn too_many_sessions_oversized_frames_and_idle_sessions() {
    let setup = Setup::new();
    let server = setup.serve(&[
        "--max-sessions",
        "1",
        "--max-frame-bytes",
        "4096",
        "--session-idle-timeout",
        "1",
    ]);
    rt_test(async {
        let mut first = connect(&server.addr, "level").await;
        first.start(Some(s16_16k())).await;
        let mut second = connect(&server.addr, "level").await;
        let e = second.json().await;
        assert_eq!(e["kind"], "too_many_sessions", "{e}");
        assert!(
            e["message"].as_str().unwrap().contains("--max-sessions"),
            "{e}"
        );
        assert!(matches!(second.next().await, Got::Closed(Some(1013))));
        // A frame over the limit closes the session, saying why.
        first.binary(vec![0u8; 8192]).await;
        let e = first.json().await;
        assert_eq!(e["kind"], "frame_too_large", "{e}");
        assert!(e["message"].as_str().unwrap().contains("4096 bytes"), "{e}");
        assert!(matches!(first.next().await, Got::Closed(_)));
        // The slot is free again; a session that then says nothing is closed.
        let mut third = connect(&server.addr, "level").await;
        third.start(Some(s16_16k())).await;
        let e = third.json().await;
        assert_eq!(e["kind"], "idle_timeout", "{e}");
        assert!(matches!(third.next().await, Got::Closed(_)));
    });
    assert!(metric(&server.addr, "remotemedia_sessions_refused_total ") >= 1);
}

#[test]
fn input_faster_than_allowed_is_held_back() {
    let setup = Setup::new();
    let server = setup.serve(&["--max-realtime-factor", "2"]);
    rt_test(async {
        let mut c = connect(&server.addr, "level").await;
        c.start(Some(s16_16k())).await;
        // Four seconds at once: at most 2x real time after a second of burst, so
        // reading is held back and the session takes its time.
        for piece in tone_s16(4.0).chunks(3200) {
            c.binary(piece.to_vec()).await;
        }
        c.text(json!({"type": "end"})).await;
        let (texts, _, code) = c.rest().await;
        assert_eq!(code, Some(1000), "{:?}", texts.last());
    });
    assert!(
        metric(
            &server.addr,
            "remotemedia_session_throttled_total{pipeline=\"level\"}"
        ) > 0
    );
}

#[test]
fn sessions_keep_separate_state() {
    let setup = Setup::new();
    let server = setup.serve(&[]);
    rt_test(async {
        let mut a = connect(&server.addr, "counter").await;
        let mut b = connect(&server.addr, "counter").await;
        a.start(None).await;
        b.start(None).await;
        for i in 0..3 {
            a.text(json!({"type": "item", "item": format!("a{i}")}))
                .await;
            b.text(json!({"type": "item", "item": format!("b{i}")}))
                .await;
            let oa = a.json().await;
            let ob = b.json().await;
            assert_eq!(oa["item"], json!({"seen": i + 1, "x": format!("a{i}")}));
            assert_eq!(ob["item"], json!({"seen": i + 1, "x": format!("b{i}")}));
        }
        // Barge-in resets the nodes: counting starts again.
        a.text(json!({"type": "flush"})).await;
        assert_eq!(a.json().await["type"], "flushed");
        a.text(json!({"type": "item", "item": "again"})).await;
        assert_eq!(a.json().await["item"], json!({"seen": 1, "x": "again"}));
    });
}

#[test]
fn flush_and_disconnect_while_a_node_is_busy_do_not_wait_for_it() {
    let setup = Setup::new();
    let server = setup.serve(&[]);
    rt_test(async {
        let mut c = connect(&server.addr, "slow").await;
        c.start(None).await;
        c.text(json!({"type": "item", "item": "slow"})).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let t = Instant::now();
        c.text(json!({"type": "flush"})).await;
        assert_eq!(c.json().await["type"], "flushed");
        // The node sleeps 30 s; the flush took nowhere near that.
        assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
        c.text(json!({"type": "item", "item": "fast"})).await;
        let out = c.json().await;
        assert_eq!(out["item"], "fast", "{out}");
        // A client that vanishes with the node busy frees its slot.
        c.text(json!({"type": "item", "item": "slow"})).await;
        drop(c);
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(&server.addr, "remotemedia_active_sessions ") > 0 {
        assert!(
            Instant::now() < deadline,
            "the vanished session still counts"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        metric(
            &server.addr,
            "remotemedia_sessions_disconnected_total{pipeline=\"slow\"}"
        ) >= 1
    );
}

#[test]
fn sigterm_with_sessions_open_drains_then_closes_them() {
    let setup = Setup::new();
    let mut server = setup.serve(&["--drain-timeout", "2"]);
    rt_test(async {
        let mut c = connect(&server.addr, "slow").await;
        c.start(None).await;
        c.text(json!({"type": "item", "item": "slow"})).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        server.signal("TERM");
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(http_get(&server.addr, "/readyz").0, 503);
        let (code, _) = http_get(&server.addr, "/healthz");
        assert_eq!(code, 200);
        // New sessions are refused while draining.
        let mut late = connect(&server.addr, "calc").await;
        assert_eq!(late.json().await["kind"], "shutting_down");
        // The open one is closed at the drain deadline, saying why.
        let t = Instant::now();
        let e = c.json().await;
        assert_eq!(e["kind"], "shutting_down", "{e}");
        assert!(t.elapsed() < Duration::from_secs(10));
    });
    let t = Instant::now();
    let status = loop {
        if let Some(s) = server.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "serve did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0));
    server.kill();
}

#[test]
fn a_bad_pipelines_directory_fails_the_start_naming_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("pipelines");
    std::fs::create_dir_all(&p).unwrap();
    write(&p, "good.yaml", CALC);
    write(&p, "bad.yaml", "version: v1\nmetadata: {name: b, overridable: [add.operand, nope.x]}\nnodes:\n  - {id: add, node_type: Calculater}\n");
    write(&p, "two words.yaml", CALC);
    let caps = write(
        dir.path(),
        "caps.json",
        r#"{"cpu_cores": 1, "arch": "x86_64", "memory_total_gb": 1.0, "gpus": []}"#,
    );
    let out = Command::new(BIN)
        .current_dir(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0", "--capabilities"])
        .arg(&caps)
        .args(["--pipelines", "pipelines"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("problems:"), "{err}");
    assert!(
        err.contains("bad.yaml: nodes[0].node_type: node `add`: unknown node type `Calculater`"),
        "{err}"
    );
    assert!(
        err.contains("bad.yaml: metadata.overridable[1]: no node has id `nope`"),
        "{err}"
    );
    assert!(
        err.contains("two words.yaml: the pipeline name `two words`"),
        "{err}"
    );
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let out = Command::new(BIN)
        .current_dir(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0", "--capabilities"])
        .arg(&caps)
        .args(["--pipelines", "empty"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no pipeline manifests"));
}

#[test]
fn pipelines_list_and_web_page() {
    let setup = Setup::new();
    let server = setup.serve(&[]);
    let (code, body) = http_get(&server.addr, "/v1/pipelines");
    assert_eq!(code, 200);
    let v: Value = serde_json::from_str(&body).unwrap();
    let names: Vec<&str> = v["pipelines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["calc", "counter", "level", "mono-vad", "slow"]);
    let level = &v["pipelines"][2];
    assert_eq!(level["overridable"], json!(["gain.db"]));
    assert_eq!(level["inputs"][0]["node"], "level");
    assert_eq!(level["outputs"][1]["node_type"], "AudioGain");
    let (code, page) = http_get(&server.addr, "/");
    assert_eq!(code, 200);
    assert!(page.contains("remotemedia live session") && page.contains("app.js"));
    assert_eq!(http_get(&server.addr, "/worklet.js").0, 200);
    assert_eq!(
        http_get(&server.addr, "/readyz"),
        (200, "ready\n".to_string())
    );
}

#[test]
fn grpc_sessions_speak_the_same_messages() {
    use remotemedia_sessions::pb::session_frame::Frame;
    use remotemedia_sessions::pb::sessions_client::SessionsClient;
    use remotemedia_sessions::pb::SessionFrame;
    let setup = Setup::new();
    let server = setup.serve(&[]);
    rt_test(async {
        let mut client = SessionsClient::connect(format!("http://{}", server.addr))
            .await
            .unwrap();
        let frames = vec![
            SessionFrame {
                frame: Some(Frame::Text(json!({"type": "start"}).to_string())),
            },
            SessionFrame {
                frame: Some(Frame::Text(json!({"type": "item", "item": 9}).to_string())),
            },
            SessionFrame {
                frame: Some(Frame::Text(json!({"type": "end"}).to_string())),
            },
        ];
        let mut req = tonic::Request::new(tokio_stream::iter(frames));
        req.metadata_mut()
            .insert("remotemedia-pipeline", "calc".parse().unwrap());
        let mut stream = client.stream(req).await.unwrap().into_inner();
        let mut texts = Vec::new();
        while let Some(f) = tokio::time::timeout(Duration::from_secs(20), stream.next())
            .await
            .unwrap()
        {
            if let Some(Frame::Text(t)) = f.unwrap().frame {
                texts.push(serde_json::from_str::<Value>(&t).unwrap());
            }
        }
        assert_eq!(texts[0]["type"], "ready");
        assert_eq!(texts[1]["item"], json!(10));
        assert_eq!(texts.last().unwrap()["type"], "summary");
        // An unknown pipeline is NOT_FOUND.
        let mut req = tonic::Request::new(tokio_stream::iter(Vec::<SessionFrame>::new()));
        req.metadata_mut()
            .insert("remotemedia-pipeline", "nope".parse().unwrap());
        let e = client.stream(req).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::NotFound);
    });
}

#[test]
fn connect_streams_a_file_and_prints_outputs_with_latency() {
    let setup = Setup::new();
    let server = setup.serve(&[]);
    let wav = setup.path().join("tone.wav");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&wav, spec).unwrap();
    for b in tone_s16(0.5).chunks_exact(2) {
        w.write_sample(i16::from_le_bytes([b[0], b[1]])).unwrap();
    }
    w.finalize().unwrap();
    let back = setup.path().join("back.wav");
    let out = Command::new(BIN)
        .args(["connect", &server.addr, "--pipeline", "level", "--input"])
        .arg(&wav)
        .arg("--output")
        .arg(&back)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["type"], "ready");
    let levels: Vec<&Value> = lines.iter().filter(|l| l["type"] == "output").collect();
    assert_eq!(levels.len(), 5);
    assert!(
        levels.iter().all(|l| l["latency_ms"].as_f64().is_some()),
        "{levels:?}"
    );
    assert_eq!(lines.last().unwrap()["type"], "summary");
    assert_eq!(support::wav_spec(&back), (16000, 1, 8000));
    // The load generator: N sessions, one report.
    let out = Command::new(BIN)
        .args([
            "connect",
            &server.addr,
            "--pipeline",
            "level",
            "--sessions",
            "4",
            "--input",
        ])
        .arg(&wav)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["completed"], 4, "{report}");
    assert_eq!(report["frames_sent"], 100, "{report}");
    assert!(report["latency_ms"]["p99"].as_f64().is_some(), "{report}");
    // An unknown pipeline: exit 2 with the server's reason.
    let out = Command::new(BIN)
        .args(["connect", &server.addr, "--pipeline", "nope", "--input"])
        .arg(&wav)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no pipeline `nope`"));
}

#[test]
fn many_short_sessions_leave_no_threads_or_memory_behind() {
    let setup = Setup::new();
    let server = setup.serve(&[]);
    let pid = server.child.id();
    let status = |key: &str| -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        s.lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap()
    };
    let n: usize = std::env::var("REMOTEMEDIA_SOAK_SESSIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let pcm = tone_s16(0.1);
    let round = |count: usize| {
        rt_test(async {
            for _ in 0..count {
                let mut c = connect(&server.addr, "level").await;
                c.start(Some(s16_16k())).await;
                c.binary(pcm.clone()).await;
                c.text(json!({"type": "end"})).await;
                let (_, _, code) = c.rest().await;
                assert_eq!(code, Some(1000));
            }
        })
    };
    round(n / 3);
    std::thread::sleep(Duration::from_millis(300));
    let (threads, rss) = (status("Threads:"), status("VmRSS:"));
    round(n);
    std::thread::sleep(Duration::from_millis(300));
    let (threads_after, rss_after) = (status("Threads:"), status("VmRSS:"));
    assert!(
        threads_after <= threads + 4,
        "threads {threads} -> {threads_after}"
    );
    assert!(
        rss_after <= rss + 16 * 1024,
        "RSS {rss} kB -> {rss_after} kB"
    );
}

#[test]
fn tls_serves_sessions_to_clients_that_trust_its_certificate() {
    let setup = Setup::new();
    let rcgen::CertifiedKey { cert, signing_key } =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .unwrap();
    let cert_pem = write(setup.path(), "cert.pem", &cert.pem());
    let key_pem = write(setup.path(), "key.pem", &signing_key.serialize_pem());
    let items = write(setup.path(), "items.jsonl", "1\n2\n");
    let server = setup.serve(&[
        "--tls-cert",
        cert_pem.to_str().unwrap(),
        "--tls-key",
        key_pem.to_str().unwrap(),
    ]);
    let url = format!("wss://{}", server.addr);
    let out = Command::new(BIN)
        .args(["connect", &url, "--pipeline", "calc", "--ca"])
        .arg(&cert_pem)
        .arg("--input")
        .arg(&items)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let outs: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["type"] == "output")
        .map(|v| v["item"].clone())
        .collect();
    assert_eq!(outs, vec![json!(2), json!(3)]);
    // Without trusting the certificate the client refuses the server.
    let out = Command::new(BIN)
        .args(["connect", &url, "--pipeline", "calc", "--input"])
        .arg(&items)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .to_lowercase()
            .contains("certificate"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Plain text on the TLS port gets nowhere.
    assert_eq!(http_get(&server.addr, "/healthz").0, 0);
    // A key that is not a key fails the start, naming the file.
    let bad = write(setup.path(), "bad.pem", "not a key\n");
    let out = Command::new(BIN)
        .current_dir(setup.path())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--capabilities",
            "caps.json",
            "--tls-cert",
        ])
        .arg(&cert_pem)
        .arg("--tls-key")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--tls-key") && err.contains("bad.pem"),
        "{err}"
    );
}

#[test]
fn every_server_answers_health_readiness_and_metrics_on_its_address() {
    let setup = Setup::new();
    // An executor without sessions.
    let server = Executor::start(setup.path(), "plain", &setup.path().join("caps.json"), &[]);
    assert_eq!(
        http_get(&server.addr, "/healthz"),
        (200, "ok\n".to_string())
    );
    assert_eq!(
        http_get(&server.addr, "/readyz"),
        (200, "ready\n".to_string())
    );
    assert_eq!(metric(&server.addr, "remotemedia_active_streams "), 0);
    assert_eq!(http_get(&server.addr, "/v1/pipelines").0, 404);
    // With sessions, their gauge is there too.
    let with = setup.serve(&[]);
    assert_eq!(metric(&with.addr, "remotemedia_active_sessions "), 0);
    assert_eq!(metric(&with.addr, "remotemedia_active_streams "), 0);
}

#[test]
fn a_client_sending_faster_than_the_pipeline_is_held_back_not_buffered() {
    let setup = Setup::new();
    let server = setup.serve(&[]);
    let pid = server.child.id();
    let rss = || -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        s.lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap()
    };
    let before = rss();
    rt_test(async {
        let c = connect(&server.addr, "slow").await;
        let Client { ws } = c;
        let (mut tx, _rx) = ws.split();
        // The node is stuck on the first item; 400 items of 512 KiB follow (200 MiB).
        tx.send(Message::Text(json!({"type": "start"}).to_string().into()))
            .await
            .unwrap();
        tx.send(Message::Text(
            json!({"type": "item", "item": "slow"}).to_string().into(),
        ))
        .await
        .unwrap();
        let big = json!({"type": "item", "item": "x".repeat(512 * 1024)}).to_string();
        let sent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = std::sync::Arc::clone(&sent);
        let sender = tokio::spawn(async move {
            for _ in 0..400 {
                if tx.send(Message::Text(big.clone().into())).await.is_err() {
                    break;
                }
                counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        });
        tokio::time::sleep(Duration::from_secs(3)).await;
        let n = sent.load(std::sync::atomic::Ordering::Relaxed);
        assert!(
            n < 400,
            "every frame was taken while the pipeline was stuck"
        );
        sender.abort();
    });
    let grown_kb = rss().saturating_sub(before);
    assert!(
        grown_kb < 64 * 1024,
        "the server grew by {grown_kb} kB holding a stuck session's input"
    );
}

#[test]
fn grpc_sessions_are_attacked_like_websocket_ones() {
    use remotemedia_sessions::pb::session_frame::Frame;
    use remotemedia_sessions::pb::sessions_client::SessionsClient;
    use remotemedia_sessions::pb::SessionFrame;
    let setup = Setup::new();
    let token = write(setup.path(), "token", "s3cret\n");
    let server = setup.serve(&[
        "--token-file",
        token.to_str().unwrap(),
        "--max-frame-bytes",
        "4096",
    ]);
    let text = |v: Value| SessionFrame {
        frame: Some(Frame::Text(v.to_string())),
    };
    rt_test(async {
        let mut client = SessionsClient::connect(format!("http://{}", server.addr))
            .await
            .unwrap();
        let request = |frames: Vec<SessionFrame>, token: Option<&str>, pipeline: Option<&str>| {
            let mut req = tonic::Request::new(tokio_stream::iter(frames));
            if let Some(t) = token {
                req.metadata_mut()
                    .insert("authorization", format!("Bearer {t}").parse().unwrap());
            }
            if let Some(p) = pipeline {
                req.metadata_mut()
                    .insert("remotemedia-pipeline", p.parse().unwrap());
            }
            req
        };
        let e = client
            .stream(request(vec![], None, Some("calc")))
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e}");
        let e = client
            .stream(request(vec![], Some("wrong"), Some("calc")))
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e}");
        let e = client
            .stream(request(vec![], Some("s3cret"), None))
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e}");
        assert!(e.message().contains("remotemedia-pipeline"), "{e}");
        // A frame over the limit closes the session, saying why.
        let frames = vec![
            text(json!({"type": "start"})),
            text(json!({"type": "item", "item": "x".repeat(8192)})),
        ];
        let mut stream = client
            .stream(request(frames, Some("s3cret"), Some("calc")))
            .await
            .unwrap()
            .into_inner();
        let mut texts = Vec::new();
        while let Some(f) = tokio::time::timeout(Duration::from_secs(20), stream.next())
            .await
            .unwrap()
        {
            match f {
                Ok(SessionFrame {
                    frame: Some(Frame::Text(t)),
                }) => texts.push(serde_json::from_str::<Value>(&t).unwrap()),
                Ok(_) => {}
                Err(_) => break,
            }
        }
        assert_eq!(texts[0]["type"], "ready", "{texts:?}");
        let e = texts
            .iter()
            .find(|t| t["type"] == "error")
            .unwrap_or_else(|| panic!("{texts:?}"));
        assert_eq!(e["kind"], "frame_too_large", "{e}");
    });
}
