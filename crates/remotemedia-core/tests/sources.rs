//! Source nodes: streams pulled by the executor with backpressure, end of stream,
//! failures, and the manifest rules for them.

mod common;

use std::sync::atomic::{AtomicI64, Ordering};

use common::{as_ints, load};
use remotemedia_core::executor::{run, start_session, RunOptions};
use remotemedia_core::manifest::{self, Format};
use remotemedia_core::plan::Plan;
use remotemedia_core::{Data, Node, NodeError, NodeType, Pull, Registry};
use schemars::JsonSchema;
use serde::Deserialize;

/// How far the test source has got; shared so the test can watch it from outside.
static PULLED: AtomicI64 = AtomicI64::new(0);

/// Params of `Count`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct CountParams {
    /// Items to make.
    n: i64,
    /// Fail when this number is reached.
    fail_at: Option<i64>,
    /// Whether to publish progress in `PULLED`.
    #[serde(default)]
    watch: bool,
}

/// Counts from 0 to `n - 1`, a few per pull.
struct Count {
    next: i64,
    n: i64,
    fail_at: Option<i64>,
    watch: bool,
    finished: bool,
}

impl Node for Count {
    fn process(&mut self, _item: Data, _out: &mut Vec<Data>) -> Result<(), NodeError> {
        Err(NodeError::invalid_input("a source takes no input"))
    }

    fn pull(&mut self, max: usize, out: &mut Vec<Data>) -> Result<Pull, NodeError> {
        for _ in 0..max.min(7) {
            if self.next == self.n {
                return Ok(Pull::Done);
            }
            if Some(self.next) == self.fail_at {
                return Err(NodeError::invalid_input(format!(
                    "cannot read item {}",
                    self.next
                )));
            }
            out.push(Data::Int(self.next));
            self.next += 1;
            if self.watch {
                PULLED.store(self.next, Ordering::SeqCst);
            }
        }
        Ok(Pull::More)
    }

    fn finish(&mut self, out: &mut Vec<Data>) -> Result<(), NodeError> {
        assert!(!self.finished, "finished twice");
        self.finished = true;
        out.push(Data::Text("end".into()));
        Ok(())
    }
}

impl NodeType for Count {
    const NAME: &'static str = "Count";
    const DESCRIPTION: &'static str = "Counts.";
    const INPUT: &'static str = "nothing (a source)";
    const OUTPUT: &'static str = "ints";
    const SOURCE: bool = true;
    type Params = CountParams;

    fn from_params(p: &CountParams) -> Result<Self, NodeError> {
        Ok(Count {
            next: 0,
            n: p.n,
            fail_at: p.fail_at,
            watch: p.watch,
            finished: false,
        })
    }
}

fn registry() -> Registry {
    let (mut r, _) = common::registry();
    r.add::<Count>();
    r
}

fn ints_and_end(n: i64) -> Vec<Data> {
    let mut v: Vec<Data> = (0..n).map(Data::Int).collect();
    v.push(Data::Text("end".into()));
    v
}

#[test]
fn a_source_streams_through_its_chain_and_is_finished_once() {
    let r = registry();
    let p = load(
        r#"
version: v1
metadata: { name: s }
nodes:
  - { id: count, node_type: Count, params: { n: 100 } }
  - { id: pass, node_type: PassThrough }
connections: [ { from: count, to: pass } ]
"#,
        &r,
    );
    let res = run(
        Plan::build(&p, &r).unwrap(),
        Vec::new(),
        &RunOptions::default(),
    )
    .unwrap();
    assert_eq!(res.sink("pass").unwrap(), ints_and_end(100).as_slice());
    let count = &res.metrics.nodes[0];
    assert_eq!(count.items_out, 101);
}

#[test]
fn a_source_runs_beside_the_runs_own_inputs() {
    let r = registry();
    let p = load(
        r#"
version: v1
metadata: { name: s }
nodes:
  - { id: count, node_type: Count, params: { n: 5 } }
  - { id: input, node_type: PassThrough }
"#,
        &r,
    );
    let plan = Plan::build(&p, &r).unwrap();
    assert_eq!(
        plan.roots.len(),
        1,
        "only the non-source root takes the inputs"
    );
    let res = run(plan, vec![Data::Int(42)], &RunOptions::default()).unwrap();
    assert_eq!(res.sink("count").unwrap(), ints_and_end(5).as_slice());
    assert_eq!(as_ints(res.sink("input").unwrap()), vec![42]);
}

