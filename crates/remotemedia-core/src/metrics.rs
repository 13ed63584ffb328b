//! Run metrics: per node counters and latency, per queue depth, run wall time and memory.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Sub-buckets per power of two in [`LatencyHistogram`], as a power of two: 2^5 = 32
/// linear steps per octave, so a bucket spans at most 1/32 of its value and its
/// midpoint is within 1.6% of any value recorded in it.
const SUB_BITS: u32 = 5;
const SUB: u64 = 1 << SUB_BITS;
/// Distinct buckets kept inline before spilling to the heap. A run records one value
/// per batch, so most nodes only ever touch a handful of buckets.
const INLINE_BUCKETS: usize = 4;

/// Log-linear histogram of nanosecond values: exact below 64 ns, then 32 linear
/// buckets per power of two up to `u64::MAX`. Only buckets that were hit are stored,
/// sorted by bucket index, so an empty histogram costs nothing to create.
#[derive(Clone, Debug, Default)]
struct LatencyHistogram {
    inline: [(u16, u64); INLINE_BUCKETS],
    inline_len: usize,
    /// Every bucket, once more than [`INLINE_BUCKETS`] distinct buckets were hit.
    spilled: Vec<(u16, u64)>,
    total: u64,
}

impl LatencyHistogram {
    /// Bucket index of `v` (`v >= 1`).
    fn index(v: u64) -> u16 {
        if v < 2 * SUB {
            return v as u16;
        }
        let e = 63 - v.leading_zeros();
        let sub = (v >> (e - SUB_BITS)) - SUB;
        ((e - SUB_BITS + 1) as u64 * SUB + sub) as u16
    }

    /// Midpoint of bucket `i`.
    fn value(i: u16) -> u64 {
        let i = u64::from(i);
        if i < 2 * SUB {
            return i;
        }
        let shift = i / SUB - 1;
        let low = (SUB + i % SUB) << shift;
        low + ((1u64 << shift) >> 1)
    }

    fn buckets(&self) -> &[(u16, u64)] {
        if self.spilled.is_empty() {
            &self.inline[..self.inline_len]
        } else {
            &self.spilled
        }
    }

    /// Records `n` occurrences of `value`.
    fn record_n(&mut self, value: u64, n: u64) {
        if n == 0 {
            return;
        }
        let i = Self::index(value.max(1));
        self.total = self.total.saturating_add(n);
        if self.spilled.is_empty() {
            let used = &mut self.inline[..self.inline_len];
            match used.binary_search_by_key(&i, |b| b.0) {
                Ok(k) => used[k].1 = used[k].1.saturating_add(n),
                Err(k) if self.inline_len < INLINE_BUCKETS => {
                    self.inline.copy_within(k..self.inline_len, k + 1);
                    self.inline[k] = (i, n);
                    self.inline_len += 1;
                }
                Err(k) => {
                    let mut all = Vec::with_capacity(4 * INLINE_BUCKETS);
                    all.extend_from_slice(&self.inline[..k]);
                    all.push((i, n));
                    all.extend_from_slice(&self.inline[k..]);
                    self.spilled = all;
                }
            }
        } else {
            match self.spilled.binary_search_by_key(&i, |b| b.0) {
                Ok(k) => self.spilled[k].1 = self.spilled[k].1.saturating_add(n),
                Err(k) => self.spilled.insert(k, (i, n)),
            }
        }
    }

    /// The value at quantile `q` (0..=1): the smallest recorded bucket whose cumulative
    /// count reaches `ceil(q * total)`; 0 when empty.
    fn value_at_quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        // A single bucket (every call of the same latency class) needs no rank.
        if let [(i, _)] = self.buckets() {
            return Self::value(*i);
        }
        // The small tolerance keeps 0.99 * 100 at rank 99 despite rounding.
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64) - 1e-9)
            .ceil()
            .max(1.0) as u64;
        let mut seen = 0u64;
        for &(i, count) in self.buckets() {
            seen = seen.saturating_add(count);
            if seen >= rank {
                return Self::value(i);
            }
        }
        self.buckets().last().map_or(0, |&(i, _)| Self::value(i))
    }
}

/// Counters a node runner keeps while it runs (one thread, no atomics).
#[derive(Clone, Debug, Default)]
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
    latency_ns: LatencyHistogram,
}

impl NodeCounters {
    /// Records one call that handled `items` input items in `elapsed`. Per-item latency
    /// is the call's time divided by its items, recorded once per item: exact for
    /// single-item calls, the batch mean for batched calls.
    pub fn record_call(&mut self, items: u64, elapsed: Duration) {
        self.busy += elapsed;
        if let Some(per_item) = (elapsed.as_nanos() as u64).checked_div(items) {
            self.latency_ns.record_n(per_item, items);
        }
    }

