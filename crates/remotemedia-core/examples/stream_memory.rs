//! Streams N integers through the simple chain (PassThrough → Calculator(add 1) →
//! PassThrough) in a streaming session and prints the process's peak resident memory
//! as JSON. Memory must not grow with N: compare N = 10,000 with N = 1,000,000.
//!
//! ```sh
//! cargo run --release -p remotemedia-core --example stream_memory -- 1000000
//! ```
//!
//! A sender thread generates and sends batches of 1024 items; this thread receives the
//! outputs and counts them without storing them.

use std::process::ExitCode;
use std::time::Instant;

use remotemedia_core::executor::{start_session, RunOptions};
use remotemedia_core::manifest::{self, Format};
use remotemedia_core::metrics::peak_rss_bytes;
use remotemedia_core::plan::Plan;
use remotemedia_core::{Data, Registry};

const MANIFEST: &str = r#"{
  "version": "v1",
  "metadata": { "name": "simple" },
  "nodes": [
    { "id": "in", "node_type": "PassThrough" },
    { "id": "calc", "node_type": "Calculator", "params": { "operation": "add", "operand": 1 } },
    { "id": "out", "node_type": "PassThrough" }
  ],
  "connections": [
    { "from": "in", "to": "calc" },
    { "from": "calc", "to": "out" }
  ]
}"#;

const BATCH: u64 = 1024;

fn main() -> ExitCode {
    let n: u64 = match std::env::args().nth(1).map(|a| a.replace('_', "").parse()) {
        None => 1_000_000,
        Some(Ok(n)) => n,
        Some(Err(e)) => {
            eprintln!("usage: stream_memory [ITEMS]  ({e})");
            return ExitCode::from(2);
        }
    };
    let rss_before = peak_rss_bytes();
    let registry = Registry::builtin();
    let pipeline = match manifest::load_str(MANIFEST, Format::Json, &registry) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("invalid manifest: {e}");
            return ExitCode::FAILURE;
        }
    };
    let start = Instant::now();
    let session = Plan::build(&pipeline, &registry)
        .map_err(|e| e.to_string())
        .and_then(|plan| start_session(plan, &RunOptions::default()).map_err(|e| e.to_string()));
    let (sender, mut receiver) = match session {
        Ok(s) => s.into_split(),
        Err(e) => {
            eprintln!("cannot start the session: {e}");
            return ExitCode::FAILURE;
        }
    };
    let producer = std::thread::spawn(move || {
        let mut next = 0u64;
        while next < n {
            let end = (next + BATCH).min(n);
            let batch: Vec<Data> = (next..end).map(|i| Data::Int(i as i64)).collect();
            if let Err(e) = sender.send_batch(batch) {
                return Err(e.to_string());
            }
            next = end;
        }
        sender.close();
        Ok(())
    });
    // The chain emits one output per input. Stop after n outputs, then `finish` ends
    // the session (the receiver holds the session open until then).
    let mut received = 0u64;
    let mut checksum = 0i64;
    while received < n {
        match receiver.recv_batch() {
            Some((_, batch)) => {
                received += batch.len() as u64;
                checksum = batch
                    .iter()
                    .filter_map(Data::as_i64)
                    .fold(checksum, i64::wrapping_add);
            }
            None => break,
        }
    }
    let sent = producer
        .join()
        .unwrap_or_else(|_| Err("sender panicked".into()));
    let result = receiver.finish();
    let elapsed = start.elapsed().as_secs_f64();
    let (received, ok, error) = match (&sent, result) {
        (Ok(()), Ok(r)) => (received + r.all_items().count() as u64, true, None),
        (Err(e), _) => (received, false, Some(e.clone())),
        (_, Err(f)) => (received, false, Some(f.error.to_string())),
    };
    let expected_sum = (n as i128 * (n as i128 + 1) / 2) as i64;
    let report = serde_json::json!({
        "items": n,
        "received": received,
        "checksum_ok": ok && checksum == expected_sum,
        "seconds": elapsed,
        "items_per_second": if elapsed > 0.0 { received as f64 / elapsed } else { 0.0 },
        "peak_rss_bytes_at_start": rss_before,
        "peak_rss_bytes": peak_rss_bytes(),
        "error": error,
    });
    println!("{report}");
    if ok && received == n {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
