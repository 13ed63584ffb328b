//! `remotemedia nodes list|info` and `remotemedia schema`.

use remotemedia_core::NodeDoc;

use crate::cli::{NodesInfoArgs, NodesListArgs};
use crate::EXIT_INVALID;

/// Lists every node type.
pub fn list(args: NodesListArgs) -> anyhow::Result<u8> {
    let registry = super::registry();
    let docs: Vec<&NodeDoc> = registry.docs().collect();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&docs)?);
        return Ok(0);
    }
    let width = docs.iter().map(|d| d.node_type.len()).max().unwrap_or(0);
    for d in docs {
        let aliases = if d.aliases.is_empty() {
            String::new()
        } else {
            format!(" (alias: {})", d.aliases.join(", "))
        };
        println!("{:width$}  {}{aliases}", d.node_type, d.description);
    }
    Ok(0)
}

/// Prints the manifest JSON Schema with every node type's params.
pub fn schema() -> anyhow::Result<u8> {
    let schema = remotemedia_core::manifest::json_schema_for(&super::registry());
    println!("{}", serde_json::to_string_pretty(&schema)?);
    Ok(0)
}

/// Shows one node type.
pub fn info(args: NodesInfoArgs) -> anyhow::Result<u8> {
    let registry = super::registry();
    let Some(factory) = registry.get_ignoring_case(&args.node_type) else {
        let hint = match registry.closest_type(&args.node_type) {
            Some(c) => format!("; did you mean `{c}`?"),
            None => format!(
                "; known types: {}",
                registry.types().collect::<Vec<_>>().join(", ")
            ),
        };
        eprintln!("error: unknown node type `{}`{hint}", args.node_type);
        return Ok(EXIT_INVALID);
    };
    let d = factory.doc();
    if args.json {
        println!("{}", serde_json::to_string_pretty(d)?);
        return Ok(0);
    }
    println!("{}", d.node_type);
    if !d.aliases.is_empty() {
        println!("  aliases: {}", d.aliases.join(", "));
    }
    println!("  {}", d.description);
    println!("  input:  {}", d.input);
    println!("  output: {}", d.output);
    if d.params.is_empty() {
        println!("  params: none");
    } else {
        println!("  params:");
        for p in &d.params {
            let mut extra = vec![p.ty.name().to_string()];
            extra.push(if p.required {
                "required".into()
            } else {
                "optional".into()
            });
            if !p.choices.is_empty() {
                extra.push(format!("one of {}", p.choices.join(", ")));
            }
            if let Some(def) = &p.default {
                extra.push(format!("default {def}"));
            }
            println!("    {} ({}): {}", p.name, extra.join("; "), p.description);
        }
    }
    Ok(0)
}
