//! Executor behaviour: fusion, fan-out/fan-in, lifecycle, retries, timeouts, panics.

mod common;

use common::{as_ints, ints, load, registry};
use remotemedia_core::executor::{self, run_pipeline, RunOptions};
use remotemedia_core::plan::Plan;
use remotemedia_core::{Data, ErrorKind, Phase};

fn both_modes() -> [RunOptions; 2] {
    [
        RunOptions::default(),
        RunOptions {
            force_threads: true,
            batch_size: 7,
            channel_capacity: 2,
            ..RunOptions::default()
        },
    ]
}

const CHAIN: &str = r#"
version: v1
metadata: { name: chain }
nodes:
  - { id: a, node_type: PassThrough }
  - { id: b, node_type: Calculator, params: { operation: add, operand: 1 } }
  - { id: c, node_type: PassThroughNode }
connections: [ { from: a, to: b }, { from: b, to: c } ]
"#;

const DIAMOND: &str = r#"
version: v1
metadata: { name: diamond }
nodes:
  - { id: src, node_type: PassThrough }
  - { id: double, node_type: Calculator, params: { operation: multiply, operand: 2 } }
  - { id: plus, node_type: Calculator, params: { operation: add, operand: 100 } }
  - { id: zip, node_type: Zip }
connections:
  - { from: src, to: double }
  - { from: src, to: plus }
  - { from: double, to: zip }
  - { from: plus, to: zip }
"#;

#[test]
fn chain_is_fused_into_one_stage() {
    let (r, _) = registry();
    let plan = Plan::build(&load(CHAIN, &r), &r).unwrap();
    assert_eq!(plan.stage_ids(), vec![vec!["a", "b", "c"]]);
}

#[test]
fn fan_out_and_fan_in_are_stage_boundaries() {
    let (r, _) = registry();
    let plan = Plan::build(&load(DIAMOND, &r), &r).unwrap();
    assert_eq!(
        plan.stage_ids(),
        vec![vec!["src"], vec!["double"], vec!["plus"], vec!["zip"]]
    );
}

#[test]
fn dedicated_nodes_get_their_own_stage() {
    let (r, _) = registry();
    let yaml = r#"
version: v1
metadata: { name: d }
nodes:
  - { id: a, node_type: PassThrough }
  - { id: b, node_type: PassThrough }
  - { id: py, node_type: Probe, params: { dedicated: true } }
  - { id: c, node_type: PassThrough }
  - { id: d, node_type: PassThrough }
connections: [ {from: a, to: b}, {from: b, to: py}, {from: py, to: c}, {from: c, to: d} ]
"#;
    let plan = Plan::build(&load(yaml, &r), &r).unwrap();
    assert_eq!(
        plan.stage_ids(),
        vec![vec!["a", "b"], vec!["py"], vec!["c", "d"]]
    );
}

/// The stages of `Plan::layout` (no node built) as node ids, with how each runs.
fn layout_ids(yaml: &str) -> Vec<(Vec<String>, remotemedia_core::Execution)> {
    let (r, _) = registry();
    let p = load(yaml, &r);
    Plan::layout(&p, &r)
        .unwrap()
        .into_iter()
        .map(|s| {
            let ids = s.nodes.iter().map(|&v| p.nodes[v].id.clone()).collect();
            (ids, s.execution)
        })
        .collect()
}

