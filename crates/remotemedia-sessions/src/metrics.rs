//! Session counters and frame-latency histograms per pipeline, rendered as Prometheus
//! text beside the executor's metrics.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

/// Upper bounds (µs) of the latency histogram's buckets.
const BUCKETS_US: [u64; 12] = [
    1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000, 200_000, 500_000, 1_000_000, 2_000_000,
    5_000_000,
];

/// A Prometheus histogram of latencies, updated without locks.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS_US.len()],
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl Histogram {
    /// Records one latency.
    pub fn record(&self, us: u64) {
        if let Some(i) = BUCKETS_US.iter().position(|&b| us <= b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }
}

/// Counters of one pipeline's sessions.
#[derive(Debug, Default)]
pub struct PipelineMetrics {
    /// Sessions open now.
    pub active: AtomicU64,
    /// Sessions opened.
    pub sessions: AtomicU64,
    /// Sessions that ended with `summary`.
    pub completed: AtomicU64,
    /// Sessions whose client went away.
    pub disconnected: AtomicU64,
    /// Sessions closed by an error.
    pub failed: AtomicU64,
    /// Frames (binary PCM frames and `item` messages) received.
    pub frames_in: AtomicU64,
    /// Outputs sent.
    pub frames_out: AtomicU64,
    /// Session errors (node failures, bad starts, limits).
    pub errors: AtomicU64,
    /// Bad client messages the session survived.
    pub bad_messages: AtomicU64,
    /// `flush` messages.
    pub flushes: AtomicU64,
    /// Input chunks dropped by a flush before they reached the pipeline.
    pub dropped: AtomicU64,
    /// Times reading was held back for input faster than allowed.
    pub throttled: AtomicU64,
    /// Input-to-output latency of outputs that carry a time.
    pub latency: Histogram,
}

/// Every pipeline's metrics, and the server-wide counters.
#[derive(Debug, Default)]
pub struct Metrics {
    pipelines: Mutex<BTreeMap<String, Arc<PipelineMetrics>>>,
    /// Sessions refused: too many open, shutting down.
    pub refused: AtomicU64,
    /// Connections refused for a missing or wrong token, or a disallowed origin.
    pub rejected: AtomicU64,
}

impl Metrics {
    /// The metrics of `pipeline` (created on first use).
    pub fn pipeline(&self, pipeline: &str) -> Arc<PipelineMetrics> {
        let mut map = self.pipelines.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(map.entry(pipeline.to_string()).or_default())
    }

    /// Sessions open now, over every pipeline.
    pub fn active(&self) -> u64 {
        let map = self.pipelines.lock().unwrap_or_else(|e| e.into_inner());
        map.values().map(|p| p.active.load(Ordering::Relaxed)).sum()
    }

    /// Prometheus text.
    pub fn render(&self) -> String {
        let map = self.pipelines.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::new();
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let active: u64 = map.values().map(|p| get(&p.active)).sum();
        let _ = writeln!(
            out,
            "# HELP remotemedia_active_sessions Live sessions open now.\n\
             # TYPE remotemedia_active_sessions gauge\nremotemedia_active_sessions {active}"
        );
        let _ = writeln!(
            out,
            "# HELP remotemedia_sessions_refused_total Sessions refused (too many, shutting down).\n\
             # TYPE remotemedia_sessions_refused_total counter\nremotemedia_sessions_refused_total {}",
            get(&self.refused)
        );
        let _ = writeln!(
            out,
            "# HELP remotemedia_session_auth_rejected_total Session requests rejected (token, origin).\n\
             # TYPE remotemedia_session_auth_rejected_total counter\nremotemedia_session_auth_rejected_total {}",
            get(&self.rejected)
        );
        type Field = fn(&PipelineMetrics) -> &AtomicU64;
        let counters: [(&str, &str, &str, Field); 11] = [
            (
                "remotemedia_pipeline_active_sessions",
                "gauge",
                "Sessions open now.",
                |p| &p.active,
            ),
            (
                "remotemedia_sessions_total",
                "counter",
                "Sessions opened.",
                |p| &p.sessions,
            ),
            (
                "remotemedia_sessions_completed_total",
                "counter",
                "Sessions ended with a summary.",
                |p| &p.completed,
            ),
            (
                "remotemedia_sessions_disconnected_total",
                "counter",
                "Sessions whose client went away.",
                |p| &p.disconnected,
            ),
            (
                "remotemedia_sessions_failed_total",
                "counter",
                "Sessions closed by an error.",
                |p| &p.failed,
            ),
            (
                "remotemedia_session_frames_in_total",
                "counter",
                "Frames received from clients.",
                |p| &p.frames_in,
            ),
            (
                "remotemedia_session_frames_out_total",
                "counter",
                "Outputs sent to clients.",
                |p| &p.frames_out,
            ),
            (
                "remotemedia_session_errors_total",
                "counter",
                "Session errors.",
                |p| &p.errors,
            ),
            (
                "remotemedia_session_bad_messages_total",
                "counter",
                "Bad client messages answered with an error.",
                |p| &p.bad_messages,
            ),
            (
                "remotemedia_session_dropped_total",
                "counter",
                "Input chunks dropped by flush.",
                |p| &p.dropped,
            ),
            (
                "remotemedia_session_throttled_total",
                "counter",
                "Times input faster than allowed was held back.",
                |p| &p.throttled,
            ),
        ];
        for (name, kind, help, field) in counters {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (pipeline, p) in map.iter() {
                let _ = writeln!(out, "{name}{{pipeline=\"{pipeline}\"}} {}", get(field(p)));
            }
        }
        let name = "remotemedia_session_frame_latency_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Input frame received to output sent, for outputs with a time.\n# TYPE {name} histogram"
        );
        for (pipeline, p) in map.iter() {
            let mut cumulative = 0;
            for (i, bound) in BUCKETS_US.iter().enumerate() {
                cumulative += get(&p.latency.buckets[i]);
                let _ = writeln!(
                    out,
                    "{name}_bucket{{pipeline=\"{pipeline}\",le=\"{}\"}} {cumulative}",
                    *bound as f64 / 1e6
                );
            }
            let count = get(&p.latency.count);
            let _ = writeln!(
                out,
                "{name}_bucket{{pipeline=\"{pipeline}\",le=\"+Inf\"}} {count}"
            );
            let _ = writeln!(
                out,
                "{name}_sum{{pipeline=\"{pipeline}\"}} {}",
                get(&p.latency.sum_us) as f64 / 1e6
            );
            let _ = writeln!(out, "{name}_count{{pipeline=\"{pipeline}\"}} {count}");
        }
        out
    }
}

