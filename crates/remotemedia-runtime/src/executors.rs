//! Where a run's executors come from, and the placement of its nodes on them.
//!
//! The sources are the same for every front door: given executors (the CLI's
//! `--executor`, the SDK's `executors=`), `REMOTEMEDIA_EXECUTORS`, `remotemedia.toml`
//! (or another config file), pools discovered through DNS, and nodes' own `host`.
//! Each executor is asked for its capabilities (one found through DNS only when this
//! process has no answer of it from within its pool's TTL), this machine's are
//! detected, and every node is placed by the policy.

use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use remotemedia_core::manifest::Pipeline;
use remotemedia_core::placement::{self, ExecutorInfo, Placement, PlacementError, Policy};
use remotemedia_remote::client::Endpoint;
use remotemedia_remote::config::{self, ExecutorConfig};
use remotemedia_remote::detect::{self, LocalCapabilities};
use remotemedia_remote::discovery::{self, Pool};
use remotemedia_remote::probe::{probe_all_cached, PROBE_TIMEOUT};

/// Printed under a placement refusal when no executor was configured at all.
pub const NO_EXECUTORS_HINT: &str = "hint: no remote executors are configured; add one with \
     --executor NAME=HOST:PORT, REMOTEMEDIA_EXECUTORS or [[executors]] in remotemedia.toml";

/// What the caller says about executors; the environment and `remotemedia.toml` add
/// to it.
#[derive(Debug, Clone, Default)]
pub struct ExecutorSources {
    /// Executors given by the caller: `NAME=HOST:PORT`, `NAME=https://HOST:PORT`,
    /// `dns+srv://NAME`, `dns://NAME:PORT`, optionally as `POOL=URL`.
    pub executors: Vec<String>,
    /// CA certificate(s) for `https://` executors without a `ca` of their own (else
    /// `REMOTEMEDIA_EXECUTOR_CA`, else the system's trust store).
    pub executor_ca: Option<PathBuf>,
    /// The DNS server (`IP:PORT`) to discover executors with (else
    /// `REMOTEMEDIA_DNS_SERVER`, else the system resolver).
    pub dns_server: Option<String>,
    /// Placement policy: `greedy` (the default when `None`), `balanced`, `latency`,
    /// `cost`.
    pub policy: Option<String>,
    /// Executor configuration file (default: `remotemedia.toml` in the working
    /// directory, when there is one).
    pub config: Option<PathBuf>,
    /// Bearer token file for executors without a token file of their own.
    pub token_file: Option<PathBuf>,
}

/// A placement with everything it was computed from.
pub struct Placed {
    /// This machine.
    pub local: LocalCapabilities,
    /// Every executor considered, as probed.
    pub executors: Vec<ExecutorInfo>,
    /// How to reach each of them.
    pub endpoints: Vec<Endpoint>,
    /// The placement, or every node that fits nowhere.
    pub placement: Result<Placement, PlacementError>,
    /// The pools discovered through DNS, as resolved for this placement.
    pub pools: Vec<Pool>,
    /// What the caller should be warned about (a token sent in clear).
    pub warnings: Vec<String>,
}

/// The DNS server to discover executors with: the sources' own, else
/// `REMOTEMEDIA_DNS_SERVER`, else none (the system resolver).
fn dns_server(sources: &ExecutorSources) -> Result<Option<std::net::SocketAddr>, String> {
    let spec = match &sources.dns_server {
        Some(s) => Some(s.clone()),
        None => std::env::var(discovery::DNS_SERVER_ENV)
            .ok()
            .filter(|v| !v.trim().is_empty()),
    };
    spec.map(|s| discovery::parse_dns_server(&s).map_err(|e| e.to_string()))
        .transpose()
}

/// Whether a run needs the placement step: some executor is configured, or some node
/// names a host or has capability requirements. A plain pipeline needs none.
pub fn needs_placement(pipeline: &Pipeline, sources: &ExecutorSources) -> bool {
    !sources.executors.is_empty()
        || sources.config.is_some()
        || std::env::var(config::EXECUTORS_ENV).is_ok_and(|v| !v.trim().is_empty())
        || Path::new(config::CONFIG_FILE).is_file()
        || pipeline
            .nodes
            .iter()
            .any(|n| n.host.is_some() || n.capabilities.is_some())
}