#[test]
fn layout_shows_the_stages_build_makes() {
    use remotemedia_core::Execution::{Dedicated, Inline};
    let timed = r#"
version: v1
metadata: { name: t }
nodes:
  - { id: a, node_type: PassThrough }
  - { id: slow, node_type: PassThrough, timeout_ms: 500 }
  - { id: c, node_type: PassThrough }
connections: [ {from: a, to: slow}, {from: slow, to: c} ]
"#;
    let dedicated = r#"
version: v1
metadata: { name: d }
nodes:
  - { id: a, node_type: PassThrough }
  - { id: py, node_type: Probe, params: { dedicated: true } }
  - { id: c, node_type: PassThrough }
connections: [ {from: a, to: py}, {from: py, to: c} ]
"#;
    let s = |ids: &[&str]| ids.iter().map(|i| i.to_string()).collect::<Vec<_>>();
    assert_eq!(layout_ids(CHAIN), vec![(s(&["a", "b", "c"]), Inline)]);
    assert_eq!(
        layout_ids(DIAMOND),
        vec![
            (s(&["src"]), Inline),
            (s(&["double"]), Inline),
            (s(&["plus"]), Inline),
            (s(&["zip"]), Inline)
        ]
    );
    assert_eq!(
        layout_ids(dedicated),
        vec![
            (s(&["a"]), Inline),
            (s(&["py"]), Dedicated),
            (s(&["c"]), Inline)
        ]
    );
    assert_eq!(
        layout_ids(timed),
        vec![
            (s(&["a"]), Inline),
            (s(&["slow"]), Dedicated),
            (s(&["c"]), Inline)
        ]
    );
    // And they are the stages a built plan has.
    let (r, _) = registry();
    for yaml in [CHAIN, DIAMOND, dedicated, timed] {
        let built: Vec<Vec<String>> = Plan::build(&load(yaml, &r), &r)
            .unwrap()
            .stage_ids()
            .into_iter()
            .map(|ids| s(&ids))
            .collect();
        let laid: Vec<Vec<String>> = layout_ids(yaml).into_iter().map(|(ids, _)| ids).collect();
        assert_eq!(built, laid, "{yaml}");
    }
}

#[test]
fn chain_runs_in_both_modes() {
    let (r, _) = registry();
    let p = load(CHAIN, &r);
    for opts in both_modes() {
        let res = run_pipeline(&p, &r, ints(100), &opts).unwrap();
        assert_eq!(
            as_ints(res.sink("c").unwrap()),
            (1..=100).collect::<Vec<_>>()
        );
        let b = res.metrics.node("b").unwrap();
        assert_eq!((b.items_in, b.items_out), (100, 100));
    }
}

#[test]
fn diamond_zips_both_branches_in_order() {
    let (r, _) = registry();
    let p = load(DIAMOND, &r);
    for opts in both_modes() {
        let res = run_pipeline(&p, &r, ints(50), &opts).unwrap();
        let out = res.sink("zip").unwrap();
        assert_eq!(out.len(), 50);
        for (i, item) in out.iter().enumerate() {
            let m = item.as_map().unwrap();
            assert_eq!(m["double"], Data::Int(2 * i as i64));
            assert_eq!(m["plus"], Data::Int(100 + i as i64));
        }
    }
}

#[test]
fn several_roots_and_sinks() {
    let (r, _) = registry();
    let yaml = r#"
version: v1
metadata: { name: multi }
nodes:
  - { id: r1, node_type: PassThrough }
  - { id: r2, node_type: Calculator, params: { operation: add, operand: 1000 } }
  - { id: merge, node_type: PassThrough }
  - { id: s1, node_type: PassThrough }
  - { id: s2, node_type: Filter, params: { gte: 1000 } }
connections: [ {from: r1, to: merge}, {from: r2, to: merge}, {from: merge, to: s1}, {from: merge, to: s2} ]
"#;
    let p = load(yaml, &r);
    for opts in both_modes() {
        let res = run_pipeline(&p, &r, ints(10), &opts).unwrap();
        let mut s1 = as_ints(res.sink("s1").unwrap());
        s1.sort();
        let mut expected: Vec<i64> = (0..10).chain(1000..1010).collect();
        expected.sort();
        assert_eq!(s1, expected);
        let s2 = as_ints(res.sink("s2").unwrap());
        assert_eq!(s2, (1000..1010).collect::<Vec<_>>(), "per-path order kept");
    }
}

fn count(log: &[String], event: &str) -> usize {
    log.iter().filter(|e| e.as_str() == event).count()
}

const PROBES: &str = r#"
version: v1
metadata: { name: probes }
nodes:
  - { id: p1, node_type: Probe }
  - { id: p2, node_type: Probe, params: { PARAMS } }
  - { id: p3, node_type: Probe }
connections: [ {from: p1, to: p2}, {from: p2, to: p3} ]
"#;

fn probes(params: &str) -> String {
    PROBES.replace("PARAMS", params)
}

