//! The manifest corpus under `tests/manifests/`.
//!
//! - `valid/*.{yaml,yml,json}` must load, and re-validating the loaded typed manifest
//!   must give the same pipeline.
//! - `invalid/NAME.{yaml,yml,json}` must fail with exactly the lines of `NAME.expected`
//!   (`path: message`, one per line, in the order reported).
//!
//! `REMOTEMEDIA_BLESS=1 cargo test -p remotemedia-core --test manifest_corpus` rewrites
//! the `.expected` files from the current messages; review the diff before committing.

use std::fs;
use std::path::{Path, PathBuf};

use remotemedia_core::manifest::{self, validate_manifest};
use remotemedia_core::Registry;

const MIN_VALID: usize = 6;
const MIN_INVALID: usize = 25;

fn corpus_dir(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("manifests")
        .join(kind)
}

fn is_manifest(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml" | "json")
    )
}

/// Files in a corpus directory, sorted by name.
fn files(kind: &str) -> Vec<PathBuf> {
    let dir = corpus_dir(kind);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .collect();
    files.sort();
    files
}

fn manifests(kind: &str) -> Vec<PathBuf> {
    files(kind).into_iter().filter(|p| is_manifest(p)).collect()
}

fn blessing() -> bool {
    std::env::var("REMOTEMEDIA_BLESS").is_ok_and(|v| v == "1")
}

fn name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[test]
fn valid_manifests_load() {
    let registry = Registry::builtin();
    let all = manifests("valid");
    assert!(
        all.len() >= MIN_VALID,
        "expected at least {MIN_VALID} valid manifests, found {}",
        all.len()
    );
    let mut failures = Vec::new();
    for path in &all {
        match manifest::load_file(path, &registry) {
            Ok(pipeline) => {
                match validate_manifest(&pipeline.manifest, &registry) {
                    Ok(again) if again == pipeline => {}
                    Ok(_) => failures.push(format!(
                        "{}: re-validating the typed manifest gave a different pipeline",
                        name(path)
                    )),
                    Err(e) => failures.push(format!(
                        "{}: re-validating the typed manifest failed:\n{e}",
                        name(path)
                    )),
                }
                assert_eq!(pipeline.nodes.len(), pipeline.manifest.nodes.len());
                assert_eq!(pipeline.graph.topo.len(), pipeline.nodes.len());
            }
            Err(e) => failures.push(format!("{} should load but failed:\n{e}", name(path))),
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}

#[test]
fn invalid_manifests_report_expected_errors() {
    let registry = Registry::builtin();
    let all = manifests("invalid");
    assert!(
        all.len() >= MIN_INVALID,
        "expected at least {MIN_INVALID} invalid manifests, found {}",
        all.len()
    );
    let bless = blessing();
    let mut failures = Vec::new();
    for path in &all {
        let actual = match manifest::load_file(path, &registry) {
            Ok(_) => {
                failures.push(format!("{} loaded but should fail", name(path)));
                continue;
            }
            Err(errors) => {
                let mut text = errors.to_string();
                text.push('\n');
                text
            }
        };
        let expected_path = path.with_extension("expected");
        if bless {
            fs::write(&expected_path, &actual)
                .unwrap_or_else(|e| panic!("cannot write {}: {e}", expected_path.display()));
            continue;
        }
        match fs::read_to_string(&expected_path) {
            Ok(expected) if expected == actual => {}
            Ok(expected) => failures.push(format!(
                "{}: errors differ from {}\n--- expected\n{expected}--- actual\n{actual}",
                name(path),
                name(&expected_path)
            )),
            Err(_) => failures.push(format!(
                "{}: missing {} (generate it with REMOTEMEDIA_BLESS=1); actual errors:\n{actual}",
                name(path),
                name(&expected_path)
            )),
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn every_expected_file_has_a_manifest() {
    let manifests = manifests("invalid");
    let orphans: Vec<String> = files("invalid")
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "expected"))
        .filter(|p| !manifests.iter().any(|m| m.with_extension("expected") == *p))
        .map(|p| name(&p))
        .collect();
    assert!(
        orphans.is_empty(),
        "expected files without a manifest: {orphans:?}"
    );
}

#[test]
fn invalid_manifests_have_distinct_names() {
    let mut seen = std::collections::HashMap::new();
    let mut clashes = Vec::new();
    for path in manifests("invalid") {
        let stem = path.with_extension("");
        if let Some(other) = seen.insert(stem, name(&path)) {
            clashes.push(format!(
                "{other} and {} share one .expected file",
                name(&path)
            ));
        }
    }
    assert!(clashes.is_empty(), "{}", clashes.join("\n"));
}

#[test]
fn no_stray_files_in_the_corpus() {
    let stray: Vec<String> = files("valid")
        .into_iter()
        .filter(|p| !is_manifest(p))
        .chain(
            files("invalid")
                .into_iter()
                .filter(|p| !is_manifest(p) && p.extension().is_none_or(|e| e != "expected")),
        )
        .map(|p| name(&p))
        .collect();
    assert!(
        stray.is_empty(),
        "unexpected files in the corpus: {stray:?}"
    );
}

#[test]
fn one_file_reports_many_problems() {
    let path = corpus_dir("invalid").join("many_problems.yaml");
    let errors = manifest::load_file(&path, &Registry::builtin()).unwrap_err();
    assert!(
        errors.0.len() >= 6,
        "many_problems.yaml should report at least 6 errors, got:\n{errors}"
    );
}
