//! README.md's command blocks not covered by their own test files, run as written with
//! the `remotemedia` the README says to install first on the `PATH` (see
//! `support::readme_bin`): the Python-node examples line by line, and the two-executor
//! walkthrough of "Remote executors" as one bash script, failover included.

mod support;

use std::time::Duration;

use support::{readme_block, readme_commands, run_as_written, run_script};

#[test]
fn the_readme_python_node_commands_run_as_written() {
    let commands = readme_commands("python-examples", &["remotemedia"]);
    assert_eq!(commands.len(), 2, "{commands:#?}");
    let dir = tempfile::tempdir().unwrap();
    let out = run_as_written(dir.path(), &commands);
    // 1..=10 plus one, with the running total: the last total is 2 + … + 11.
    let lines: Vec<serde_json::Value> = out[0]
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 10, "{}", out[0]);
    assert_eq!(lines[9], serde_json::json!({"value": 11, "total": 65}));
    // Each word of two letters or more with its count so far, then the totals.
    assert!(
        out[1].starts_with("[\"the\",1]\n[\"quick\",1]\n"),
        "{}",
        out[1]
    );
    assert!(
        out[1].ends_with("{\"brown\":1,\"dog\":1,\"fox\":2,\"quick\":1,\"the\":2}\n"),
        "{}",
        out[1]
    );
}

#[test]
fn the_readme_remote_walkthrough_runs_as_written_and_fails_over() {
    let block = readme_block("remote-walkthrough");
    let dir = tempfile::tempdir().unwrap();
    let (stdout, stderr) = run_script(dir.path(), &block, Duration::from_secs(180));

    // The plan put both GPU nodes on gpu-a.
    assert!(
        stdout.contains("sub-graph on gpu-a: scale → offset\n"),
        "{stdout}"
    );
    // Every item came out once, in order, though gpu-a died mid-run.
    let expected: String = (1..=100_000u64)
        .map(|n| format!("{}\n", 2 * n + 1))
        .collect();
    let got = std::fs::read_to_string(dir.path().join("out.jsonl")).unwrap();
    assert!(
        got == expected,
        "out.jsonl differs from 2n+1 for n in 1..=100000"
    );
    assert!(stdout.contains("100000\n"), "{stdout}");
    assert!(
        stderr.contains("failover: scale → offset moved from gpu-a to gpu-b"),
        "{stderr}"
    );
    // Without executors the plan lists why nothing fits.
    assert!(stderr.contains("cuda"), "{stderr}");
}
