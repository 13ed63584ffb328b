//! `remotemedia connect`: the CLI as a live-session client. Streams `--input` (audio
//! as f32le binary frames, JSON Lines as `item` messages) to a named pipeline over
//! WebSocket and prints every server message as a JSON line as it arrives, outputs
//! with `latency_ms` (input frame sent → output received). `--sessions N` is the load
//! generator: N sessions at once, one JSON report.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use remotemedia_audio::pcm::{PcmFormat, PcmSpec};
use remotemedia_audio::wav::{WavFormat, WavWriter};
use remotemedia_core::{AudioBuffer, Data};
use serde_json::{json, Map, Value};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use super::run::input::{self, Input};
use crate::cli::ConnectArgs;
use crate::{EXIT_INVALID, EXIT_RUN_FAILED};

/// Longest JSON Lines input line (as `run`'s default).
const MAX_LINE: usize = crate::cli::DEFAULT_MAX_LINE_BYTES as usize;

/// Frames sent this late after their due time count as late in the load report.
const LATE: Duration = Duration::from_millis(50);

pub fn run(args: ConnectArgs) -> anyhow::Result<u8> {
    let url = match session_url(&args.url, args.pipeline.as_deref()) {
        Ok(u) => u,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(EXIT_INVALID);
        }
    };
    let token = match args
        .token_file
        .as_deref()
        .map(remotemedia_remote::config::read_token)
    {
        None => None,
        Some(Ok(t)) => Some(t),
        Some(Err(e)) => {
            eprintln!("error: {e}");
            return Ok(EXIT_INVALID);
        }
    };
    let params = match args.params.as_deref().map(serde_json::from_str::<Value>) {
        None => None,
        Some(Ok(Value::Object(m))) => Some(m),
        Some(_) => {
            eprintln!("error: --params must be a JSON object, e.g. '{{\"vad.threshold\": 0.6}}'");
            return Ok(EXIT_INVALID);
        }
    };
    let pcm = match args.input_format.as_deref().map(str::parse::<PcmSpec>) {
        None => None,
        Some(Ok(s)) => Some(s),
        Some(Err(e)) => {
            eprintln!("error: --input-format: {e}");
            return Ok(EXIT_INVALID);
        }
    };
    if !(args.chunk_ms > 0.0 && args.chunk_ms <= 10_000.0) {
        eprintln!(
            "error: --chunk-ms must be more than 0 and at most 10000, not {}",
            args.chunk_ms
        );
        return Ok(EXIT_INVALID);
    }
    if let Some(n) = args.sessions.filter(|n| !(1..=100_000).contains(n)) {
        eprintln!("error: --sessions must be from 1 to 100000, not {n}");
        return Ok(EXIT_INVALID);
    }
    let ramp = match Duration::try_from_secs_f64(args.ramp) {
        Ok(d) if d <= Duration::from_secs(3600) => d,
        _ => {
            eprintln!(
                "error: --ramp must be from 0 to 3600 seconds, not {}",
                args.ramp
            );
            return Ok(EXIT_INVALID);
        }
    };
    let opened = match input::open(&args.input, pcm, args.chunk_ms) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(EXIT_INVALID);
        }
    };
    let pipecat = match args.protocol.as_str() {
        "remotemedia" => false,
        "pipecat" => true,
        other => {
            eprintln!("error: --protocol must be `remotemedia` or `pipecat`, not `{other}`");
            return Ok(EXIT_INVALID);
        }
    };
    let tls = match args.ca.as_deref().map(client_tls) {
        None => None,
        Some(Ok(c)) => Some(c),
        Some(Err(e)) => {
            eprintln!("error: --ca {e}");
            return Ok(EXIT_INVALID);
        }
    };
    let target = Target {
        url,
        token,
        params,
        pipecat,
        tls,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let code = match args.sessions {
        None => rt.block_on(single(target, opened, args.realtime, args.output)),
        Some(n) => rt.block_on(load(target, opened, n, args.realtime, ramp)),
    };
    rt.shutdown_timeout(Duration::from_secs(1));
    Ok(code)
}

