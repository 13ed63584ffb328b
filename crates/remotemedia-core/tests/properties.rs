//! Property: for random DAGs of built-in nodes, every input item is accounted for at
//! every sink, once per path, and order holds along each path.

use std::collections::BTreeMap;

use proptest::prelude::*;
use remotemedia_core::executor::{run_pipeline, RunOptions};
use remotemedia_core::manifest::{self, Connection, ManifestV1, Metadata, NodeManifest};
use remotemedia_core::{Data, Registry};

/// Items are below 2^20; node `i` adds 2^(20+i) (or passes through), so an output
/// value names its input (low bits) and the set of adding nodes on its path (high bits).
const LOW: i64 = 1 << 20;

#[derive(Debug, Clone)]
struct Dag {
    adds: Vec<bool>,
    edges: Vec<(usize, usize)>,
}

fn dag() -> impl Strategy<Value = Dag> {
    (1usize..=7).prop_flat_map(|n| {
        let pairs: Vec<(usize, usize)> = (0..n)
            .flat_map(|i| ((i + 1)..n).map(move |j| (i, j)))
            .collect();
        let m = pairs.len();
        (
            proptest::collection::vec(any::<bool>(), n),
            proptest::collection::vec(proptest::bool::weighted(0.4), m),
        )
            .prop_map(move |(adds, keep)| Dag {
                adds,
                edges: pairs
                    .iter()
                    .zip(keep)
                    .filter(|(_, k)| *k)
                    .map(|(e, _)| *e)
                    .collect(),
            })
    })
}

fn manifest_of(d: &Dag) -> ManifestV1 {
    let nodes = d
        .adds
        .iter()
        .enumerate()
        .map(|(i, add)| NodeManifest {
            id: format!("n{i}"),
            node_type: if *add { "Calculator" } else { "PassThrough" }.into(),
            params: add.then(|| {
                serde_json::json!({"operation": "add", "operand": 1i64 << (20 + i)})
                    .as_object()
                    .unwrap()
                    .clone()
            }),
            capabilities: None,
            host: None,
            retry: None,
            timeout_ms: None,
            on_error: None,
            stateful: None,
        })
        .collect();
    ManifestV1 {
        schema: None,
        version: "v1".into(),
        metadata: Metadata {
            name: "random".into(),
            description: None,
            created_at: None,
            overridable: Vec::new(),
        },
        nodes,
        connections: d
            .edges
            .iter()
            .map(|(a, b)| Connection {
                from: format!("n{a}"),
                to: format!("n{b}"),
            })
            .collect(),
    }
}

/// For each node, the path offsets (sum of adds) of every root-to-node path.
fn path_offsets(d: &Dag) -> Vec<Vec<i64>> {
    let n = d.adds.len();
    let mut offsets: Vec<Vec<i64>> = vec![Vec::new(); n];
    for v in 0..n {
        let own = if d.adds[v] { 1i64 << (20 + v) } else { 0 };
        let preds: Vec<usize> = d.edges.iter().filter(|e| e.1 == v).map(|e| e.0).collect();
        if preds.is_empty() {
            offsets[v].push(own);
        } else {
            for p in preds {
                let from_p: Vec<i64> = offsets[p].iter().map(|o| o + own).collect();
                offsets[v].extend(from_p);
            }
        }
    }
    offsets
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    #[test]
    fn every_item_is_accounted_for_in_path_order(d in dag(), items in 0i64..40, threaded in any::<bool>()) {
        let registry = Registry::builtin();
        let pipeline = manifest::validate_manifest(&manifest_of(&d), &registry).unwrap();
        let opts = RunOptions { force_threads: threaded, batch_size: 3, channel_capacity: 2, ..RunOptions::default() };
        let inputs: Vec<Data> = (0..items).map(Data::Int).collect();
        let res = run_pipeline(&pipeline, &registry, inputs, &opts).unwrap();
        let offsets = path_offsets(&d);
        let sinks: Vec<usize> = (0..d.adds.len()).filter(|v| !d.edges.iter().any(|e| e.0 == *v)).collect();
        prop_assert_eq!(res.outputs.len(), sinks.len());
        for (out, &sink) in res.outputs.iter().zip(&sinks) {
            prop_assert_eq!(&out.sink, &format!("n{sink}"));
            // Group by path offset: each path must deliver 0..items exactly, in order.
            let mut by_path: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
            for v in &out.items {
                let v = v.as_i64().unwrap();
                by_path.entry(v - v % LOW).or_default().push(v % LOW);
            }
            let mut expected_paths: BTreeMap<i64, usize> = BTreeMap::new();
            for o in &offsets[sink] {
                *expected_paths.entry(*o).or_default() += 1;
            }
            if items == 0 {
                prop_assert!(out.items.is_empty());
                continue;
            }
            prop_assert_eq!(by_path.len(), expected_paths.len());
            for (offset, copies) in expected_paths {
                let got = by_path.get(&offset).cloned().unwrap_or_default();
                prop_assert_eq!(got.len() as i64, items * copies as i64);
                if copies == 1 {
                    prop_assert_eq!(got, (0..items).collect::<Vec<_>>());
                } else {
                    // Several paths with the same offset: each input appears `copies`
                    // times and, per input, never ahead of a smaller one on its path.
                    let mut seen = vec![0usize; items as usize];
                    for x in got {
                        seen[x as usize] += 1;
                    }
                    prop_assert!(seen.iter().all(|c| *c == copies));
                }
            }
        }
    }
}
