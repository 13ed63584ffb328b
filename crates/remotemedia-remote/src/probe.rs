//! Asking executors what they offer before placing anything on them.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use remotemedia_core::placement::{ExecutorInfo, ExecutorState, ExecutorStatus};

use crate::client::{Endpoint, ExecutorClient};
use crate::error::RemoteError;
use crate::runtime::block_on;

/// How long a probe may take per executor.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(3);
/// Health calls whose fastest round trip is the executor's latency.
pub const RTT_SAMPLES: usize = 3;

/// Capabilities, load and round-trip time of one executor, plus its advertised cost.
async fn status(
    endpoint: &Endpoint,
    timeout: Duration,
) -> Result<(ExecutorStatus, Option<f64>, u32), RemoteError> {
    let mut client = ExecutorClient::connect(endpoint, timeout).await?;
    let caps = client.capabilities().await?;
    let mut best: Option<Duration> = None;
    for _ in 0..RTT_SAMPLES {
        let (_, rtt) = client.health().await?;
        best = Some(best.map_or(rtt, |b| b.min(rtt)));
    }
    Ok((
        ExecutorStatus {
            capabilities: caps.capabilities,
            node_types: caps.node_types,
            load: caps.load,
            rtt_us: best.map(remotemedia_core::metrics::micros),
        },
        caps.cost_per_hour,
        caps.max_streams,
    ))
}

fn short_reason(e: &RemoteError) -> String {
    match e {
        RemoteError::Connect { message, .. } => message.clone(),
        RemoteError::Rpc { status, .. } => format!("{:?}: {}", status.code(), status.message()),
        other => other.to_string(),
    }
}

/// Probes one executor. `cost` is the configured cost per hour; without one, the
/// executor's advertised cost is used.
pub async fn probe(endpoint: &Endpoint, cost: Option<f64>, timeout: Duration) -> ExecutorInfo {
    probe_with_slots(endpoint, cost, timeout).await.0
}

/// [`probe`], and the executor's stream slots when it answered.
async fn probe_with_slots(
    endpoint: &Endpoint,
    cost: Option<f64>,
    timeout: Duration,
) -> (ExecutorInfo, Option<u32>) {
    let start = std::time::Instant::now();
    let (state, advertised, slots) =
        match tokio::time::timeout(timeout, status(endpoint, timeout)).await {
            Ok(Ok((s, adv, slots))) => (ExecutorState::Available(s), adv, Some(slots)),
            Ok(Err(e)) => (ExecutorState::Unreachable(short_reason(&e)), None, None),
            Err(_) => (
                ExecutorState::Unreachable(format!("no answer within {timeout:?}")),
                None,
                None,
            ),
        };
    let duration_ms = start.elapsed().as_micros() as f64 / 1000.0;
    match &state {
        ExecutorState::Available(s) => tracing::debug!(
            executor = %endpoint.name,
            address = %endpoint.address,
            load = s.load,
            rtt_us = s.rtt_us,
            node_types = s.node_types.len(),
            duration_ms,
            "probed executor: available"
        ),
        ExecutorState::Unreachable(why) => tracing::info!(
            executor = %endpoint.name,
            address = %endpoint.address,
            reason = %why,
            duration_ms,
            "probed executor: unreachable"
        ),
    }
    let info = ExecutorInfo {
        name: endpoint.name.clone(),
        address: endpoint.address.clone(),
        cost_per_hour: cost.or(advertised),
        state,
    };
    (info, slots)
}

/// An answer kept for an executor found through DNS (see [`probe_all_cached`]).
struct Probed {
    info: ExecutorInfo,
    expires: Instant,
    /// Streams this process had open there when it answered.
    open_then: usize,
    slots: u32,
}

/// Answers that still stand, by (executor name, address).
static PROBED: LazyLock<Mutex<HashMap<(String, String), Probed>>> = LazyLock::new(Default::default);

/// A reported `load` corrected for the streams this process opened (or closed) on the
/// executor since it reported: each is one of its `slots`. Never below 0.
pub fn corrected_load(load: f64, open_then: usize, open_now: usize, slots: u32) -> f64 {
    let delta = open_now as f64 - open_then as f64;
    (load + delta / f64::from(slots.max(1))).max(0.0)
}

