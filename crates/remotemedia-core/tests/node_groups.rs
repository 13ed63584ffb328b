//! Node groups: consecutive nodes with the same group key get each batch together
//! (`Node::process_group`), with the executor's retries, `on_error` and metrics per
//! member unchanged.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Instant;

use common::{as_ints, ints, load};
use remotemedia_core::executor::{run_pipeline, RunOptions};
use remotemedia_core::registry::{NodeDoc, NodeFactory, Params};
use remotemedia_core::{
    Data, GroupFailure, GroupMember, GroupOutcome, ItemError, MemberRun, Node, NodeContext,
    NodeError, Registry,
};

type Log = Arc<Mutex<Vec<String>>>;

/// Adds `add` to each int; fails on `fail_on` (`fail_times` times); groups with nodes of
/// the same `group` value, recording each group run in the log.
struct Adder {
    id: String,
    add: i64,
    fail_on: Option<i64>,
    fail_times: i64,
    group: Option<usize>,
    log: Log,
}

impl Adder {
    fn step(&mut self, item: &Data) -> Result<Data, NodeError> {
        let v = item.as_i64().expect("int");
        if Some(v) == self.fail_on && self.fail_times > 0 {
            self.fail_times -= 1;
            return Err(NodeError::invalid_input(format!("{} rejects {v}", self.id)));
        }
        Ok(Data::Int(v + self.add))
    }
}

impl Node for Adder {
    fn initialize(&mut self, ctx: &NodeContext) -> Result<(), NodeError> {
        self.id = ctx.node_id.to_string();
        Ok(())
    }

    fn process(&mut self, item: Data, out: &mut Vec<Data>) -> Result<(), NodeError> {
        out.push(self.step(&item)?);
        Ok(())
    }

    fn group_member(&mut self) -> Option<&mut dyn GroupMember> {
        self.group.map(|_| self as &mut dyn GroupMember)
    }
}

impl GroupMember for Adder {
    fn group_key(&self) -> usize {
        self.group.expect("only grouped adders are members")
    }

    fn process_group(
        &mut self,
        _port: usize,
        items: &mut Vec<Data>,
        rest: &mut [&mut dyn Node],
        out: &mut Vec<Data>,
    ) -> GroupOutcome {
        let mut members: Vec<&mut Adder> = vec![self];
        for n in rest.iter_mut() {
            let a = n
                .group_member()
                .and_then(|g| g.as_any_mut().downcast_mut::<Adder>());
            members.push(a.expect("every member is an Adder"));
        }
        let ids: Vec<&str> = members.iter().map(|m| m.id.as_str()).collect();
        members[0]
            .log
            .lock()
            .unwrap()
            .push(format!("{}:{}", ids.join("+"), items.len()));
        let mut outcome = GroupOutcome::default();
        let mut input = std::mem::take(items);
        let last = members.len() - 1;
        for (j, m) in members.into_iter().enumerate() {
            let start = Instant::now();
            let mut output = Vec::with_capacity(input.len());
            let mut it = input.into_iter();
            let mut failed = None;
            for item in it.by_ref() {
                match m.step(&item) {
                    Ok(d) => output.push(d),
                    Err(error) => {
                        failed = Some(ItemError { item, error });
                        break;
                    }
                }
            }
            let items_in = (output.len() + it.len() + usize::from(failed.is_some())) as u64;
            outcome.members.push(MemberRun {
                items_in,
                items_out: output.len() as u64,
                elapsed: start.elapsed(),
            });
            if let Some(error) = failed {
                out.append(&mut output);
                outcome.failure = Some(GroupFailure {
                    error,
                    rest: it.collect(),
                });
                return outcome;
            }
            if j == last {
                out.append(&mut output);
                return outcome;
            }
            input = output;
        }
        outcome
    }

    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }
}

struct AdderFactory {
    doc: std::sync::Arc<NodeDoc>,
    log: Log,
}

/// Knobs of the test adder.
#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct AdderParams {
    /// Added to every item.
    add: Option<i64>,
    /// Fail on this input.
    fail_on: Option<i64>,
    /// How many times.
    fail_times: Option<i64>,
    /// Group key (none: no group).
    group: Option<i64>,
}

impl NodeFactory for AdderFactory {
    fn doc(&self) -> &NodeDoc {
        &self.doc
    }
    fn validate(&self, params: &Params) -> Vec<remotemedia_core::ParamIssue> {
        self.doc.check(params)
    }
    fn create(&self, params: &Params) -> Result<Box<dyn Node>, NodeError> {
        let int = |k: &str| params.get(k).and_then(|v| v.as_i64());
        Ok(Box::new(Adder {
            id: String::new(),
            add: int("add").unwrap_or(1),
            fail_on: int("fail_on"),
            fail_times: int("fail_times").unwrap_or(i64::MAX),
            group: int("group").map(|g| g as usize),
            log: Arc::clone(&self.log),
        }))
    }
}

fn registry() -> (Registry, Log) {
    let log: Log = Arc::default();
    let mut r = Registry::builtin();
    r.register(Arc::new(AdderFactory {
        log: Arc::clone(&log),
        doc: NodeDoc::with_params::<AdderParams>("Adder", &[], "adds", "int", "int"),
    }));
    (r, log)
}

