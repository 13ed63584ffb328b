//! `custom-node MANIFEST`: runs a manifest that may use `Clamp`, JSON Lines on stdin to
//! JSON Lines on stdout. `custom-node --info TYPE` prints a node type's documentation
//! (what `remotemedia nodes info TYPE --json` prints for the built-ins);
//! `custom-node --schema` the manifest JSON Schema with every type's params.
//!
//! Exit codes as for `remotemedia run`: 0 success, 1 invalid manifest, input or usage,
//! 2 the pipeline failed.

use std::io::{BufRead, Write};
use std::path::Path;
use std::process::ExitCode;

use remotemedia_core::executor::{self, RunOptions};
use remotemedia_core::plan::Plan;
use remotemedia_core::{manifest, Data};

const USAGE: &str =
    "usage: custom-node MANIFEST < items.jsonl | custom-node --info TYPE | custom-node --schema";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let registry = custom_node::registry();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["--info", node_type] => match registry.get(node_type) {
            Some(factory) => print_json(&factory.doc()),
            None => fail(1, &format!("unknown node type `{node_type}`")),
        },
        ["--schema"] => print_json(&manifest::json_schema_for(&registry)),
        [path] if !path.starts_with('-') => run(Path::new(path), &registry),
        _ => fail(1, USAGE),
    }
}

fn run(path: &Path, registry: &remotemedia_core::Registry) -> ExitCode {
    let pipeline = match manifest::load_file(path, registry) {
        Ok(p) => p,
        Err(errors) => {
            eprintln!("{errors}");
            return fail(1, &format!("{} is not a valid manifest", path.display()));
        }
    };
    let mut inputs = Vec::new();
    for (n, line) in std::io::stdin().lock().lines().enumerate() {
        let line = match line {
            Ok(l) => l,
            Err(e) => return fail(1, &format!("cannot read input: {e}")),
        };
        if line.trim().is_empty() {
            continue;
        }
        match Data::from_json_str(&line) {
            Ok(item) => inputs.push(item),
            Err(e) => return fail(1, &format!("input line {}: {e}", n + 1)),
        }
    }
    let plan = match Plan::build(&pipeline, registry) {
        Ok(plan) => plan,
        Err(e) => return fail(2, &e.to_string()),
    };
    // A failed run still hands back what it produced before the failure.
    let (result, error) = match executor::run(plan, inputs, &RunOptions::default()) {
        Ok(result) => (result, None),
        Err(failure) => (*failure.partial, Some(failure.error)),
    };
    let several = result.outputs.len() > 1;
    let mut out = std::io::stdout().lock();
    for sink in &result.outputs {
        for item in &sink.items {
            let line = if several {
                serde_json::json!({"sink": sink.sink, "item": item}).to_string()
            } else {
                serde_json::to_string(item).expect("data always serializes")
            };
            if let Err(e) = writeln!(out, "{line}") {
                return fail(2, &format!("cannot write output: {e}"));
            }
        }
    }
    for skipped in &result.skipped {
        eprintln!("warning: skipped item: {skipped}");
    }
    for e in &result.cleanup_errors {
        eprintln!("warning: {e}");
    }
    match error {
        Some(e) => fail(2, &e.to_string()),
        None => ExitCode::SUCCESS,
    }
}

fn print_json(value: &impl serde::Serialize) -> ExitCode {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("documentation always serializes")
    );
    ExitCode::SUCCESS
}

fn fail(code: u8, message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(code)
}
