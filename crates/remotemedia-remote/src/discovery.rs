//! Executors found through DNS, the way a Kubernetes headless Service publishes its
//! ready pods:
//!
//! - `dns+srv://_grpc._tcp.remotemedia-executor.NAMESPACE.svc.cluster.local`: the SRV
//!   records of the name, each a host and port (the host's A/AAAA records give the
//!   addresses);
//! - `dns://remotemedia-executor:50051`: every A/AAAA record of the name, on one port.
//!
//! Each address found becomes an executor of its own, named `POOL@ADDRESS`, with the
//! pool's token file, cost and TLS settings; over TLS its certificate must be valid for
//! the name the address was found under (the SRV target, or the name of a `dns://`
//! URL). Pools are resolved when a run or plan places its nodes. A resolution stands
//! for the records' TTL, clamped to [`MIN_TTL`]..=[`MAX_TTL`]: a process that places
//! nodes again within it (the SDK's runs, one after the other) reuses it, and the first
//! placement after it asks again, so addresses that appeared are used from then on and
//! addresses that left get no new streams. The capabilities of the addresses found are
//! kept as long (`probe::probe_all_cached`). The system resolver is asked unless a server
//! is given (`--dns-server`, `REMOTEMEDIA_DNS_SERVER`), which is asked over UDP and TCP.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant, SystemTime};

use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::TokioResolver;

use crate::config::ExecutorConfig;
use crate::error::RemoteError;
use crate::runtime::block_on;

/// Environment variable naming the DNS server to ask instead of the system resolver.
pub const DNS_SERVER_ENV: &str = "REMOTEMEDIA_DNS_SERVER";
/// Scheme of SRV discovery.
pub const SRV_SCHEME: &str = "dns+srv://";
/// Scheme of A/AAAA discovery.
pub const HOST_SCHEME: &str = "dns://";
/// Shortest time a resolution stands.
pub const MIN_TTL: Duration = Duration::from_secs(1);
/// Longest time a resolution stands.
pub const MAX_TTL: Duration = Duration::from_secs(30);
/// How long one DNS query may take.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(2);
/// How many times a query is sent before the server counts as not answering.
pub const QUERY_ATTEMPTS: usize = 2;

/// A discovery address, as given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DiscoveryUrl {
    /// `dns+srv://NAME`: SRV records.
    Srv {
        /// The name whose SRV records are read.
        name: String,
    },
    /// `dns://NAME:PORT`: A/AAAA records, all on `port`.
    Host {
        /// The name whose addresses are read.
        name: String,
        /// The port every address serves on.
        port: u16,
    },
}

/// Whether `spec` is a discovery address rather than `HOST:PORT`.
pub fn is_discovery(spec: &str) -> bool {
    spec.starts_with(SRV_SCHEME) || spec.starts_with(HOST_SCHEME)
}

fn check_name(name: &str, url: &str) -> Result<(), RemoteError> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.trim_end_matches('.').split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        });
    if ok {
        Ok(())
    } else {
        Err(RemoteError::Config(format!(
            "`{url}`: `{name}` is not a DNS name"
        )))
    }
}

impl DiscoveryUrl {
    /// Parses `dns+srv://NAME` or `dns://NAME:PORT`.
    pub fn parse(url: &str) -> Result<Self, RemoteError> {
        let url = url.trim();
        if let Some(name) = url.strip_prefix(SRV_SCHEME) {
            let name = name.trim_end_matches('/');
            if name.contains(':') {
                return Err(RemoteError::Config(format!(
                    "`{url}`: SRV records carry the port; give no port after the name"
                )));
            }
            check_name(name, url)?;
            return Ok(Self::Srv { name: name.into() });
        }
        if let Some(rest) = url.strip_prefix(HOST_SCHEME) {
            let rest = rest.trim_end_matches('/');
            let Some((name, port)) = rest.rsplit_once(':') else {
                return Err(RemoteError::Config(format!(
                    "`{url}`: expected dns://NAME:PORT (every address of NAME serves on PORT)"
                )));
            };
            let port =
                port.parse::<u16>().ok().filter(|&p| p > 0).ok_or_else(|| {
                    RemoteError::Config(format!("`{url}`: `{port}` is not a port"))
                })?;
            check_name(name, url)?;
            return Ok(Self::Host {
                name: name.into(),
                port,
            });
        }
        Err(RemoteError::Config(format!(
            "`{url}`: expected dns+srv://NAME or dns://NAME:PORT"
        )))
    }

    /// The DNS name asked.
    pub fn name(&self) -> &str {
        match self {
            Self::Srv { name } | Self::Host { name, .. } => name,
        }
    }