#[test]
fn every_hook_runs_exactly_once() {
    for opts in both_modes() {
        let (r, log) = registry();
        let p = load(&probes(""), &r);
        run_pipeline(&p, &r, ints(20), &opts).unwrap();
        let log = log.lock().unwrap();
        for id in ["p1", "p2", "p3"] {
            for ev in ["initialize", "finish", "cleanup"] {
                assert_eq!(
                    count(&log, &format!("{id}:{ev}")),
                    1,
                    "{id}:{ev} in {log:?}"
                );
            }
        }
    }
}

#[test]
fn cleanup_runs_after_an_error() {
    for opts in both_modes() {
        let (r, log) = registry();
        let p = load(&probes("fail_on: 5"), &r);
        let f = run_pipeline(&p, &r, ints(20), &opts).unwrap_err();
        let e = f.error.node_error().expect("node error");
        assert_eq!(e.node_id, "p2");
        assert_eq!(e.node_type, "Probe");
        assert_eq!(e.kind, ErrorKind::InvalidInput);
        assert_eq!(e.phase, Phase::Process);
        assert_eq!(e.input_preview.as_deref(), Some("5"));
        assert_eq!(e.message, "probe rejects 5");
        // Items before the failure were not lost: they drain to the sink.
        assert_eq!(as_ints(f.partial.sink("p3").unwrap()), [0, 1, 2, 3, 4]);
        let log = log.lock().unwrap();
        for id in ["p1", "p2", "p3"] {
            assert_eq!(count(&log, &format!("{id}:cleanup")), 1, "{log:?}");
            assert_eq!(count(&log, &format!("{id}:finish")), 0, "{log:?}");
        }
    }
}

#[test]
fn outputs_before_a_failure_cross_stage_boundaries() {
    // Every node its own stage (dedicated), fed in small batches: what `p2` produced
    // before failing still reaches the sink through `p3`, in both modes.
    let y = probes("fail_on: 5, dedicated: true").replace(
        "{ id: p3, node_type: Probe }",
        "{ id: p3, node_type: Probe, params: { dedicated: true } }",
    );
    for opts in both_modes() {
        let (r, log) = registry();
        let p = load(&y, &r);
        assert_eq!(Plan::build(&p, &r).unwrap().stages.len(), 3);
        let f = run_pipeline(&p, &r, ints(20), &opts).unwrap_err();
        assert_eq!(f.error.node_error().unwrap().node_id, "p2");
        assert_eq!(as_ints(f.partial.sink("p3").unwrap()), [0, 1, 2, 3, 4]);
        let m = f.partial.metrics.node("p3").unwrap();
        assert_eq!((m.items_in, m.items_out), (5, 5));
        let log = log.lock().unwrap();
        assert_eq!(count(&log, "p3:finish"), 0, "{log:?}");
        assert_eq!(count(&log, "p3:cleanup"), 1, "{log:?}");
    }
}

#[test]
fn a_panic_is_that_nodes_error_and_cleanup_still_runs() {
    for opts in both_modes() {
        let (r, log) = registry();
        let p = load(&probes("panic_on: 3"), &r);
        let f = run_pipeline(&p, &r, ints(10), &opts).unwrap_err();
        let e = f.error.node_error().unwrap();
        assert_eq!((e.node_id.as_str(), e.kind), ("p2", ErrorKind::Panic));
        assert!(
            e.message.contains("probe asked to panic on 3"),
            "{}",
            e.message
        );
        let log = log.lock().unwrap();
        for id in ["p1", "p2", "p3"] {
            assert_eq!(count(&log, &format!("{id}:cleanup")), 1, "{log:?}");
        }
    }
}

#[test]
fn initialize_failure_is_reported_and_cleans_up() {
    for opts in both_modes() {
        let (r, log) = registry();
        let p = load(&probes("fail_init: true"), &r);
        let f = run_pipeline(&p, &r, ints(3), &opts).unwrap_err();
        let e = f.error.node_error().unwrap();
        assert_eq!((e.phase, e.kind), (Phase::Initialize, ErrorKind::Resource));
        let log = log.lock().unwrap();
        assert_eq!(count(&log, "p2:cleanup"), 1, "{log:?}");
    }
}

