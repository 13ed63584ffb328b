//! `remotemedia serve`: run a remote executor until SIGTERM or Ctrl-C.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use remotemedia_remote::config::read_token;
use remotemedia_remote::detect;
use remotemedia_remote::server::{serve_blocking, ServeConfig};

use crate::cli::ServeArgs;
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
    if token.is_none() && !listen.ip().is_loopback() {
        tracing::warn!(
            "listening on {listen} without a token: only loopback clients will be accepted"
        );
    }
    let mut config = ServeConfig::new(caps.set, super::registry(), listen.port());
    config.listen = listen;
    config.token = token;
    config.allow_python_source = args.allow_python_source;
    config.max_streams = args.max_streams;
    config.max_message_bytes = args.max_message_bytes;
    config.metrics_listen = metrics_listen;
    config.drain_timeout = Duration::from_secs(args.drain_timeout);
    config.cost_per_hour = args.cost_per_hour;
    let result = serve_blocking(config, |server| {
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