/// Where and how to connect.
#[derive(Clone)]
struct Target {
    url: String,
    token: Option<String>,
    params: Option<Map<String, Value>>,
    /// Speak Pipecat's protobuf framing instead of the remotemedia protocol.
    pipecat: bool,
    /// For `wss://` with `--ca`: the roots to trust (otherwise the public ones).
    tls: Option<Arc<rustls::ClientConfig>>,
}

/// A TLS client trusting the certificates of the PEM file `ca`.
fn client_tls(ca: &std::path::Path) -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    let certs = rustls_pki_types::CertificateDer::pem_file_iter(ca)
        .map_err(|e| format!("{}: {e}", ca.display()))?;
    for cert in certs {
        let cert = cert.map_err(|e| format!("{}: {e}", ca.display()))?;
        roots
            .add(cert)
            .map_err(|e| format!("{}: {e}", ca.display()))?;
    }
    if roots.is_empty() {
        return Err(format!("{}: no PEM certificate in it", ca.display()));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Pipecat's WebSocket frames (`pipecat/frames/frames.proto`, the fields used here):
/// audio goes in as `Frame.audio`, events come back as `Frame.message` with JSON data.
mod pipecat {
    /// `pipecat.AudioRawFrame`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct AudioRawFrame {
        #[prost(uint64, tag = "1")]
        pub id: u64,
        #[prost(string, tag = "2")]
        pub name: String,
        #[prost(bytes = "vec", tag = "3")]
        pub audio: Vec<u8>,
        #[prost(uint32, tag = "4")]
        pub sample_rate: u32,
        #[prost(uint32, tag = "5")]
        pub num_channels: u32,
    }

    /// `pipecat.MessageFrame`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct MessageFrame {
        #[prost(string, tag = "1")]
        pub data: String,
    }

    /// `pipecat.Frame` (its text, transcription and interruption cases are skipped).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Frame {
        #[prost(message, optional, tag = "2")]
        pub audio: Option<AudioRawFrame>,
        #[prost(message, optional, tag = "4")]
        pub message: Option<MessageFrame>,
    }
}

/// How long a Pipecat session stays open after its last audio frame (Pipecat has no
/// `end`): long enough for the last events (a speech end waits for its silence).
const PIPECAT_LINGER: Duration = Duration::from_millis(1500);

/// `ws://HOST:PORT/v1/sessions/NAME` from what the user gave.
fn session_url(given: &str, pipeline: Option<&str>) -> Result<String, String> {
    let base = if given.contains("://") {
        given
            .replacen("http://", "ws://", 1)
            .replacen("https://", "wss://", 1)
    } else {
        format!("ws://{given}")
    };
    if !(base.starts_with("ws://") || base.starts_with("wss://")) {
        return Err(format!("`{given}` is not a ws:// URL or HOST:PORT"));
    }
    if base.contains("/v1/sessions/") {
        return Ok(base);
    }
    let Some(name) = pipeline else {
        return Err(
            "name the pipeline: --pipeline NAME (the server's /v1/pipelines lists them)".into(),
        );
    };
    Ok(format!("{}/v1/sessions/{name}", base.trim_end_matches('/')))
}

/// An input item as it goes out: audio as f32le bytes, anything else as an `item`.
enum Outgoing {
    Audio(Arc<AudioBuffer>),
    Item(Value),
}

impl From<Data> for Outgoing {
    fn from(d: Data) -> Self {
        match d {
            Data::Audio(a) => Outgoing::Audio(a),
            other => Outgoing::Item(other.to_json()),
        }
    }
}

/// What one session saw.
#[derive(Default)]
struct Report {
    frames: u64,
    late: u64,
    outputs: u64,
    latencies_us: Vec<u64>,
    error: Option<String>,
    summary: Option<Value>,
}