#[test]
fn retry_recovers_with_backoff() {
    for opts in both_modes() {
        let (r, _) = registry();
        let yaml = probes("fail_on: 4, fail_times: 2").replace(
            "{ id: p2, node_type: Probe,",
            "{ id: p2, node_type: Probe, retry: { max_retries: 3, initial_backoff_ms: 1, multiplier: 2 },",
        );
        let p = load(&yaml, &r);
        let res = run_pipeline(&p, &r, ints(10), &opts).unwrap();
        assert_eq!(
            as_ints(res.sink("p3").unwrap()),
            (0..10).collect::<Vec<_>>()
        );
        let m = res.metrics.node("p2").unwrap();
        assert_eq!((m.retries, m.errors), (2, 0));
    }
}

#[test]
fn retry_gives_up_and_counts_attempts() {
    let (r, _) = registry();
    let yaml = probes("fail_on: 4").replace(
        "{ id: p2, node_type: Probe,",
        "{ id: p2, node_type: Probe, retry: { max_retries: 2, initial_backoff_ms: 1 },",
    );
    let p = load(&yaml, &r);
    let f = run_pipeline(&p, &r, ints(10), &RunOptions::default()).unwrap_err();
    let e = f.error.node_error().unwrap();
    assert_eq!(e.attempts, 3);
    assert!(e.to_string().contains("(after 3 attempts)"), "{e}");
}

#[test]
fn skip_records_the_error_and_goes_on() {
    for opts in both_modes() {
        let (r, _) = registry();
        let yaml = probes("fail_on: 4").replace(
            "{ id: p2, node_type: Probe,",
            "{ id: p2, node_type: Probe, on_error: skip,",
        );
        let p = load(&yaml, &r);
        let res = run_pipeline(&p, &r, ints(10), &opts).unwrap();
        let out = as_ints(res.sink("p3").unwrap());
        assert_eq!(out, vec![0, 1, 2, 3, 5, 6, 7, 8, 9]);
        assert_eq!(res.skipped.len(), 1);
        assert_eq!(res.skipped[0].input_preview.as_deref(), Some("4"));
    }
}

#[test]
fn timeout_fails_a_hung_item() {
    let (r, log) = registry();
    let yaml = probes("sleep_ms: 2000").replace(
        "{ id: p2, node_type: Probe,",
        "{ id: p2, node_type: Probe, timeout_ms: 50,",
    );
    let p = load(&yaml, &r);
    let started = std::time::Instant::now();
    let f = run_pipeline(&p, &r, ints(3), &RunOptions::default()).unwrap_err();
    assert!(started.elapsed() < std::time::Duration::from_millis(1900));
    let e = f.error.node_error().unwrap();
    assert_eq!((e.node_id.as_str(), e.kind), ("p2", ErrorKind::Timeout));
    assert_eq!(e.message, "no result within 50 ms");
    // p1 and p3 are cleaned up at once; p2's abandoned instance cleans up when its call returns.
    let log = log.lock().unwrap();
    assert_eq!(count(&log, "p1:cleanup"), 1);
    assert_eq!(count(&log, "p3:cleanup"), 1);
}

#[test]
fn timeout_then_retry_on_a_fresh_instance_succeeds() {
    let (r, _) = registry();
    let yaml = probes("sleep_first_ms: 1000").replace(
        "{ id: p2, node_type: Probe,",
        "{ id: p2, node_type: Probe, timeout_ms: 100, retry: { max_retries: 1, initial_backoff_ms: 1 },",
    );
    let p = load(&yaml, &r);
    let res = run_pipeline(&p, &r, ints(5), &RunOptions::default()).unwrap();
    assert_eq!(as_ints(res.sink("p3").unwrap()), vec![0, 1, 2, 3, 4]);
    assert_eq!(res.metrics.node("p2").unwrap().retries, 1);
}

#[test]
fn calculator_errors_are_structured() {
    let (r, _) = registry();
    let yaml = CHAIN.replace(
        "operation: add, operand: 1",
        "operation: divide, operand: 0",
    );
    let p = load(&yaml, &r);
    let f = run_pipeline(&p, &r, ints(3), &RunOptions::default()).unwrap_err();
    assert_eq!(
        f.error.to_string(),
        "node `b` (Calculator) failed in process: arithmetic: division by zero; input: 0"
    );
}

