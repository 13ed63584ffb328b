//! `remotemedia serve`: run a remote executor until SIGTERM or Ctrl-C.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use remotemedia_remote::config::read_token;
use remotemedia_remote::detect;
use remotemedia_remote::server::{serve_blocking, ServeConfig};

use crate::cli::ServeArgs;

const MIB: usize = 1 << 20;
use crate::{EXIT_INVALID, EXIT_RUN_FAILED};

fn parse_addr(what: &str, text: &str) -> Result<SocketAddr, String> {
    text.parse()
        .map_err(|_| format!("{what} `{text}` is not IP:PORT (e.g. 127.0.0.1:50051)"))
}

/// Serves until a signal, then drains open streams. Prints `listening on ADDR` (and
/// `metrics on ADDR`) on stdout once ready.
pub fn run(args: ServeArgs) -> anyhow::Result<u8> {
    let listen = match parse_addr("--listen", &args.listen) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(EXIT_INVALID);
        }
    };
    let metrics_listen = match args
        .metrics_listen
        .as_deref()
        .map(|m| parse_addr("--metrics-listen", m))
    {
        None => None,
        Some(Ok(a)) => Some(a),
        Some(Err(e)) => {
            eprintln!("error: {e}");
            return Ok(EXIT_INVALID);
        }
    };
    if args.max_streams == 0 || args.max_message_bytes == 0 {
        eprintln!("error: --max-streams and --max-message-bytes must be at least 1");
        return Ok(EXIT_INVALID);
    }
    if args.max_connections == 0
        || args.memory_budget_mb == 0
        || args.max_request_memory_mb == 0
        || args.max_nodes == 0
        || args.max_workers == Some(0)
    {
        eprintln!(
            "error: --max-connections, --memory-budget-mb, --max-request-memory-mb, \
             --max-nodes and --max-workers must be at least 1"
        );
        return Ok(EXIT_INVALID);
    }
    let seconds = |flag: &str, v: f64| match Duration::try_from_secs_f64(v) {
        Ok(d) if !d.is_zero() => Ok(d),
        _ => Err(format!(
            "{flag} must be a positive number of seconds, not {v}"
        )),
    };
    let (handshake_timeout, idle_timeout) = match (
        seconds("--handshake-timeout", args.handshake_timeout),
        seconds("--idle-timeout", args.idle_timeout),
    ) {
        (Ok(h), Ok(i)) => (h, i),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("error: {e}");
            return Ok(EXIT_INVALID);
        }
    };
    let token = match args.token_file.as_deref().map(read_token) {
        None => None,
        Some(Ok(t)) => Some(t),
        Some(Err(e)) => {
            eprintln!("error: {e}");
            return Ok(EXIT_INVALID);
        }
    };
    let caps = match detect::local_capabilities(args.capabilities.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(EXIT_INVALID);
        }
    };
    let mut config = ServeConfig::new(caps.set, super::registry(), listen.port());
    config.listen = listen;
    config.token = token;
    config.allow_python_source = args.allow_python_source;
    config.max_streams = args.max_streams;
    config.max_message_bytes = args.max_message_bytes;
    config.metrics_listen = metrics_listen;
    config.drain_timeout = Duration::from_secs(args.drain_timeout);
    config.cost_per_hour = args.cost_per_hour;
    config.handshake_timeout = handshake_timeout;
    config.max_connections = args.max_connections;
    config.idle_timeout = idle_timeout;
    config.memory_budget_bytes = args.memory_budget_mb.saturating_mul(MIB);
    config.max_request_memory_bytes = args.max_request_memory_mb.saturating_mul(MIB);
    config.max_nodes = args.max_nodes;
    config.max_timeout_nodes = args.max_timeout_nodes;
    if let Some(n) = args.max_workers {
        config.max_workers = n;
    }
    let without_token = config.token.is_none();
    let result = serve_blocking(config, |server| {
        // Names the bound address: with port 0 the requested one says nothing.
        if without_token && !server.local_addr.ip().is_loopback() {
            tracing::warn!(
                "listening on {} without a token: only loopback clients will be accepted",
                server.local_addr
            );
        }
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "listening on {}", server.local_addr);
        if let Some(m) = server.metrics_addr {
            let _ = writeln!(out, "metrics on {m}");
        }
        let _ = out.flush();
    });
    match result {
        Ok(true) => {
            eprintln!("shut down after draining open streams");
            Ok(0)
        }
        Ok(false) => {
            eprintln!("shut down with streams still open at the drain deadline");
            Ok(0)
        }
        Err(e) => {
            eprintln!("error: {e}");
            Ok(EXIT_RUN_FAILED)
        }
    }
}