/// A chain of nodes given as `(id, yaml node body)`.
fn chain(nodes: &[(&str, &str)]) -> String {
    let mut y = String::from("version: v1\nmetadata: { name: groups }\nnodes:\n");
    for (id, body) in nodes {
        y.push_str(&format!("  - {{ id: {id}, {body} }}\n"));
    }
    y.push_str("connections:\n");
    for w in nodes.windows(2) {
        y.push_str(&format!("  - {{ from: {}, to: {} }}\n", w[0].0, w[1].0));
    }
    y
}

fn modes() -> [RunOptions; 2] {
    [
        RunOptions {
            batch_size: 4,
            ..RunOptions::default()
        },
        RunOptions {
            batch_size: 4,
            force_threads: true,
            channel_capacity: 2,
            ..RunOptions::default()
        },
    ]
}

#[test]
fn consecutive_members_get_each_batch_together() {
    let y = chain(&[
        ("a", "node_type: Adder, params: { group: 1, add: 1 }"),
        ("b", "node_type: Adder, params: { group: 1, add: 10 }"),
        ("c", "node_type: Adder, params: { group: 1, add: 100 }"),
        ("d", "node_type: PassThrough"),
        ("e", "node_type: Adder, params: { group: 1, add: 1000 }"),
        ("f", "node_type: Adder, params: { group: 2, add: 0 }"),
    ]);
    for opts in modes() {
        let (r, log) = registry();
        let res = run_pipeline(&load(&y, &r), &r, ints(10), &opts).unwrap();
        let want: Vec<i64> = (0..10).map(|i| i + 1111).collect();
        assert_eq!(as_ints(res.sink("f").unwrap()), want);
        // Batches of 4, 4 and 2 items; the PassThrough and the other key cut the run.
        assert_eq!(*log.lock().unwrap(), ["a+b+c:4", "a+b+c:4", "a+b+c:2"]);
        for id in ["a", "b", "c", "e", "f"] {
            let m = res.metrics.node(id).unwrap();
            assert_eq!((m.items_in, m.items_out), (10, 10), "{id}");
        }
    }
}

#[test]
fn a_member_failing_is_retried_and_the_rest_of_its_batch_goes_on() {
    // `b` fails once on 12 (item 2 after `a` added 10), then succeeds on the retry.
    let y = chain(&[
        ("a", "node_type: Adder, params: { group: 1, add: 10 }"),
        (
            "b",
            "node_type: Adder, params: { group: 1, add: 1, fail_on: 12, fail_times: 1 }, \
             retry: { max_retries: 1, initial_backoff_ms: 0 }",
        ),
        ("c", "node_type: Adder, params: { group: 1, add: 100 }"),
    ]);
    for opts in modes() {
        let (r, log) = registry();
        let res = run_pipeline(&load(&y, &r), &r, ints(6), &opts).unwrap();
        assert_eq!(
            as_ints(res.sink("c").unwrap()),
            (0..6).map(|i| i + 111).collect::<Vec<_>>()
        );
        // The first batch's group stopped at `b`; `b` and `c` finished it one by one.
        assert_eq!(log.lock().unwrap()[0], "a+b+c:4");
        let b = res.metrics.node("b").unwrap();
        assert_eq!((b.items_in, b.items_out, b.retries, b.errors), (6, 6, 1, 0));
        let c = res.metrics.node("c").unwrap();
        assert_eq!((c.items_in, c.items_out), (6, 6));
    }
}

#[test]
fn a_skipped_item_names_its_member_and_nothing_else_is_lost() {
    let y = chain(&[
        ("a", "node_type: Adder, params: { group: 1, add: 0 }"),
        (
            "b",
            "node_type: Adder, params: { group: 1, add: 0, fail_on: 5 }, on_error: skip",
        ),
        ("c", "node_type: Adder, params: { group: 1, add: 0 }"),
    ]);
    for opts in modes() {
        let (r, _) = registry();
        let res = run_pipeline(&load(&y, &r), &r, ints(10), &opts).unwrap();
        assert_eq!(as_ints(res.sink("c").unwrap()), [0, 1, 2, 3, 4, 6, 7, 8, 9]);
        assert_eq!(res.skipped.len(), 1);
        assert_eq!(res.skipped[0].node_id, "b");
        assert_eq!(res.skipped[0].input_preview.as_deref(), Some("5"));
        let b = res.metrics.node("b").unwrap();
        assert_eq!((b.items_in, b.items_out, b.errors), (10, 9, 1));
    }
}

#[test]
fn a_member_failing_for_good_stops_the_run_keeping_earlier_outputs() {
    let y = chain(&[
        ("a", "node_type: Adder, params: { group: 1, add: 0 }"),
        ("b", "node_type: Adder, params: { group: 1, add: 0 }"),
        (
            "c",
            "node_type: Adder, params: { group: 1, add: 0, fail_on: 2 }",
        ),
    ]);
    let (r, _) = registry();
    let opts = RunOptions {
        batch_size: 4,
        ..RunOptions::default()
    };
    let failure = run_pipeline(&load(&y, &r), &r, ints(10), &opts).unwrap_err();
    let text = failure.error.to_string();
    assert!(
        text.contains("`c`") && text.contains("c rejects 2"),
        "{text}"
    );
    assert_eq!(as_ints(failure.partial.sink("c").unwrap()), [0, 1]);
}