#[test]
fn generators_emit_several_outputs_and_filters_none() {
    let (r, _) = registry();
    let yaml = r#"
version: v1
metadata: { name: g }
nodes:
  - { id: zip1, node_type: Zip }
  - { id: f, node_type: Filter, params: { gt: 10 } }
connections: []
"#;
    let p = load(yaml, &r);
    let res = run_pipeline(&p, &r, ints(12), &RunOptions::default()).unwrap();
    assert_eq!(res.sink("zip1").unwrap().len(), 12);
    assert_eq!(as_ints(res.sink("f").unwrap()), vec![11]);
}

#[test]
fn plans_follow_changes_made_to_a_validated_pipeline() {
    // A plan shares the names and factories resolved at validation, but never stale
    // ones: a renamed node gets its new id, a changed registry is asked again.
    let (r, _) = registry();
    let mut p = load(CHAIN, &r);
    p.nodes[1].id = "renamed".into();
    let plan = Plan::build(&p, &r).unwrap();
    assert_eq!(plan.stage_ids(), vec![vec!["a", "renamed", "c"]]);
    let res = executor::run(plan, ints(2), &RunOptions::default()).unwrap();
    assert!(res.metrics.node("renamed").is_some());

    let p = load(CHAIN, &r);
    let mut other = remotemedia_core::Registry::new();
    let e = Plan::build(&p, &other).unwrap_err();
    assert!(e.to_string().contains("not registered"), "{e}");
    other = r.clone();
    assert!(Plan::build(&p, &other).is_ok());
}

/// A cancelled run stops at the next node call and ends a long retry back-off at once.
#[test]
fn cancelling_a_run_ends_its_back_off_and_cleans_up() {
    use remotemedia_core::executor::CancelToken;
    let (reg, _) = registry();
    let p = load(
        r#"
version: v1
metadata: { name: c }
nodes:
  - id: div
    node_type: Calculator
    params: { operation: divide, operand: 0 }
    retry: { max_retries: 5, initial_backoff_ms: 600000, max_backoff_ms: 600000 }
"#,
        &reg,
    );
    let cancel = CancelToken::new();
    let options = RunOptions {
        cancel: cancel.clone(),
        ..RunOptions::default()
    };
    let canceller = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(50));
        cancel.cancel();
    });
    let started = std::time::Instant::now();
    let failure = run_pipeline(&p, &reg, ints(1), &options).unwrap_err();
    canceller.join().unwrap();
    assert!(started.elapsed() < std::time::Duration::from_secs(600));
    let e = failure.error.node_error().expect("a node error");
    assert_eq!(e.kind, ErrorKind::Cancelled);
    assert_eq!(e.node_id, "div");
    assert_eq!(e.message, "the run was cancelled");
    assert_eq!(failure.partial.metrics.nodes[0].retries, 0);
}

/// A run cancelled before its end flushes nothing: no node is finished, every one is
/// cleaned up.
#[test]
fn a_cancelled_run_finishes_no_node_but_cleans_up_every_one() {
    use remotemedia_core::executor::CancelToken;
    let (reg, log) = registry();
    let p = load(
        "version: v1\nmetadata: { name: c }\nnodes:\n  - { id: p1, node_type: Probe }\n  - { id: p2, node_type: Probe }\nconnections:\n  - { from: p1, to: p2 }\n",
        &reg,
    );
    for options in both_modes() {
        log.lock().unwrap().clear();
        let cancel = CancelToken::new();
        cancel.cancel();
        let failure =
            run_pipeline(&p, &reg, vec![], &RunOptions { cancel, ..options }).unwrap_err();
        let e = failure.error.node_error().expect("a node error");
        assert_eq!((e.kind, e.phase), (ErrorKind::Cancelled, Phase::Finish));
        let events = log.lock().unwrap().clone();
        assert!(!events.iter().any(|e| e.ends_with(":finish")), "{events:?}");
        for id in ["p1", "p2"] {
            assert!(events.contains(&format!("{id}:cleanup")), "{events:?}");
        }
    }
}
