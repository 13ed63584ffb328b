//! `remotemedia capabilities [--json]`.

use remotemedia_core::capabilities::format_gb;
use remotemedia_remote::detect;

use crate::cli::CapabilitiesArgs;
use crate::EXIT_INVALID;

/// Prints this machine's capabilities (or those of REMOTEMEDIA_CAPABILITIES).
pub fn run(args: CapabilitiesArgs) -> anyhow::Result<u8> {
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