#[test]
fn a_source_is_paced_by_its_consumer() {
    let r = registry();
    let p = load(
        r#"
version: v1
metadata: { name: s }
nodes:
  - { id: count, node_type: Count, params: { n: 200000, watch: true } }
  - { id: pass, node_type: PassThrough }
connections: [ { from: count, to: pass } ]
"#,
        &r,
    );
    let opts = RunOptions {
        batch_size: 16,
        channel_capacity: 2,
        ..RunOptions::default()
    };
    let (tx, mut rx) = start_session(Plan::build(&p, &r).unwrap(), &opts)
        .unwrap()
        .into_split();
    tx.close();
    let mut received = 0i64;
    let mut ahead = 0i64;
    while let Some((_, batch)) = rx.recv_batch() {
        received += batch.len() as i64;
        ahead = ahead.max(PULLED.load(Ordering::SeqCst) - received);
        if received < 2000 {
            // A slow consumer: the source must wait for it rather than run ahead.
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
    }
    let res = rx.finish().unwrap();
    assert_eq!(received, 200_001);
    assert!(res.outputs.iter().all(|s| s.items.is_empty()));
    // The unbounded sink queue of a session is bounded too (see `start_session`): what
    // is ahead is a few batches, never the stream.
    assert!(
        ahead < 2000,
        "the source ran {ahead} items ahead of its consumer"
    );
}

#[test]
fn a_failing_source_keeps_what_it_made_before() {
    let r = registry();
    let p = load(
        r#"
version: v1
metadata: { name: s }
nodes:
  - { id: count, node_type: Count, params: { n: 100, fail_at: 30 } }
  - { id: pass, node_type: PassThrough }
connections: [ { from: count, to: pass } ]
"#,
        &r,
    );
    let f = run(
        Plan::build(&p, &r).unwrap(),
        Vec::new(),
        &RunOptions::default(),
    )
    .unwrap_err();
    assert_eq!(
        f.error.to_string(),
        "node `count` (Count) failed in process: invalid_input: cannot read item 30"
    );
    assert_eq!(
        as_ints(f.partial.sink("pass").unwrap()),
        (0..30).collect::<Vec<_>>()
    );
}

#[test]
fn nothing_may_connect_to_a_source() {
    let r = registry();
    let e = manifest::load_str(
        r#"
version: v1
metadata: { name: s }
nodes:
  - { id: a, node_type: PassThrough }
  - { id: count, node_type: Count, params: { n: 1 } }
connections: [ { from: a, to: count } ]
"#,
        Format::Yaml,
        &r,
    )
    .unwrap_err();
    assert_eq!(
        e.0.iter().map(ToString::to_string).collect::<Vec<_>>(),
        ["connections[0]: connection `a -> count`: `count` is a source (Count): it makes its own items and takes no input"]
    );
}

#[test]
fn inputs_for_a_pipeline_of_sources_only_are_an_error_not_dropped() {
    let r = registry();
    let p = load(
        r#"
version: v1
metadata: { name: s }
nodes:
  - { id: count, node_type: Count, params: { n: 3 } }
"#,
        &r,
    );
    let f = run(
        Plan::build(&p, &r).unwrap(),
        vec![Data::Int(1)],
        &RunOptions::default(),
    )
    .unwrap_err();
    assert_eq!(
        f.error.to_string(),
        "the pipeline takes no input: every node without an upstream node is a source, which makes its own items"
    );
    let (tx, rx) = start_session(Plan::build(&p, &r).unwrap(), &RunOptions::default())
        .unwrap()
        .into_split();
    assert!(matches!(
        tx.send(Data::Int(1)),
        Err(remotemedia_core::RunError::NoInputNode)
    ));
    tx.close();
    // The source itself still runs to its end.
    assert_eq!(
        rx.finish().unwrap().sink("count").unwrap(),
        ints_and_end(3).as_slice()
    );
}