    /// The record type asked first (`SRV` or `A/AAAA`).
    pub fn record_type(&self) -> &'static str {
        match self {
            Self::Srv { .. } => "SRV",
            Self::Host { .. } => "A/AAAA",
        }
    }

    /// A pool name for executors given without one: the first label of the name
    /// that is not a service or protocol label (`_grpc`, `_tcp`).
    pub fn pool_name(&self) -> String {
        self.name()
            .split('.')
            .find(|l| !l.starts_with('_') && !l.is_empty())
            .unwrap_or(self.name())
            .to_string()
    }
}

/// How long a resolution whose records have `ttl_secs` stands.
pub fn clamp_ttl(ttl_secs: u32) -> Duration {
    Duration::from_secs(u64::from(ttl_secs)).clamp(MIN_TTL, MAX_TTL)
}

/// Parses a `--dns-server` value, `HOST:PORT` with an IP address for HOST.
pub fn parse_dns_server(spec: &str) -> Result<SocketAddr, RemoteError> {
    spec.trim().parse::<SocketAddr>().map_err(|_| {
        RemoteError::Config(format!(
            "DNS server `{spec}` is not IP:PORT (e.g. 127.0.0.1:53 or [::1]:53)"
        ))
    })
}

/// One resolution of a pool.
#[derive(Clone, Debug)]
pub struct Pool {
    /// The pool's name (the executor's configured name, or one derived from the URL).
    pub name: String,
    /// The discovery address as given.
    pub url: String,
    /// What was asked (`SRV` or `A/AAAA`).
    pub record_type: &'static str,
    /// Who was asked: `system resolver` or the server's address.
    pub server: String,
    /// When it was resolved.
    pub resolved_at: SystemTime,
    /// The records' smallest TTL, in seconds, as served.
    pub record_ttl: u32,
    /// How long this resolution stands ([`clamp_ttl`] of `record_ttl`).
    pub ttl: Duration,
    /// `HOST:PORT` of each address found, sorted.
    pub addresses: Vec<String>,
    /// The DNS name each of `addresses` was found under, in the same order: its SRV
    /// target (without the final dot), or the name of a `dns://` URL.
    pub hosts: Vec<String>,
}

impl Pool {
    /// The executor name of one of its addresses.
    pub fn executor_name(&self, address: &str) -> String {
        format!("{}@{address}", self.name)
    }
}

fn resolver(server: Option<SocketAddr>) -> Result<TokioResolver, RemoteError> {
    let mut builder = match server {
        Some(addr) => {
            let mut udp = ConnectionConfig::udp();
            udp.port = addr.port();
            let mut tcp = ConnectionConfig::tcp();
            tcp.port = addr.port();
            let mut ns = NameServerConfig::udp_and_tcp(addr.ip());
            ns.connections = vec![udp, tcp];
            TokioResolver::builder_with_config(
                ResolverConfig::from_name_servers(vec![ns]),
                TokioRuntimeProvider::default(),
            )
        }
        None => TokioResolver::builder_tokio().map_err(|e| {
            RemoteError::Config(format!("cannot read the system's DNS configuration: {e}"))
        })?,
    };
    let opts = builder.options_mut();
    opts.timeout = QUERY_TIMEOUT;
    opts.attempts = QUERY_ATTEMPTS;
    opts.cache_size = 0;
    builder
        .build()
        .map_err(|e| RemoteError::Config(format!("cannot set up the DNS resolver: {e}")))
}

fn server_name(server: Option<SocketAddr>) -> String {
    server.map_or_else(
        || "the system resolver".to_string(),
        |s| format!("DNS server {s} (UDP+TCP)"),
    )
}

/// Why a lookup of `records` records of `name` failed, in words that tell a name
/// that does not exist, a name without such records and a server that did not answer
/// (timed out, refused, garbled) apart.
fn lookup_failure(e: &hickory_resolver::net::NetError, records: &str, name: &str) -> String {
    if e.is_nx_domain() {
        format!("`{name}` does not exist (NXDOMAIN)")
    } else if e.is_no_records_found() {
        format!("no {records} records for `{name}`")
    } else {
        format!("no answer about the {records} records of `{name}`: {e}")
    }
}

/// Addresses of `name` (A and AAAA), with their smallest TTL.
async fn addresses_of(resolver: &TokioResolver, name: &str) -> Result<(Vec<IpAddr>, u32), String> {
    let lookup = resolver
        .lookup_ip(name)
        .await
        .map_err(|e| lookup_failure(&e, "A/AAAA", name))?;
    let ttl = lookup
        .as_lookup()
        .answers()
        .iter()
        .map(|r| r.ttl)
        .min()
        .unwrap_or(0);
    let ips: Vec<IpAddr> = lookup.iter().collect();
    if ips.is_empty() {
        return Err(format!("no A/AAAA records for `{name}`"));
    }
    Ok((ips, ttl))
}