/// Streams one input, printing every message; exit 0 after the summary, 2 after an
/// error or a lost connection.
async fn single(
    target: Target,
    opened: Input,
    realtime: bool,
    output: Option<std::path::PathBuf>,
) -> u8 {
    let (tx, rx) = mpsc::channel::<Result<Data, String>>(64);
    // Reading (and decoding) blocks: on a thread of its own, pacing if asked.
    std::thread::spawn(move || {
        let start = Instant::now();
        let pacer = realtime.then(|| input::Pacer::new(start));
        let result = input::feed(opened, 1, true, MAX_LINE, pacer.as_ref(), |items| {
            items.into_iter().all(|i| tx.blocking_send(Ok(i)).is_ok())
        });
        if let Err(e) = result {
            let _ = tx.blocking_send(Err(e));
        }
    });
    let mut wav = output.map(|p| WavWriter::new(p, WavFormat::S16));
    let mut print = |msg: &Value, audio: Option<&[u8]>| {
        if let (Some(w), Some(bytes), Some(rate), Some(ch)) = (
            wav.as_mut(),
            audio,
            msg["sample_rate"].as_u64(),
            msg["channels"].as_u64(),
        ) {
            let samples: Vec<f32> = bytes
                .chunks_exact(2)
                .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0)
                .collect();
            let buf = AudioBuffer::new(samples, rate as u32, ch as u16);
            if let Err(e) = w.write(&buf) {
                eprintln!("error: {e}");
            }
            return;
        }
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{msg}");
        let _ = out.flush();
    };
    let report = session(&target, Source::Stream(rx), &mut print).await;
    if let Some(w) = wav.as_mut() {
        if let Err(e) = w.flush() {
            eprintln!("error: {e}");
            return EXIT_RUN_FAILED;
        }
    }
    match report {
        Ok(r) if r.error.is_none() && r.summary.is_some() => 0,
        Ok(r) => {
            if let Some(e) = r.error {
                eprintln!("error: {e}");
            } else {
                eprintln!("error: the session closed before its summary");
            }
            EXIT_RUN_FAILED
        }
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_RUN_FAILED
        }
    }
}

/// The load generator: `n` sessions of the same input at once.
async fn load(target: Target, opened: Input, n: usize, realtime: bool, ramp: Duration) -> u8 {
    let mut items = Vec::new();
    if let Err(e) = input::feed(opened, 1024, false, MAX_LINE, None, |batch| {
        items.extend(batch);
        true
    }) {
        eprintln!("error: {e}");
        return EXIT_INVALID;
    }
    let items: Arc<Vec<Data>> = Arc::new(items);
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let target = target.clone();
        let items = Arc::clone(&items);
        let at = tokio::time::Instant::from_std(started) + ramp.mul_f64(i as f64 / n as f64);
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until(at).await;
            session(&target, Source::Shared { items, realtime }, &mut |_, _| {}).await
        }));
    }
    let mut latencies = Vec::new();
    let (mut frames, mut late, mut outputs, mut failed, mut completed) =
        (0u64, 0u64, 0u64, 0u64, 0u64);
    let mut errors: Vec<String> = Vec::new();
    let mut server_dropped = 0u64;
    for t in tasks {
        match t.await {
            Ok(Ok(r)) => {
                frames += r.frames;
                late += r.late;
                outputs += r.outputs;
                latencies.extend(r.latencies_us);
                if let Some(s) = &r.summary {
                    server_dropped += s["dropped"].as_u64().unwrap_or(0);
                }
                match (r.error, r.summary.is_some()) {
                    (None, true) => completed += 1,
                    (Some(e), _) => {
                        failed += 1;
                        errors.push(e);
                    }
                    (None, false) => {
                        failed += 1;
                        errors.push("closed before its summary".into());
                    }
                }
            }
            Ok(Err(e)) => {
                failed += 1;
                errors.push(e);
            }
            Err(e) => {
                failed += 1;
                errors.push(e.to_string());
            }
        }
    }
    latencies.sort_unstable();
    let q = |p: f64| -> Value {
        if latencies.is_empty() {
            return Value::Null;
        }
        let i = ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1;
        json!(latencies[i] as f64 / 1000.0)
    };
    errors.sort();
    errors.dedup();
    errors.truncate(5);
    let report = json!({
        "sessions": n,
        "completed": completed,
        "failed": failed,
        "realtime": realtime,
        "frames_sent": frames,
        "frames_late": late,
        "frames_dropped_by_server": server_dropped,
        "outputs": outputs,
        "latency_ms": {"count": latencies.len(), "p50": q(0.5), "p99": q(0.99), "max": q(1.0)},
        "wall_s": started.elapsed().as_secs_f64(),
        "errors": errors,
    });
    println!("{report}");
    if failed > 0 {
        EXIT_RUN_FAILED
    } else {
        0
    }
}