/// One session's latencies, for its summary.
#[derive(Debug)]
pub struct LatencyStats(hdrhistogram::Histogram<u64>);

impl Default for LatencyStats {
    fn default() -> Self {
        // 1 µs to 1 h at 3 significant digits.
        LatencyStats(
            hdrhistogram::Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds"),
        )
    }
}

impl LatencyStats {
    /// Records one latency (µs).
    pub fn record(&mut self, us: u64) {
        self.0.saturating_record(us.max(1));
    }

    /// `{"count", "p50", "p99", "max"}` in µs.
    pub fn to_json(&self) -> Value {
        if self.0.is_empty() {
            return json!({"count": 0});
        }
        json!({
            "count": self.0.len(),
            "p50": self.0.value_at_quantile(0.5),
            "p99": self.0.value_at_quantile(0.99),
            "max": self.0.max(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let m = Metrics::default();
        let p = m.pipeline("vad");
        p.latency.record(500);
        p.latency.record(15_000);
        p.latency.record(9_000_000);
        let text = m.render();
        assert!(
            text.contains(
                "remotemedia_session_frame_latency_seconds_bucket{pipeline=\"vad\",le=\"0.001\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "remotemedia_session_frame_latency_seconds_bucket{pipeline=\"vad\",le=\"0.02\"} 2"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "remotemedia_session_frame_latency_seconds_bucket{pipeline=\"vad\",le=\"5\"} 2"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "remotemedia_session_frame_latency_seconds_bucket{pipeline=\"vad\",le=\"+Inf\"} 3"
            ),
            "{text}"
        );
        assert!(
            text.contains("remotemedia_session_frame_latency_seconds_count{pipeline=\"vad\"} 3"),
            "{text}"
        );
        assert!(text.contains("remotemedia_active_sessions 0"), "{text}");
    }
}
