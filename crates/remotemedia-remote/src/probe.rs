//! Asking executors what they offer before placing anything on them.

use std::time::Duration;

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
) -> Result<(ExecutorStatus, Option<f64>), RemoteError> {
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
    let start = std::time::Instant::now();
    let (state, advertised) = match tokio::time::timeout(timeout, status(endpoint, timeout)).await {
        Ok(Ok((s, adv))) => (ExecutorState::Available(s), adv),
        Ok(Err(e)) => (ExecutorState::Unreachable(short_reason(&e)), None),
        Err(_) => (
            ExecutorState::Unreachable(format!("no answer within {timeout:?}")),
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
    ExecutorInfo {
        name: endpoint.name.clone(),
        address: endpoint.address.clone(),
        cost_per_hour: cost.or(advertised),
        state,
    }
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
