//! Run metrics: per node counters and latency, per queue depth, run wall time and memory.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Counters a node runner keeps while it runs (one thread, no atomics).
#[derive(Debug)]
pub struct NodeCounters {
    /// Items handed to the node.
    pub items_in: u64,
    /// Items the node emitted.
    pub items_out: u64,
    /// Time spent inside the node's calls.
    pub busy: Duration,
    /// Items that failed for good (after retries).
    pub errors: u64,
    /// Retry attempts made.
    pub retries: u64,
    latency_ns: Histogram<u64>,
}

impl Default for NodeCounters {
    fn default() -> Self {
        Self {
            items_in: 0,
            items_out: 0,
            busy: Duration::ZERO,
            errors: 0,
            retries: 0,
            latency_ns: Histogram::new_with_bounds(1, 3_600_000_000_000, 2)
                .expect("valid histogram bounds"),
        }
    }
}

impl NodeCounters {
    /// Records one call that handled `items` input items in `elapsed`. Per-item latency
    /// is the call's time divided by its items, recorded once per item: exact for
    /// single-item calls, the batch mean for batched calls.
    pub fn record_call(&mut self, items: u64, elapsed: Duration) {
        self.busy += elapsed;
        if let Some(per_item) = (elapsed.as_nanos() as u64).checked_div(items) {
            self.latency_ns.saturating_record_n(per_item.max(1), items);
        }
    }

    /// Snapshot for reporting.
    pub fn snapshot(&self, node_id: &str, node_type: &str) -> NodeMetrics {
        let q = |p: f64| {
            if self.latency_ns.is_empty() {
                0.0
            } else {
                self.latency_ns.value_at_quantile(p) as f64 / 1000.0
            }
        };
        NodeMetrics {
            node_id: node_id.to_string(),
            node_type: node_type.to_string(),
            items_in: self.items_in,
            items_out: self.items_out,
            busy_us: self.busy.as_secs_f64() * 1e6,
            latency_p50_us: q(0.5),
            latency_p99_us: q(0.99),
            errors: self.errors,
            retries: self.retries,
        }
    }
}

/// Reported metrics of one node.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NodeMetrics {
    /// Node id.
    pub node_id: String,
    /// Node type.
    pub node_type: String,
    /// Items received.
    pub items_in: u64,
    /// Items emitted.
    pub items_out: u64,
    /// Microseconds spent inside the node.
    pub busy_us: f64,
    /// Median per-item latency in microseconds.
    pub latency_p50_us: f64,
    /// 99th percentile per-item latency in microseconds.
    pub latency_p99_us: f64,
    /// Items that failed for good.
    pub errors: u64,
    /// Retry attempts.
    pub retries: u64,
}

/// Depth of one bounded queue between stages.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct QueueMetrics {
    /// Node id at the head of the stage the queue feeds.
    pub stage_head: String,
    /// Capacity in batches.
    pub capacity_batches: usize,
    /// Largest batch allowed on the queue.
    pub max_batch: usize,
    /// Most items ever waiting in the queue at once.
    pub peak_items: u64,
}

/// Metrics of a whole run or session.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RunMetrics {
    /// Wall time from start to the end of the last stage, in microseconds.
    pub wall_time_us: f64,
    /// Items fed to the pipeline.
    pub items_in: u64,
    /// Items that reached sinks.
    pub items_out: u64,
    /// Number of execution stages (fused chains).
    pub stages: usize,
    /// Peak resident memory of the process in bytes, where the OS reports it.
    pub peak_rss_bytes: Option<u64>,
    /// Per node, in manifest order.
    pub nodes: Vec<NodeMetrics>,
    /// Per inter-stage queue.
    pub queues: Vec<QueueMetrics>,
}

impl RunMetrics {
    /// Metrics of one node by id.
    pub fn node(&self, id: &str) -> Option<&NodeMetrics> {
        self.nodes.iter().find(|n| n.node_id == id)
    }
}

/// Peak resident set size of this process (`VmHWM`), on Linux.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_from_calls() {
        let mut c = NodeCounters::default();
        for _ in 0..99 {
            c.record_call(1, Duration::from_micros(10));
        }
        c.record_call(1, Duration::from_millis(5));
        let s = c.snapshot("n", "T");
        assert!((s.latency_p50_us - 10.0).abs() < 0.5, "{s:?}");
        assert!(s.latency_p99_us < 11.0);
        c.record_call(1, Duration::from_millis(5));
        let s = c.snapshot("n", "T");
        assert!(s.latency_p99_us > 4000.0);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn peak_rss_is_read() {
        assert!(peak_rss_bytes().unwrap() > 0);
    }
}