/// Where a session's input comes from.
enum Source {
    /// Read as it goes (a thread decodes and paces).
    Stream(mpsc::Receiver<Result<Data, String>>),
    /// Decoded once, shared by many sessions; paced here.
    Shared {
        items: Arc<Vec<Data>>,
        realtime: bool,
    },
}

impl Source {
    async fn next(&mut self, index: &mut usize, start: Instant) -> Option<Result<Data, String>> {
        match self {
            Source::Stream(rx) => rx.recv().await,
            Source::Shared { items, realtime } => {
                // Cancel-safe: the item is taken only once its time has come, so a
                // wait cut short by a message from the server loses nothing.
                let item = items.get(*index)?;
                if *realtime {
                    if let Some(due) = input::due_us(item) {
                        let at = start + Duration::from_micros(due.max(0) as u64);
                        tokio::time::sleep_until(at.into()).await;
                    }
                }
                *index += 1;
                Some(Ok(item.clone()))
            }
        }
    }

    fn paced(&self) -> bool {
        matches!(self, Source::Shared { realtime: true, .. })
    }
}

/// One session: connect, `start` (with the first audio item's format), frames, `end`,
/// every message to `print` until the summary or an error.
async fn session(
    target: &Target,
    mut source: Source,
    print: &mut (dyn FnMut(&Value, Option<&[u8]>) + Send),
) -> Result<Report, String> {
    let mut request = target
        .url
        .as_str()
        .into_client_request()
        .map_err(|e| format!("{}: {e}", target.url))?;
    if let Some(t) = &target.token {
        let value = format!("Bearer {t}")
            .parse()
            .map_err(|_| "the token is not a valid header value".to_string())?;
        request.headers_mut().insert("authorization", value);
    }
    // Nagle would hold a small frame back until the previous one is acknowledged.
    let connector = target.tls.clone().map(tokio_tungstenite::Connector::Rustls);
    let (ws, _) = tokio_tungstenite::connect_async_tls_with_config(request, None, true, connector)
        .await
        .map_err(|e| match e {
            tokio_tungstenite::tungstenite::Error::Http(r) => {
                let body = r
                    .body()
                    .as_deref()
                    .map(|b| String::from_utf8_lossy(b).trim().to_string())
                    .unwrap_or_default();
                format!("{} refused the session: {} {body}", target.url, r.status())
            }
            other => format!("cannot connect to {}: {other}", target.url),
        })?;
    let (mut sink, mut stream) = ws.split();
    let start_time = Instant::now();
    let mut report = Report::default();
    let mut index = 0usize;
    let mut sent: VecDeque<(i64, i64, Instant)> = VecDeque::new();
    let mut started = false;
    let mut input_done = false;
    let mut format: Option<(u32, u16)> = None;
    let mut first: Option<Data> = None;
    // The first item decides the `start` message (audio: its format).
    match source.next(&mut index, start_time).await {
        Some(Ok(d)) => first = Some(d),
        Some(Err(e)) => return Err(e),
        None => input_done = true,
    }
    let mut start = Map::new();
    start.insert("type".into(), json!("start"));
    if let Some(Data::Audio(a)) = &first {
        format = Some((a.sample_rate, a.channels));
        start.insert(
            "input".into(),
            json!({"format": "f32le", "sample_rate": a.sample_rate, "channels": a.channels}),
        );
    }
    if let Some(p) = &target.params {
        start.insert("params".into(), Value::Object(p.clone()));
    }
    if target.pipecat {
        // No handshake: audio goes at once.
        started = true;
    } else {
        send(
            &mut sink,
            Message::Text(Value::Object(start).to_string().into()),
        )
        .await?;
    }
    let mut linger: Option<tokio::time::Instant> = None;
    let mut audio_header: Option<Value> = None;
    let mut pending = first.map(Outgoing::from);
    loop {
        tokio::select! {
            biased;
            msg = stream.next() => {
                let msg = match msg {
                    None => return Ok(report),
                    Some(Err(e)) => {
                        report.error.get_or_insert(format!("connection lost: {e}"));
                        return Ok(report);
                    }
                    Some(Ok(m)) => m,
                };
                match msg {
                    Message::Text(t) => {
                        let mut v: Value = serde_json::from_str(t.as_str()).unwrap_or(Value::Null);
                        match v["type"].as_str() {
                            Some("ready") => started = true,
                            Some("output") | Some("audio") => {
                                report.outputs += 1;
                                // An event's deciding input (a VAD's `decided_at_us`),
                                // audio's end, or the output's time.
                                let known = v["item"]["decided_at_us"].as_i64().or_else(|| {
                                    let end = v["bytes"].as_u64().zip(v["sample_rate"].as_u64()).zip(v["channels"].as_u64())
                                        .map(|((b, r), c)| v["pts_us"].as_i64().unwrap_or(0) + (b / 2 / c.max(1)) as i64 * 1_000_000 / r.max(1) as i64);
                                    end.or_else(|| v["pts_us"].as_i64())
                                });
                                if let Some(p) = known {
                                    if let Some(at) = input_time(&sent, p) {
                                        let us = at.elapsed().as_micros() as u64;
                                        report.latencies_us.push(us);
                                        v["latency_ms"] = json!((us as f64 / 10.0).round() / 100.0);
                                    }
                                }
                            }
                            Some("error") => {
                                report.error.get_or_insert(v["message"].as_str().unwrap_or("error").to_string());
                            }
                            Some("summary") => report.summary = Some(v["metrics"].clone()),
                            _ => {}
                        }
                        if v["type"] == "audio" {
                            audio_header = Some(v);
                        } else {
                            print(&v, None);
                        }
                    }
                    Message::Binary(b) if target.pipecat => {
                        use prost::Message as _;
                        let Ok(frame) = pipecat::Frame::decode(b.as_ref()) else { continue };
                        let Some(m) = frame.message else { continue };
                        let item: Value = serde_json::from_str(&m.data).unwrap_or(Value::String(m.data));
                        let mut v = json!({"type": "output", "sink": "pipecat", "item": item});
                        if item_type(&v) == Some("error") {
                            report.error.get_or_insert(v["item"]["message"].as_str().unwrap_or("error").to_string());
                        }
                        report.outputs += 1;
                        if let Some(p) = v["item"]["decided_at_us"].as_i64().or(v["item"]["pts_us"].as_i64()) {
                            if let Some(at) = input_time(&sent, p) {
                                let us = at.elapsed().as_micros() as u64;
                                report.latencies_us.push(us);
                                v["latency_ms"] = json!((us as f64 / 10.0).round() / 100.0);
                            }
                        }
                        print(&v, None);
                    }
                    Message::Binary(b) => {
                        if let Some(h) = audio_header.take() {
                            print(&h, Some(&b));
                        }
                    }
                    Message::Close(_) => return Ok(report),
                    _ => {}
                }
            }
            _ = async { tokio::time::sleep_until(linger.expect("checked")).await }, if linger.is_some() => {
                let _ = sink.send(Message::Close(None)).await;
                report.summary = Some(json!({}));
                return Ok(report);
            }
            next = async {
                match pending.take() {
                    Some(p) => Some(Ok(p)),
                    None => source.next(&mut index, start_time).await.map(|r| r.map(Outgoing::from)),
                }
            }, if started && !input_done => {
                match next {
                    None if target.pipecat => {
                        input_done = true;
                        linger = Some(tokio::time::Instant::now() + PIPECAT_LINGER);
                    }
                    None => {
                        input_done = true;
                        send(&mut sink, Message::Text(r#"{"type":"end"}"#.into())).await?;
                    }
                    Some(Err(e)) => {
                        // What was read so far has been sent: end the stream there.
                        eprintln!("error: {e}");
                        input_done = true;
                        report.error = Some(e);
                        send(&mut sink, Message::Text(r#"{"type":"end"}"#.into())).await?;
                    }
                    Some(Ok(Outgoing::Audio(a))) => {
                        if format.is_some_and(|f| f != (a.sample_rate, a.channels)) {
                            return Err(format!(
                                "the input changes format mid-stream ({} Hz, {} channels)",
                                a.sample_rate, a.channels
                            ));
                        }
                        let mut bytes = Vec::with_capacity(a.samples.len() * 4);
                        if target.pipecat {
                            use prost::Message as _;
                            let mut pcm = Vec::with_capacity(a.samples.len() * 2);
                            PcmFormat::S16le.encode_into(&a.samples, &mut pcm);
                            let frame = pipecat::Frame {
                                audio: Some(pipecat::AudioRawFrame {
                                    audio: pcm,
                                    sample_rate: a.sample_rate,
                                    num_channels: u32::from(a.channels),
                                    ..Default::default()
                                }),
                                message: None,
                            };
                            bytes = frame.encode_to_vec();
                        } else {
                            PcmFormat::F32le.encode_into(&a.samples, &mut bytes);
                        }
                        if source.paced() {
                            let due = start_time + Duration::from_micros(a.end_pts_us().max(0) as u64);
                            if Instant::now() > due + LATE {
                                report.late += 1;
                            }
                        }
                        sent.push_back((a.pts_us, a.end_pts_us(), Instant::now()));
                        if sent.len() > 4096 {
                            sent.pop_front();
                        }
                        report.frames += 1;
                        send(&mut sink, Message::Binary(bytes.into())).await?;
                    }
                    Some(Ok(Outgoing::Item(v))) => {
                        report.frames += 1;
                        let msg = json!({"type": "item", "item": v});
                        send(&mut sink, Message::Text(msg.to_string().into())).await?;
                    }
                }
            }
        }
    }
}

async fn send<S>(sink: &mut S, m: Message) -> Result<(), String>
where
    S: SinkExt<Message> + Unpin,
    S::Error: std::fmt::Display,
{
    sink.send(m)
        .await
        .map_err(|e| format!("connection lost: {e}"))
}

fn item_type(v: &Value) -> Option<&str> {
    v["item"]["type"].as_str()
}

/// When the stream reached time `pts`: the input frame ending at or after it was sent
/// (the last one, for a later time).
fn input_time(sent: &VecDeque<(i64, i64, Instant)>, pts: i64) -> Option<Instant> {
    let i = sent.partition_point(|s| s.0 < pts);
    if i == 0 {
        return None;
    }
    let s = &sent[i - 1];
    (pts <= s.1 || i == sent.len()).then_some(s.2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            session_url("127.0.0.1:5", Some("vad")).unwrap(),
            "ws://127.0.0.1:5/v1/sessions/vad"
        );
        assert_eq!(
            session_url("http://h:5/", Some("vad")).unwrap(),
            "ws://h:5/v1/sessions/vad"
        );
        assert_eq!(
            session_url("ws://h:5/v1/sessions/x", None).unwrap(),
            "ws://h:5/v1/sessions/x"
        );
        assert!(session_url("h:5", None).unwrap_err().contains("--pipeline"));
        assert!(session_url("ftp://h", Some("x")).is_err());
    }
}
