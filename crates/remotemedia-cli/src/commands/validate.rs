//! `remotemedia validate MANIFEST [--json]`.

use remotemedia_core::manifest;
use serde_json::json;

use crate::cli::ValidateArgs;
use crate::EXIT_INVALID;

/// Validates the manifest; exit 0 when valid, 1 when not.
pub fn run(args: ValidateArgs) -> anyhow::Result<u8> {
    let registry = super::registry();
    let result = super::load_manifest(&args.manifest, &registry).and_then(|p| {
        // Inline Python is compiled too, so that `validate` and `run` agree.
        let errors: Vec<_> = remotemedia_python::source_syntax_errors(&p)
            .into_iter()
            .map(|(id, message)| {
                let at = p
                    .index_of(&id)
                    .map_or_else(String::new, |i| format!("nodes[{i}]."));
                manifest::ManifestError::new(
                    format!("{at}params.source"),
                    format!("node `{id}` (PythonNode): {message}"),
                )
            })
            .collect();
        if errors.is_empty() {
            Ok(p)
        } else {
            Err(manifest::ManifestErrors(errors))
        }
    });
    if args.json {
        let body = match &result {
            Ok(_) => json!({"valid": true, "errors": []}),
            Err(errors) => json!({"valid": false, "errors": errors}),
        };
        println!("{}", serde_json::to_string_pretty(&body)?);
    }
    match result {
        Ok(p) => {
            if !args.json {
                println!(
                    "{}: valid ({}, {})",
                    args.manifest.display(),
                    count(p.nodes.len(), "node"),
                    count(p.edges.len(), "connection")
                );
            }
            Ok(0)
        }
        Err(errors) => {
            if !args.json {
                for e in &errors.0 {
                    eprintln!("{e}");
                }
                eprintln!(
                    "{}: {} problem{} found",
                    args.manifest.display(),
                    errors.0.len(),
                    if errors.0.len() == 1 { "" } else { "s" }
                );
            }
            Ok(EXIT_INVALID)
        }
    }
}

/// `1 node`, `2 nodes`.
fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}
