//! `remotemedia serve`: run a remote executor until SIGTERM or Ctrl-C.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use remotemedia_remote::config::read_token;
use remotemedia_remote::detect;
use remotemedia_remote::server::{serve_blocking, ServeConfig};

use remotemedia_core::Registry;
use remotemedia_python::{Runtime, ServedPython};
use remotemedia_remote::pb::ServedPythonNode;

use remotemedia_remote::frontend::SharedFrontend;
use remotemedia_sessions::{Catalog, CatalogError, SessionLimits, SessionServer};

use crate::cli::ServeArgs;

const MIB: usize = 1 << 20;
use crate::{EXIT_INVALID, EXIT_RUN_FAILED};

/// The Python classes this executor serves, from `--python-node`, `--python-path` and
/// `--python-runtime`.
fn served_python(args: &ServeArgs) -> Result<ServedPython, String> {
    let mut classes = Vec::new();
    for text in &args.python_nodes {
        let class: remotemedia_python::ServedClass =
            text.parse().map_err(|e| format!("--python-node {e}"))?;
        if classes
            .iter()
            .any(|c: &remotemedia_python::ServedClass| c.name == class.name)
        {
            return Err(format!(
                "--python-node: the name `{}` is given twice",
                class.name
            ));
        }
        classes.push(class);
    }
    let runtime = Runtime::from_name(&args.python_runtime)
        .filter(|r| *r != Runtime::Auto && r.compiled_in())
        .ok_or_else(|| {
            let hosts: Vec<&str> = [Runtime::Process, Runtime::CPython, Runtime::RustPython]
                .into_iter()
                .filter(|r| r.compiled_in())
                .map(Runtime::name)
                .collect();
            format!(
                "--python-runtime `{}` is not a Python host of this build; expected one of {}",
                args.python_runtime,
                hosts.join(", ")
            )
        })?;
    let mut python_path = Vec::new();
    for dir in &args.python_path {
        let abs = std::path::absolute(dir)
            .map_err(|e| format!("--python-path {}: {e}", dir.display()))?;
        if !abs.is_dir() {
            return Err(format!("--python-path {}: not a directory", dir.display()));
        }
        python_path.push(abs.to_string_lossy().into_owned());
    }
    Ok(ServedPython {
        classes,
        python_path,
        runtime,
    })
}

/// The live-session server of `--pipelines`, if given: every manifest of the directory
/// validated and planned now, so that a bad one fails the start.
fn sessions(args: &ServeArgs, token: Option<String>) -> Result<Option<SharedFrontend>, String> {
    let Some(dir) = &args.pipelines else {
        return Ok(None);
    };
    if args.max_sessions == 0 || args.max_frame_bytes == 0 {
        return Err("--max-sessions and --max-frame-bytes must be at least 1".into());
    }
    if !(args.max_realtime_factor >= 0.0 && args.max_realtime_factor.is_finite()) {
        return Err(format!(
            "--max-realtime-factor must be 0 (no limit) or a positive number, not {}",
            args.max_realtime_factor
        ));
    }
    for origin in &args.allowed_origins {
        if !(origin.starts_with("http://") || origin.starts_with("https://")) {
            return Err(format!(
                "--allowed-origin `{origin}` is not an origin like https://app.example.com"
            ));
        }
    }
    let limits = SessionLimits {
        max_sessions: args.max_sessions,
        max_frame_bytes: args.max_frame_bytes,
        max_realtime_factor: args.max_realtime_factor,
        idle_timeout: seconds("--session-idle-timeout", args.session_idle_timeout)?,
        end_timeout: seconds("--session-end-timeout", args.session_end_timeout)?,
        allowed_origins: args.allowed_origins.clone(),
    };
    // The operator writes these manifests (clients only pick one by name and set the
    // params it declares overridable), so every node type of this binary is allowed.
    let registry = super::registry();
    let catalog = Catalog::load(dir, &registry).map_err(|e| match e {
        CatalogError::Manifests(problems) => format!(
            "--pipelines {}: {} problem{}:\n{}",
            dir.display(),
            problems.len(),
            if problems.len() == 1 { "" } else { "s" },
            problems.join("\n")
        ),
        other => other.to_string(),
    })?;
    tracing::info!(pipelines = ?catalog.names(), "serving live sessions");
    let server = SessionServer::new(catalog, registry, limits, token);
    Ok(Some(SharedFrontend(std::sync::Arc::new(server))))
}

/// A flag's positive number of seconds, or the message saying it is not one.
fn seconds(flag: &str, v: f64) -> Result<Duration, String> {
    match Duration::try_from_secs_f64(v) {
        Ok(d) if !d.is_zero() => Ok(d),
        _ => Err(format!(
            "{flag} must be a positive number of seconds, not {v}"
        )),
    }
}

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
    let token = match args.token_file.as_deref().map(read_token).transpose() {
        Ok(t) => t,
        Err(e) => {
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
    let served = match served_python(&args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(EXIT_INVALID);
        }
    };
    let mut registry = Registry::builtin();
    remotemedia_audio::register(&mut registry);
    remotemedia_speech::register(&mut registry);
    // Clients choose every param: no type that reads or writes this machine's files
    // (MediaReader, MediaWriter), and no source, whose stream no request bounds.
    registry.retain(|f| !f.uses_host_files() && !f.is_source());
    let mut python_nodes = Vec::new();
    if args.allow_python_source {
        tracing::warn!(
            "--allow-python-source: every client that reaches this executor can run code as \
             its user"
        );
        remotemedia_python::register(&mut registry);
    } else if !served.classes.is_empty() {
        python_nodes = served
            .classes
            .iter()
            .map(|c| ServedPythonNode {
                name: c.name.clone(),
                module: c.module.clone(),
                class_name: c.class.clone(),
            })
            .collect();
        remotemedia_python::register_served(&mut registry, served);
    }
    let frontend = match sessions(&args, token.clone()) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(EXIT_INVALID);
        }
    };
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => match remotemedia_remote::tls::server_config(cert, key) {
            Ok(c) => Some(c),
            Err(e) => {
                eprintln!("error: {e}");
                return Ok(EXIT_INVALID);
            }
        },
        _ => None,
    };
    let mut config = ServeConfig::new(caps.set, registry, listen.port());
    config.frontend = frontend;
    config.tls = tls;
    config.python_nodes = python_nodes;
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
    let has_sessions = config.frontend.is_some();
    let has_tls = config.tls.is_some();
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
        if has_sessions {
            let scheme = if has_tls { "wss" } else { "ws" };
            let _ = writeln!(
                out,
                "sessions on {scheme}://{}/v1/sessions/NAME",
                server.local_addr
            );
        }
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
