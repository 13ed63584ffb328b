//! Every manifest shown in README.md and docs/*.md — a fenced `yaml` or `json` block
//! that is a whole manifest (it has `version` and `nodes`) — validates with this
//! build, so a copied example works.

mod support;

use std::process::Command;

use support::{repo, BIN};

/// The fenced blocks of `text` in `lang`, with the line each starts on.
fn blocks<'a>(text: &'a str, lang: &str) -> Vec<(usize, String)> {
    let fence = format!("```{lang}");
    let mut out = Vec::new();
    let mut current: Option<(usize, Vec<&'a str>)> = None;
    for (i, line) in text.lines().enumerate() {
        match &mut current {
            None if line.trim_start() == fence => current = Some((i + 2, Vec::new())),
            Some((start, lines)) if line.trim_start().starts_with("```") => {
                out.push((*start, lines.join("\n")));
                current = None;
            }
            Some((_, lines)) => lines.push(line),
            None => {}
        }
    }
    out
}

fn is_manifest(lang: &str, block: &str) -> bool {
    match lang {
        "yaml" => {
            block.lines().any(|l| l.starts_with("version:"))
                && block.lines().any(|l| l.starts_with("nodes:"))
        }
        _ => block.contains("\"version\"") && block.contains("\"nodes\""),
    }
}

#[test]
fn every_manifest_in_the_docs_validates() {
    let mut files = vec![repo("README.md")];
    for entry in std::fs::read_dir(repo("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            files.push(path);
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let mut checked = 0;
    let mut failures = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for lang in ["yaml", "json"] {
            for (line, block) in blocks(&text, lang) {
                if !is_manifest(lang, &block) {
                    continue;
                }
                checked += 1;
                let path = dir.path().join(format!("m{checked}.{lang}"));
                std::fs::write(&path, &block).unwrap();
                let out = Command::new(BIN)
                    .arg("validate")
                    .arg(&path)
                    .output()
                    .unwrap();
                if !out.status.success() {
                    failures.push(format!(
                        "{}:{line}: {}",
                        file.display(),
                        String::from_utf8_lossy(&out.stderr).trim()
                    ));
                }
            }
        }
    }
    assert!(checked >= 1, "no manifest found in the docs");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn blocks_are_found_with_their_line() {
    let text = "intro\n```yaml\nversion: v1\nnodes: []\n```\n```json\n{}\n```\n";
    let yaml = blocks(text, "yaml");
    assert_eq!(yaml, [(3, "version: v1\nnodes: []".to_string())]);
    assert!(is_manifest("yaml", &yaml[0].1));
    assert!(!is_manifest("json", "{}"));
}
