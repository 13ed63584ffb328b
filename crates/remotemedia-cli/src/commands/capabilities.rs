//! `remotemedia capabilities [--json] [--executor HOST:PORT|https://HOST:PORT]`.

use std::time::Duration;

use remotemedia_core::capabilities::format_gb;
use remotemedia_remote::config::{self, ExecutorConfig};
use remotemedia_remote::{detect, Endpoint, ExecutorClient};

use crate::cli::CapabilitiesArgs;
use crate::{EXIT_INVALID, EXIT_RUN_FAILED};

/// How to reach `--executor`, with its token and, for `https://`, its CA.
fn endpoint(address: &str, args: &CapabilitiesArgs) -> Result<Endpoint, String> {
    let (bare, scheme) = config::split_scheme(address).map_err(|e| format!("--executor {e}"))?;
    let ca = config::default_ca(args.executor_ca.as_deref()).map_err(|e| e.to_string())?;
    let executor = ExecutorConfig {
        name: address.to_string(),
        address: bare.to_string(),
        discover: None,
        tls: scheme == Some(true),
        ca: None,
        token_file: args.token_file.clone(),
        cost_per_hour: None,
        server_name: None,
    };
    executor
        .endpoint(None, ca.as_ref())
        .map_err(|e| e.to_string())
}

/// Prints what an executor offers and serves: capabilities, node types, the Python
/// node classes it runs for clients.
fn executor(address: &str, args: &CapabilitiesArgs) -> anyhow::Result<u8> {
    let endpoint = match endpoint(address, args) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(EXIT_INVALID);
        }
    };
    if let Some(w) =
        remotemedia_runtime::executors::plaintext_token_warning(std::slice::from_ref(&endpoint))
    {
        crate::warn(w);
    }
    let answer = remotemedia_remote::runtime::block_on(async {
        let mut client = ExecutorClient::connect(&endpoint, Duration::from_secs(5)).await?;
        client.capabilities().await
    });
    let caps = match answer {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(EXIT_RUN_FAILED);
        }
    };
    if args.json {
        let v = serde_json::json!({
            "capabilities": caps.capabilities,
            "node_types": caps.node_types,
            "python_nodes": caps.python_nodes,
            "python_source_allowed": caps.python_source_allowed,
            "version": caps.version,
            "active_streams": caps.active_streams,
            "load": caps.load,
            "cost_per_hour": caps.cost_per_hour,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(0);
    }
    let s = &caps.capabilities;
    println!("executor:  {address} (version {})", caps.version);
    println!("cpu:       {} cores, {}", s.cpu_cores, s.arch);
    println!("memory:    {} total", format_gb(s.memory_total_gb));
    if s.gpus.is_empty() {
        println!("gpus:      none");
    }
    for (i, g) in s.gpus.iter().enumerate() {
        println!("gpu {i}:     {g}");
    }
    println!("nodes:     {}", caps.node_types.join(", "));
    let python = if caps.python_source_allowed {
        "any code clients send (--allow-python-source)".to_string()
    } else if caps.python_nodes.is_empty() {
        "none".to_string()
    } else {
        caps.python_nodes.join(", ")
    };
    println!("python:    {python}");
    Ok(0)
}

/// Prints this machine's capabilities (or those of REMOTEMEDIA_CAPABILITIES), or with
/// `--executor` those of an executor.
pub fn run(args: CapabilitiesArgs) -> anyhow::Result<u8> {
    if let Some(address) = &args.executor {
        return executor(address, &args);
    }
    let caps = match detect::local_capabilities(None) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(EXIT_INVALID);
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&caps.set)?);
        return Ok(0);
    }
    let s = &caps.set;
    println!("source:    {}", caps.source);
    println!("cpu:       {} cores, {}", s.cpu_cores, s.arch);
    match s.memory_available_gb {
        Some(a) => println!(
            "memory:    {} total, {} available",
            format_gb(s.memory_total_gb),
            format_gb(a)
        ),
        None => println!("memory:    {} total", format_gb(s.memory_total_gb)),
    }
    if s.gpus.is_empty() {
        println!("gpus:      none");
    } else {
        for (i, g) in s.gpus.iter().enumerate() {
            println!("gpu {i}:     {g}");
        }
    }
    println!("detection: {}", caps.gpu_detection);
    Ok(0)
}