/// Sorts `(address, name)` pairs by address, each address once (the first name).
fn sorted(mut found: Vec<(String, String)>) -> Vec<(String, String)> {
    found.sort();
    found.dedup_by(|a, b| a.0 == b.0);
    found
}

/// Every address found, as `(HOST:PORT, DNS name it was found under)`, and the
/// records' smallest TTL.
async fn resolve_inner(
    url: &DiscoveryUrl,
    resolver: &TokioResolver,
) -> Result<(Vec<(String, String)>, u32), String> {
    match url {
        DiscoveryUrl::Host { name, port } => {
            let (ips, ttl) = addresses_of(resolver, name).await?;
            let host = name.trim_end_matches('.');
            let out = ips
                .into_iter()
                .map(|ip| (SocketAddr::new(ip, *port).to_string(), host.to_string()))
                .collect();
            Ok((sorted(out), ttl))
        }
        DiscoveryUrl::Srv { name } => {
            let lookup = resolver
                .srv_lookup(name.as_str())
                .await
                .map_err(|e| lookup_failure(&e, "SRV", name))?;
            let mut ttl = u32::MAX;
            let mut targets = Vec::new();
            for r in lookup.answers() {
                if let RData::SRV(srv) = &r.data {
                    ttl = ttl.min(r.ttl);
                    targets.push((srv.target.to_string(), srv.port));
                }
            }
            if targets.is_empty() {
                return Err(format!("no SRV records for `{name}`"));
            }
            let mut out = Vec::new();
            for (target, port) in targets {
                let (ips, t) = addresses_of(resolver, &target)
                    .await
                    .map_err(|e| format!("SRV target of `{name}`: {e}"))?;
                ttl = ttl.min(t);
                let host = target.trim_end_matches('.');
                out.extend(
                    ips.into_iter()
                        .map(|ip| (SocketAddr::new(ip, port).to_string(), host.to_string())),
                );
            }
            Ok((sorted(out), ttl))
        }
    }
}

/// Resolves one pool. A name that does not resolve, or a server that does not answer
/// within [`QUERY_TIMEOUT`] × [`QUERY_ATTEMPTS`], is an error naming the URL, the
/// record type and who was asked.
pub async fn resolve(
    pool: &str,
    url: &str,
    server: Option<SocketAddr>,
) -> Result<Pool, RemoteError> {
    let parsed = DiscoveryUrl::parse(url)?;
    let resolver = resolver(server)?;
    let asked = server_name(server);
    let fail = |why: String| {
        RemoteError::Config(format!(
            "cannot discover executors of `{pool}` at `{url}`: {why} (asked {asked} for {} records)",
            parsed.record_type()
        ))
    };
    // Two rounds at most (SRV, then each target's addresses), each bounded by the
    // resolver's own timeouts; this outer bound only guards against a stuck resolver.
    let bound = QUERY_TIMEOUT * (QUERY_ATTEMPTS as u32) * 2 + Duration::from_secs(1);
    let (found, record_ttl) =
        match tokio::time::timeout(bound, resolve_inner(&parsed, &resolver)).await {
            Ok(Ok(found)) => found,
            Ok(Err(why)) => return Err(fail(why)),
            Err(_) => return Err(fail(format!("no answer within {bound:?}"))),
        };
    let ttl = clamp_ttl(record_ttl);
    let (addresses, hosts) = found.into_iter().unzip();
    tracing::info!(
        pool,
        url,
        record_type = parsed.record_type(),
        server = %asked,
        addresses = ?addresses,
        ttl_s = ttl.as_secs(),
        "discovered executors"
    );
    Ok(Pool {
        name: pool.to_string(),
        url: url.to_string(),
        record_type: parsed.record_type(),
        server: asked,
        resolved_at: SystemTime::now(),
        record_ttl,
        ttl,
        addresses,
        hosts,
    })
}

/// Resolutions that still stand, by (pool, URL, server), with when they expire.
type Resolved = HashMap<(String, String, Option<SocketAddr>), (Pool, Instant)>;

static RESOLVED: LazyLock<Mutex<Resolved>> = LazyLock::new(|| Mutex::new(HashMap::new()));

/// [`resolve`], unless this process resolved the same pool at the same server less than
/// its TTL ago: then that resolution (with its `resolved_at`). Failures are not kept.
pub async fn resolve_cached(
    pool: &str,
    url: &str,
    server: Option<SocketAddr>,
) -> Result<Pool, RemoteError> {
    let key = (pool.to_string(), url.to_string(), server);
    let now = Instant::now();
    {
        let mut resolved = RESOLVED.lock().unwrap_or_else(|e| e.into_inner());
        resolved.retain(|_, (_, expires)| *expires > now);
        if let Some((p, _)) = resolved.get(&key) {
            return Ok(p.clone());
        }
    }
    let p = resolve(pool, url, server).await?;
    let expires = Instant::now() + p.ttl;
    RESOLVED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key, (p.clone(), expires));
    Ok(p)
}

