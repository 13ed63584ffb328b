//! Memory per stream: resident memory of many `VoiceActivity` streams sharing the
//! process's model, against each stream opening its own ONNX Runtime session.
//!
//! ```text
//! cargo run --release -p remotemedia-speech --example vad_memory [-- --json]
//! ```
//!
//! With `--json`, stdout is one JSON object with the figures and the text goes to
//! stderr.

use remotemedia_core::{AudioBuffer, Data, Node, NodeType};
use remotemedia_speech::locate::locate;
use remotemedia_speech::silero::{Runtime, SileroModel};
use remotemedia_speech::vad::{VoiceActivity, VoiceActivityParams};

/// A line of the report: to stdout, or to stderr when stdout carries the JSON.
macro_rules! say {
    ($json:expr, $($t:tt)*) => {
        if $json { eprintln!($($t)*) } else { println!($($t)*) }
    };
}

/// Resident set size in bytes (Linux).
fn rss() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kb: f64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024.0
}

fn main() {
    let json = std::env::args().any(|a| a == "--json");
    const STREAMS: usize = 10_000;
    const SESSIONS: usize = 16;
    let mb = |b: f64| b / (1024.0 * 1024.0);
    let before = rss();
    let p: VoiceActivityParams = serde_yaml_ng::from_str("{}").unwrap();
    let chunk = || Data::from(AudioBuffer::new(vec![0.01; 512], 16_000, 1));
    let mut out = Vec::new();
    let mut nodes = vec![VoiceActivity::from_params(&p).unwrap()];
    nodes[0].process(chunk(), &mut out).unwrap();
    let one = rss();
    for _ in 1..STREAMS {
        let mut n = VoiceActivity::from_params(&p).unwrap();
        n.process(chunk(), &mut out).unwrap();
        nodes.push(n);
    }
    let many = rss();
    say!(
        json,
        "process before the model           {:8.1} MB",
        mb(before)
    );
    say!(
        json,
        "model + 1 stream                   {:8.1} MB",
        mb(one)
    );
    say!(
        json,
        "model + {STREAMS} streams              {:8.1} MB: {:.2} KB per additional stream",
        mb(many),
        (many - one) / (STREAMS - 1) as f64 / 1024.0
    );
    say!(
        json,
        "ONNX Runtime sessions they use      {}",
        SileroModel::shared().unwrap().sessions()
    );

    // Each stream with its own session, as peers do.
    let found = locate().unwrap();
    let start = rss();
    let mut own = Vec::new();
    for _ in 0..SESSIONS {
        let m = SileroModel::load(found.ort_lib.as_deref(), &found.model, "own session").unwrap();
        let mut st = remotemedia_speech::silero::SileroState::new(16_000);
        m.prob_on(Runtime::OnnxRuntime, &mut st, &[0.01; 512])
            .unwrap();
        own.push(m);
    }
    let end = rss();
    say!(
        json,
        "{SESSIONS} streams with a session each    +{:7.1} MB: {:.1} MB per stream",
        mb(end - start),
        mb(end - start) / SESSIONS as f64
    );
    if json {
        let report = serde_json::json!({
            "streams": STREAMS,
            "rss_bytes": { "before_model": before, "model_and_one_stream": one, "model_and_all_streams": many },
            "bytes_per_additional_stream": (many - one) / (STREAMS - 1) as f64,
            "shared_sessions": SileroModel::shared().unwrap().sessions(),
            "own_session_streams": SESSIONS,
            "bytes_per_stream_with_own_session": (end - start) / SESSIONS as f64,
        });
        println!("{report}");
    }
}