/// [`probe_all`], except that an executor given an expiry (one found through DNS,
/// whose answer stands as long as its pool's resolution) is asked only when this
/// process holds no answer of it that stands. A kept answer's load is corrected by
/// the streams this process opened or closed there since ([`corrected_load`]), so
/// `balanced` still sees its own streams. Only answers of executors that answered are
/// kept.
pub fn probe_all_cached(
    executors: &[(Endpoint, Option<f64>, Option<Instant>)],
    timeout: Duration,
) -> Vec<ExecutorInfo> {
    let now = Instant::now();
    let mut out: Vec<Option<ExecutorInfo>> = vec![None; executors.len()];
    {
        let mut kept = PROBED.lock().unwrap_or_else(|e| e.into_inner());
        kept.retain(|_, p| p.expires > now);
        for (slot, (e, _, expires)) in out.iter_mut().zip(executors) {
            if expires.is_none() {
                continue;
            }
            if let Some(p) = kept.get(&(e.name.clone(), e.address.clone())) {
                let mut info = p.info.clone();
                if let ExecutorState::Available(s) = &mut info.state {
                    let open_now = crate::client::open_streams(&e.address);
                    s.load = corrected_load(s.load, p.open_then, open_now, p.slots);
                }
                *slot = Some(info);
            }
        }
    }
    let missing: Vec<usize> = (0..executors.len()).filter(|&i| out[i].is_none()).collect();
    let probed = block_on(async {
        let handles: Vec<_> = missing
            .iter()
            .map(|&i| {
                let (e, cost, _) = &executors[i];
                let (e, cost) = (e.clone(), *cost);
                tokio::spawn(async move {
                    let open_then = crate::client::open_streams(&e.address);
                    let (info, slots) = probe_with_slots(&e, cost, timeout).await;
                    (info, slots, open_then)
                })
            })
            .collect();
        let mut got = Vec::with_capacity(handles.len());
        for h in handles {
            got.push(h.await.ok());
        }
        got
    });
    let mut kept = PROBED.lock().unwrap_or_else(|e| e.into_inner());
    for (i, result) in missing.into_iter().zip(probed) {
        let (e, cost, expires) = &executors[i];
        let info = match result {
            Some((info, slots, open_then)) => {
                if let (Some(expires), Some(slots), ExecutorState::Available(_)) =
                    (expires, slots, &info.state)
                {
                    kept.insert(
                        (e.name.clone(), e.address.clone()),
                        Probed {
                            info: info.clone(),
                            expires: *expires,
                            open_then,
                            slots,
                        },
                    );
                }
                info
            }
            None => ExecutorInfo {
                name: e.name.clone(),
                address: e.address.clone(),
                cost_per_hour: *cost,
                state: ExecutorState::Unreachable("probe failed".into()),
            },
        };
        out[i] = Some(info);
    }
    out.into_iter()
        .map(|i| i.expect("every executor has an answer"))
        .collect()
}

/// Probes every executor at once, blocking; results in the order given.
pub fn probe_all(executors: &[(Endpoint, Option<f64>)], timeout: Duration) -> Vec<ExecutorInfo> {
    block_on(async {
        let handles: Vec<_> = executors
            .iter()
            .map(|(e, cost)| {
                let (e, cost) = (e.clone(), *cost);
                tokio::spawn(async move { probe(&e, cost, timeout).await })
            })
            .collect();
        let mut out = Vec::with_capacity(handles.len());
        for (h, (e, cost)) in handles.into_iter().zip(executors) {
            out.push(h.await.unwrap_or_else(|err| ExecutorInfo {
                name: e.name.clone(),
                address: e.address.clone(),
                cost_per_hour: *cost,
                state: ExecutorState::Unreachable(format!("probe failed: {err}")),
            }));
        }
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_load_counts_the_streams_opened_and_closed_since() {
        assert_eq!(corrected_load(0.25, 2, 2, 8), 0.25);
        assert_eq!(corrected_load(0.25, 2, 4, 8), 0.5);
        assert_eq!(corrected_load(0.25, 2, 0, 8), 0.0);
        assert_eq!(corrected_load(0.0, 3, 0, 8), 0.0);
        assert_eq!(corrected_load(0.0, 0, 1, 0), 1.0);
    }
}
