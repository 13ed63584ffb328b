//! `Clamp` in a pipeline: the example manifest through the built binary, manifest
//! validation, the schema, the documentation, and the guide that quotes all of it.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

const DIR: &str = env!("CARGO_MANIFEST_DIR");

/// Runs the binary with `args`, `stdin` as its input.
fn custom_node(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_custom-node"))
        .args(args)
        .current_dir(DIR)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap()
}

#[test]
fn the_example_manifest_runs_with_the_builtins() {
    let input = std::fs::read_to_string(Path::new(DIR).join("levels.jsonl")).unwrap();
    let out = custom_node(&["clamp.yaml"], &input);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "25.0\n100.0\n0.0\n100\n100\n33.0\n75.0\n"
    );
    assert_eq!(
        text(&out.stderr),
        "warning: skipped item: node `clamp` (Clamp) failed in process: invalid_input: \
         expected a number, got text; input: \"loud\"\n"
    );
    // The guide shows this run.
    let shown = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(guide().contains(&shown), "the guide lacks:\n{shown}");
}

#[test]
fn a_failing_item_stops_the_run_with_exit_2() {
    let dir = tempdir();
    let manifest = dir.join("fail.yaml");
    let yaml = std::fs::read_to_string(Path::new(DIR).join("clamp.yaml"))
        .unwrap()
        .replace("on_error: skip", "on_error: fail");
    std::fs::write(&manifest, yaml).unwrap();
    let out = custom_node(&[manifest.to_str().unwrap()], "0.5\n\"loud\"\n0.25\n");
    assert_eq!(out.status.code(), Some(2));
    // The output of the item before the failure is still written.
    assert_eq!(text(&out.stdout), "50.0\n");
    assert_eq!(
        text(&out.stderr),
        "error: node `clamp` (Clamp) failed in process: invalid_input: expected a number, \
         got text; input: \"loud\"\n"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// A fresh directory of this test binary's own.
fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("custom-node-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn a_bad_manifest_reports_every_problem() {
    let registry = custom_node::registry();
    let errors =
        remotemedia_core::manifest::load_file(&Path::new(DIR).join("broken.yaml"), &registry)
            .unwrap_err();
    let messages: Vec<String> = errors.0.iter().map(ToString::to_string).collect();
    assert_eq!(
        messages,
        [
            "nodes[0].params.decimal: node `typo` (Clamp): unknown param `decimal`; did you mean `decimals`?",
            "nodes[1].params.min: node `wrong_type` (Clamp): expected a number, found a string",
            "nodes[2].params.max: node `missing` (Clamp): missing required param `max`",
            "nodes[3].params.decimals: node `out_of_range` (Clamp): `decimals` must be between 0 and 12, found 20",
            "nodes[4].params: node `reversed` (Clamp): `min` (5) is greater than `max` (1)",
        ]
    );
    // The binary prints the same, then exits 1.
    let out = custom_node(&["broken.yaml"], "");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        format!(
            "{}\nerror: broken.yaml is not a valid manifest\n",
            messages.join("\n")
        )
    );
    assert!(
        guide().contains(text(&out.stderr)),
        "the guide lacks the messages"
    );
    // Without `Clamp` registered, the type itself is unknown.
    let builtin = remotemedia_core::Registry::builtin();
    let errors =
        remotemedia_core::manifest::load_file(&Path::new(DIR).join("clamp.yaml"), &builtin)
            .unwrap_err();
    assert!(
        errors.0[0]
            .message
            .starts_with("node `clamp`: unknown node type `Clamp`"),
        "{errors}"
    );
}

#[test]
fn the_params_are_in_the_manifest_schema() {
    let schema = remotemedia_core::manifest::json_schema_for(&custom_node::registry());
    let params = &schema["$defs"]["Clamp.params"];
    assert_eq!(params["required"], serde_json::json!(["min", "max"]));
    assert_eq!(params["properties"]["min"]["type"], "number");
    assert_eq!(
        params["properties"]["decimals"]["description"],
        "Round floats to this many decimal places (default: no rounding)."
    );
    assert_eq!(params["properties"]["decimals"]["maximum"], 12);
    let rules = schema["$defs"]["NodeManifest"]["allOf"].as_array().unwrap();
    assert!(rules.iter().any(|r| {
        r["if"]["properties"]["node_type"]["enum"] == serde_json::json!(["Clamp"])
            && r["then"]["properties"]["params"]["anyOf"][0]["$ref"] == "#/$defs/Clamp.params"
    }));
    // The binary prints the same schema.
    let out = custom_node(&["--schema"], "");
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed, schema);
}

/// The guide, `docs/writing-a-node.md`.
fn guide() -> String {
    std::fs::read_to_string(Path::new(DIR).join("../../docs/writing-a-node.md")).unwrap()
}

/// The fenced blocks of `markdown` with the given info string, in order.
fn blocks<'a>(markdown: &'a str, lang: &str) -> Vec<&'a str> {
    let fence = format!("```{lang}\n");
    markdown
        .split(fence.as_str())
        .skip(1)
        .map(|b| b.split("```").next().unwrap_or_default())
        .collect()
}

#[test]
fn the_guide_quotes_the_crate_verbatim() {
    let guide = guide();
    let sources: String = [
        "src/lib.rs",
        "src/main.rs",
        "tests/clamp.rs",
        "tests/pipeline.rs",
    ]
    .iter()
    .map(|f| std::fs::read_to_string(Path::new(DIR).join(f)).unwrap())
    .collect();
    let rust = blocks(&guide, "rust");
    assert!(rust.len() >= 5, "{} rust blocks", rust.len());
    for block in rust {
        assert!(sources.contains(block), "not in the crate:\n{block}");
    }
    let files: String = ["clamp.yaml", "levels.jsonl"]
        .iter()
        .map(|f| std::fs::read_to_string(Path::new(DIR).join(f)).unwrap())
        .collect();
    for block in blocks(&guide, "yaml") {
        assert!(files.contains(block), "not in the example files:\n{block}");
    }
}

#[test]
fn the_guide_shows_the_real_documentation() {
    let out = custom_node(&["--info", "Clamp"], "");
    assert_eq!(out.status.code(), Some(0));
    let info = text(&out.stdout);
    assert!(
        blocks(&guide(), "json").contains(&info),
        "the guide lacks:\n{info}"
    );
    let doc: serde_json::Value = serde_json::from_str(info).unwrap();
    assert_eq!(doc["params"][2]["name"], "decimals");
    assert_eq!(doc["params"][2]["required"], false);
}

#[test]
fn the_guide_shows_the_real_schema() {
    let schema = remotemedia_core::manifest::json_schema_for(&custom_node::registry());
    let shown: Vec<serde_json::Value> = blocks(&guide(), "json")
        .into_iter()
        .filter_map(|b| serde_json::from_str(b).ok())
        .collect();
    let rules = schema["$defs"]["NodeManifest"]["allOf"].as_array().unwrap();
    let rule = rules
        .iter()
        .find(|r| r["if"]["properties"]["node_type"]["enum"][0] == "Clamp")
        .unwrap();
    assert!(shown.contains(rule), "the guide lacks:\n{rule:#}");
    // What `--info` shows as `params_schema` is the schema's `Clamp.params`.
    assert!(shown
        .iter()
        .any(|v| v["params_schema"] == schema["$defs"]["Clamp.params"]));
}