/// Replaces every executor configured with `discover` by one executor per address
/// found (its token file, cost and TLS settings carried over; over TLS, the name it was
/// found under is the name its certificate is checked against), keeping the order; static executors
/// stay as they are. Pools are resolved at once, blocking, unless a resolution of this
/// process still stands ([`resolve_cached`]).
pub fn expand(
    configs: Vec<ExecutorConfig>,
    server: Option<SocketAddr>,
) -> Result<(Vec<ExecutorConfig>, Vec<Pool>), RemoteError> {
    let wanted: Vec<(String, String)> = configs
        .iter()
        .filter_map(|c| c.discover.clone().map(|d| (c.name.clone(), d)))
        .collect();
    if wanted.is_empty() {
        return Ok((configs, Vec::new()));
    }
    let results =
        block_on(async {
            let handles: Vec<_> = wanted
                .into_iter()
                .map(|(name, url)| {
                    tokio::spawn(async move { resolve_cached(&name, &url, server).await })
                })
                .collect();
            let mut out = Vec::with_capacity(handles.len());
            for h in handles {
                out.push(h.await.unwrap_or_else(|e| {
                    Err(RemoteError::Config(format!("DNS lookup failed: {e}")))
                }));
            }
            out
        });
    let pools: Vec<Pool> = results.into_iter().collect::<Result<_, _>>()?;
    let mut out = Vec::new();
    let mut next = pools.iter();
    for c in configs {
        if c.discover.is_none() {
            out.push(c);
            continue;
        }
        let pool = next.next().expect("one pool per discovering executor");
        for (a, host) in pool.addresses.iter().zip(&pool.hosts) {
            out.push(ExecutorConfig {
                name: pool.executor_name(a),
                address: a.clone(),
                discover: None,
                tls: c.tls,
                ca: c.ca.clone(),
                token_file: c.token_file.clone(),
                cost_per_hour: c.cost_per_hour,
                server_name: Some(host.clone()),
            });
        }
    }
    Ok((out, pools))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_discovery_urls() {
        assert_eq!(
            DiscoveryUrl::parse("dns+srv://_grpc._tcp.remotemedia-executor.ml.svc.cluster.local")
                .unwrap(),
            DiscoveryUrl::Srv {
                name: "_grpc._tcp.remotemedia-executor.ml.svc.cluster.local".into()
            }
        );
        let host = DiscoveryUrl::parse("dns://remotemedia-executor:50051").unwrap();
        assert_eq!(
            host,
            DiscoveryUrl::Host {
                name: "remotemedia-executor".into(),
                port: 50051
            }
        );
        assert_eq!(host.pool_name(), "remotemedia-executor");
        assert_eq!(
            DiscoveryUrl::parse("dns+srv://_grpc._tcp.pods.ns.svc")
                .unwrap()
                .pool_name(),
            "pods"
        );
        for bad in [
            "dns://remotemedia-executor",
            "dns://remotemedia-executor:0",
            "dns://remotemedia-executor:port",
            "dns+srv://name:50051",
            "dns+srv://",
            "dns+srv://a..b",
            "dns://bad name:1",
            "http://x:1",
        ] {
            assert!(DiscoveryUrl::parse(bad).is_err(), "{bad} parsed");
        }
        assert!(is_discovery("dns://a:1") && is_discovery("dns+srv://a"));
        assert!(!is_discovery("a:1"));
    }

    #[test]
    fn clamps_ttls() {
        assert_eq!(clamp_ttl(0), MIN_TTL);
        assert_eq!(clamp_ttl(1), Duration::from_secs(1));
        assert_eq!(clamp_ttl(7), Duration::from_secs(7));
        assert_eq!(clamp_ttl(30), MAX_TTL);
        assert_eq!(clamp_ttl(86_400), MAX_TTL);
        assert_eq!(clamp_ttl(u32::MAX), MAX_TTL);
    }

    #[test]
    fn parses_dns_servers() {
        assert_eq!(
            parse_dns_server("127.0.0.1:5353").unwrap(),
            "127.0.0.1:5353".parse().unwrap()
        );
        assert!(parse_dns_server("[::1]:53").is_ok());
        assert!(parse_dns_server("localhost:53").is_err());
        assert!(parse_dns_server("127.0.0.1").is_err());
    }
}