/// Gathers and probes executors and places every node. `Err` is a usage or
/// configuration problem, already worded for the user.
pub fn place(pipeline: &Pipeline, sources: &ExecutorSources) -> Result<Placed, String> {
    let policy: Policy = sources.policy.as_deref().unwrap_or("greedy").parse()?;
    let server = dns_server(sources)?;
    let configs = config::collect(&sources.executors, sources.config.as_deref())
        .map_err(|e| e.to_string())?;
    let (mut configs, pools) = discovery::expand(configs, server).map_err(|e| e.to_string())?;
    // A `host` that names no configured executor is an executor of its own.
    for n in &pipeline.nodes {
        let Some(host) = &n.host else { continue };
        let bare = host.rsplit_once(':').map_or(host.as_str(), |(h, _)| h);
        let known = configs
            .iter()
            .any(|c| &c.address == host || &c.name == host || c.name == bare);
        if !known {
            configs.push(ExecutorConfig {
                name: host.clone(),
                address: host.clone(),
                discover: None,
                tls: false,
                ca: None,
                token_file: None,
                cost_per_hour: None,
                server_name: None,
            });
        }
    }
    let default_token = match &sources.token_file {
        Some(f) => Some(config::read_token(f).map_err(|e| e.to_string())?),
        None => None,
    };
    let default_ca =
        config::default_ca(sources.executor_ca.as_deref()).map_err(|e| e.to_string())?;
    let endpoints: Vec<Endpoint> = configs
        .iter()
        .map(|c| c.endpoint(default_token.as_deref(), default_ca.as_ref()))
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    let warnings = plaintext_token_warning(&endpoints).into_iter().collect();
    let local = detect::local_capabilities(None).map_err(|e| e.to_string())?;
    let executors = if endpoints.is_empty() {
        Vec::new()
    } else {
        // An executor found through DNS keeps its answer while its pool's resolution
        // stands; static executors are asked every time.
        let list: Vec<(Endpoint, Option<f64>, Option<Instant>)> = endpoints
            .iter()
            .cloned()
            .zip(&configs)
            .map(|(e, c)| {
                let expires = discovered_expiry(&pools, &c.name, &c.address);
                (e, c.cost_per_hour, expires)
            })
            .collect();
        probe_all_cached(&list, PROBE_TIMEOUT)
    };
    let placement = placement::place(pipeline, &local.set, &executors, policy);
    Ok(Placed {
        local,
        executors,
        endpoints,
        placement,
        pools,
        warnings,
    })
}

/// When the resolution that found the executor `name` at `address` stops standing, if
/// one of `pools` found it.
fn discovered_expiry(pools: &[Pool], name: &str, address: &str) -> Option<Instant> {
    let pool = pools
        .iter()
        .find(|p| p.addresses.iter().any(|a| a == address) && p.executor_name(address) == name)?;
    let left = (pool.resolved_at + pool.ttl)
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    Some(Instant::now() + left)
}

/// The warning for executors a bearer token would reach in clear: plaintext and not on
/// this machine. `None` when there are none.
pub fn plaintext_token_warning(endpoints: &[Endpoint]) -> Option<String> {
    let exposed: Vec<String> = endpoints
        .iter()
        .filter(|e| e.token.is_some() && e.tls.is_none() && !e.is_loopback())
        .map(|e| format!("{} ({})", e.name, e.address))
        .collect();
    (!exposed.is_empty()).then(|| {
        format!(
            "the bearer token crosses the network in clear to {}: write the address as \
             https://HOST:PORT to send it over TLS",
            exposed.join(", ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use remotemedia_remote::tls::ClientTls;

    #[test]
    fn a_token_in_clear_off_this_machine_is_warned_about() {
        let token = Some("t".to_string());
        let plain = |name: &str, address: &str, token: &Option<String>| {
            Endpoint::plain(name, address, token.clone())
        };
        let tls = |name: &str, address: &str| Endpoint {
            tls: Some(ClientTls {
                server_name: "gpu".into(),
                ca: None,
            }),
            ..plain(name, address, &token)
        };
        let on_this_machine = [
            plain("a", "127.0.0.1:1", &token),
            plain("b", "localhost:2", &token),
            plain("c", "[::1]:3", &token),
            plain("d", "127.3.4.5:4", &token),
        ];
        assert_eq!(plaintext_token_warning(&on_this_machine), None);
        let safe = [tls("e", "10.0.0.5:5"), plain("f", "10.0.0.6:6", &None)];
        assert_eq!(plaintext_token_warning(&safe), None);
        let exposed = [
            plain("g", "10.0.0.7:7", &token),
            tls("h", "10.0.0.8:8"),
            plain("i", "gpu-box:9", &token),
        ];
        assert_eq!(
            plaintext_token_warning(&exposed).as_deref(),
            Some(
                "the bearer token crosses the network in clear to g (10.0.0.7:7), \
                 i (gpu-box:9): write the address as https://HOST:PORT to send it over TLS"
            )
        );
    }

    #[test]
    fn a_plain_pipeline_needs_no_placement_but_a_host_or_an_executor_does() {
        let registry = remotemedia_core::Registry::builtin();
        let load = |text: &str| {
            remotemedia_core::manifest::load_str(
                text,
                remotemedia_core::manifest::Format::Yaml,
                &registry,
            )
            .unwrap()
        };
        let plain =
            load("version: v1\nmetadata: {name: p}\nnodes: [{id: a, node_type: PassThrough}]\n");
        let hosted = load(
            "version: v1\nmetadata: {name: p}\nnodes: [{id: a, node_type: PassThrough, host: \"127.0.0.1:1\"}]\n",
        );
        // The environment and the working directory may configure executors of their
        // own; only the pipeline's and the caller's part is asserted when they do not.
        let ambient = std::env::var(config::EXECUTORS_ENV).is_ok_and(|v| !v.trim().is_empty())
            || Path::new(config::CONFIG_FILE).is_file();
        let none = ExecutorSources::default();
        if !ambient {
            assert!(!needs_placement(&plain, &none));
        }
        assert!(needs_placement(&hosted, &none));
        let given = ExecutorSources {
            executors: vec!["gpu=127.0.0.1:1".into()],
            ..ExecutorSources::default()
        };
        assert!(needs_placement(&plain, &given));
    }
}