    /// Snapshot for reporting.
    pub fn snapshot(&self, node_id: &str, node_type: &str) -> NodeMetrics {
        self.snapshot_owned(node_id.into(), node_type.into())
    }

    /// Snapshot for reporting, sharing the names.
    pub fn snapshot_owned(&self, node_id: Arc<str>, node_type: Arc<str>) -> NodeMetrics {
        let q = |p: f64| self.latency_ns.value_at_quantile(p) as f64 / 1000.0;
        NodeMetrics {
            node_id,
            node_type,
            items_in: self.items_in,
            items_out: self.items_out,
            busy_us: micros(self.busy),
            latency_p50_us: q(0.5),
            latency_p99_us: q(0.99),
            errors: self.errors,
            retries: self.retries,
            executor: None,
        }
    }
}

/// A duration in microseconds, with nanosecond digits only: whole nanoseconds divided
/// by 1000 print as `7422.431`, where `as_secs_f64() * 1e6` prints `7422.4310000000005`.
pub fn micros(d: std::time::Duration) -> f64 {
    d.as_nanos() as f64 / 1000.0
}

/// Reported metrics of one node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeMetrics {
    /// Node id.
    pub node_id: Arc<str>,
    /// Node type.
    pub node_type: Arc<str>,
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
    /// Where the node ran when it was not in this run's own process: the remote
    /// executor's name (`local` for a remote sub-graph that moved back to this
    /// machine). Absent for nodes the run ran itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executor: Option<Arc<str>>,
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
    /// Most items ever waiting in the queue at once. A batch the receiving stage has just
    /// taken may still be counted while the sender adds the next one, so the bound is
    /// `(capacity_batches + 1) * max_batch`.
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
    /// Peak resident memory of the process in bytes. The executor leaves it `None`
    /// (reading it costs a system call and a parse per run); a caller that wants it
    /// fills it from [`peak_rss_bytes`] when the run ends.
    pub peak_rss_bytes: Option<u64>,
    /// Per node, in manifest order.
    pub nodes: Vec<NodeMetrics>,
    /// Per inter-stage queue, in stage order; empty when the run executed on the
    /// caller's thread (no queues).
    pub queues: Vec<QueueMetrics>,
}

impl RunMetrics {
    /// Metrics of one node by id.
    pub fn node(&self, id: &str) -> Option<&NodeMetrics> {
        self.nodes.iter().find(|n| &*n.node_id == id)
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
    fn microseconds_print_without_float_noise() {
        let d = std::time::Duration::from_nanos(7_422_431);
        assert_eq!(micros(d).to_string(), "7422.431");
        assert_eq!(serde_json::to_string(&micros(d)).unwrap(), "7422.431");
    }

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

    #[test]
    fn histogram_buckets_are_tight_over_the_whole_range() {
        let mut v = 1u64;
        while v < u64::MAX / 3 {
            let i = LatencyHistogram::index(v);
            let mid = LatencyHistogram::value(i);
            let err = (mid as f64 - v as f64).abs() / v as f64;
            assert!(err <= 1.0 / 32.0, "{v}: bucket {i} reports {mid}");
            assert!(LatencyHistogram::index(v + 1) >= i, "monotonic at {v}");
            v = v * 3 / 2 + 1;
        }
        assert_eq!(LatencyHistogram::index(63), 63);
        assert_eq!(LatencyHistogram::index(64), 64);
        assert!(LatencyHistogram::index(u64::MAX) < 2048);
    }

    #[test]
    fn histogram_spills_and_keeps_order() {
        let mut h = LatencyHistogram::default();
        for v in [5000u64, 10, 700, 90_000, 3, 40, 1_000_000, 10] {
            h.record_n(v, 1);
        }
        assert_eq!(h.total, 8);
        let idx: Vec<u16> = h.buckets().iter().map(|b| b.0).collect();
        let mut sorted = idx.clone();
        sorted.sort_unstable();
        assert_eq!(idx, sorted);
        assert_eq!(h.value_at_quantile(0.0), 3);
        assert_eq!(h.value_at_quantile(0.25), 10);
        let top = h.value_at_quantile(1.0) as f64;
        assert!((top - 1e6).abs() / 1e6 < 0.02, "{top}");
        assert_eq!(LatencyHistogram::default().value_at_quantile(0.5), 0);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn peak_rss_is_read() {
        assert!(peak_rss_bytes().unwrap() > 0);
    }
}
