//! `Zip`: pairs items from several inputs.

use std::collections::VecDeque;

use crate::data::{Data, DataMap};
use crate::error::{ErrorKind, NodeError};
use crate::node::{ItemError, Node, NodeContext};
use crate::node_type::NodeType;
use schemars::JsonSchema;
use serde::Deserialize;

/// Emits one map per round, keyed by upstream node id, once every input has an item.
/// An input holds at most `max_pending` items waiting for the others: past that the
/// item fails (a branch that filters items out would otherwise have the others
/// buffered without bound).
#[derive(Debug)]
pub struct Zip {
    strict: bool,
    max_pending: usize,
    node_id: String,
    inputs: Vec<String>,
    queues: Vec<VecDeque<Data>>,
}

impl Zip {
    /// A zip; `strict` makes leftover unpaired items at end of stream an error. Each
    /// input holds up to [`DEFAULT_MAX_PENDING`] unpaired items.
    pub fn new(strict: bool) -> Self {
        Self::with_max_pending(strict, DEFAULT_MAX_PENDING)
    }

    /// A zip whose inputs each hold up to `max_pending` unpaired items.
    pub fn with_max_pending(strict: bool, max_pending: usize) -> Self {
        Self {
            strict,
            max_pending: max_pending.max(1),
            node_id: String::new(),
            inputs: Vec::new(),
            queues: Vec::new(),
        }
    }
}

impl Zip {
    /// Emits one map per complete round (every input queue has an item).
    fn emit_rounds(&mut self, out: &mut Vec<Data>) {
        let rounds = self.queues.iter().map(VecDeque::len).min().unwrap_or(0);
        out.reserve(rounds);
        for _ in 0..rounds {
            let mut round = DataMap::with_capacity(self.inputs.len());
            for (name, q) in self.inputs.iter().zip(self.queues.iter_mut()) {
                round.insert(name.clone(), q.pop_front().expect("a complete round"));
            }
            out.push(Data::map(round));
        }
    }
}

/// Unpaired items an input may hold unless `max_pending` says otherwise.
pub const DEFAULT_MAX_PENDING: usize = 10_000;

impl Zip {
    /// Queues `item` on `port` and emits the rounds it completes; fails, handing the
    /// item back, when that leaves more than `max_pending` items waiting there.
    fn push(&mut self, port: usize, item: Data, out: &mut Vec<Data>) -> Result<(), ItemError> {
        let Some(queue) = self.queues.get_mut(port) else {
            return Err(ItemError {
                item,
                error: unknown_port(port),
            });
        };
        queue.push_back(item);
        self.emit_rounds(out);
        let queue = &mut self.queues[port];
        if queue.len() <= self.max_pending {
            return Ok(());
        }
        let item = queue.pop_back().expect("just pushed");
        let waiting: Vec<String> = self
            .inputs
            .iter()
            .zip(&self.queues)
            .filter(|(_, q)| q.is_empty())
            .map(|(n, _)| format!("`{n}`"))
            .collect();
        Err(ItemError {
            item,
            error: NodeError::new(
                ErrorKind::Other,
                format!(
                    "input `{}` has {} items waiting for an item from {} (max_pending); an \
                     input that drops items leaves the others unpaired",
                    self.inputs[port],
                    self.max_pending,
                    waiting.join(", ")
                ),
            ),
        })
    }
}

fn unknown_port(port: usize) -> NodeError {
    NodeError::new(
        ErrorKind::Other,
        format!("item on unknown input port {port}"),
    )
}

impl Node for Zip {
    fn initialize(&mut self, ctx: &NodeContext) -> Result<(), NodeError> {
        self.node_id = ctx.node_id.to_string();
        self.inputs = if ctx.inputs.is_empty() {
            vec!["input".to_string()]
        } else {
            ctx.inputs.iter().map(|s| s.to_string()).collect()
        };
        self.queues = vec![VecDeque::new(); self.inputs.len()];
        Ok(())
    }

    fn process(&mut self, item: Data, out: &mut Vec<Data>) -> Result<(), NodeError> {
        self.process_from(0, item, out)
    }

    fn process_from(
        &mut self,
        port: usize,
        item: Data,
        out: &mut Vec<Data>,
    ) -> Result<(), NodeError> {
        self.push(port, item, out).map_err(|e| e.error)
    }

    /// Queues the whole batch on its port, then emits every complete round: the same
    /// rounds, in the same order, as one item at a time.
    fn process_batch(
        &mut self,
        port: usize,
        items: &mut Vec<Data>,
        out: &mut Vec<Data>,
    ) -> Result<(), ItemError> {
        if items.is_empty() {
            return Ok(());
        }
        if port >= self.queues.len() {
            let item = items.remove(0);
            return Err(ItemError {
                item,
                error: unknown_port(port),
            });
        }
        // All at once while no input can overflow (the common case)...
        let queued = self.queues[port].len();
        if queued + items.len() <= self.max_pending {
            self.queues[port].extend(items.drain(..));
            self.emit_rounds(out);
            return Ok(());
        }
        // ...else one by one, failing at the item that overflows, the rest left in
        // `items`.
        let mut rest = std::mem::take(items).into_iter();
        while let Some(item) = rest.next() {
            if let Err(e) = self.push(port, item, out) {
                items.extend(rest);
                return Err(e);
            }
        }
        Ok(())
    }

    fn finish(&mut self, _out: &mut Vec<Data>) -> Result<(), NodeError> {
        let left: Vec<String> = self
            .inputs
            .iter()
            .zip(&self.queues)
            .filter(|(_, q)| !q.is_empty())
            .map(|(n, q)| format!("`{n}` has {} unpaired item(s)", q.len()))
            .collect();
        if left.is_empty() {
            return Ok(());
        }
        let msg = format!("inputs ended unevenly: {}", left.join(", "));
        if self.strict {
            Err(NodeError::invalid_input(msg))
        } else {
            tracing::warn!(node = %self.node_id, "{msg}; dropping them (strict = false)");
            Ok(())
        }
    }
}

/// Params of [`Zip`].
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ZipParams {
    /// Fail at end of stream when some input has unpaired items (false: drop them with
    /// a warning).
    #[serde(default = "yes")]
    pub strict: bool,
    /// Unpaired items one input may hold while waiting for the others; the next one
    /// fails (an input that filters items out would otherwise have the others held
    /// without bound).
    #[serde(default = "default_max_pending")]
    #[schemars(range(min = 1))]
    pub max_pending: u64,
}

fn default_max_pending() -> u64 {
    DEFAULT_MAX_PENDING as u64
}

fn yes() -> bool {
    true
}

impl NodeType for Zip {
    const NAME: &'static str = "Zip";
    const ALIASES: &'static [&'static str] = &["ZipNode"];
    const DESCRIPTION: &'static str =
        "Waits until every input has an item, then emits one map keyed by upstream node id.";
    const INPUT: &'static str = "items from several upstream nodes";
    const OUTPUT: &'static str = "{\"<upstream id>\": item, ...} per round";
    type Params = ZipParams;

    fn from_params(params: &ZipParams) -> Result<Self, NodeError> {
        let max = usize::try_from(params.max_pending).unwrap_or(usize::MAX);
        Ok(Zip::with_max_pending(params.strict, max))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_by_round_and_reports_leftovers() {
        let mut z = Zip::new(true);
        z.initialize(&NodeContext {
            node_id: "z".into(),
            node_type: "Zip".into(),
            inputs: ["a", "b"].map(std::sync::Arc::from).into(),
        })
        .unwrap();
        let mut out = vec![];
        z.process_from(0, Data::Int(1), &mut out).unwrap();
        z.process_from(0, Data::Int(2), &mut out).unwrap();
        assert!(out.is_empty());
        z.process_from(1, Data::Int(10), &mut out).unwrap();
        assert_eq!(out[0].to_json_string(), r#"{"a":1,"b":10}"#);
        let e = z.finish(&mut out).unwrap_err();
        assert_eq!(
            e.message,
            "inputs ended unevenly: `a` has 1 unpaired item(s)"
        );
    }

    fn zip3() -> Zip {
        let mut z = Zip::new(false);
        z.initialize(&NodeContext {
            node_id: "z".into(),
            node_type: "Zip".into(),
            inputs: ["a", "b", "c"].map(std::sync::Arc::from).into(),
        })
        .unwrap();
        z
    }

    #[test]
    fn an_input_holds_at_most_max_pending_unpaired_items() {
        let mut z = Zip::with_max_pending(true, 3);
        z.initialize(&NodeContext {
            node_id: "z".into(),
            node_type: "Zip".into(),
            inputs: ["a", "b"].map(std::sync::Arc::from).into(),
        })
        .unwrap();
        let mut out = vec![];
        let mut v: Vec<Data> = (0..3).map(Data::Int).collect();
        z.process_batch(0, &mut v, &mut out).unwrap();
        // Items paired within a batch do not count.
        let mut v: Vec<Data> = (10..15).map(Data::Int).collect();
        z.process_batch(1, &mut v, &mut out).unwrap();
        assert_eq!(out.len(), 3);
        // 3 and 4 are paired, 5 to 7 wait, 8 is one too many.
        let mut v: Vec<Data> = (3..10).map(Data::Int).collect();
        let e = z.process_batch(0, &mut v, &mut out).unwrap_err();
        assert_eq!((e.item, v), (Data::Int(8), vec![Data::Int(9)]));
        assert_eq!(out.len(), 5);
        assert_eq!(
            e.error.message,
            "input `a` has 3 items waiting for an item from `b` (max_pending); an input that \
             drops items leaves the others unpaired"
        );
        let e = z.process_from(0, Data::Int(10), &mut out).unwrap_err();
        assert!(e.message.starts_with("input `a` has 3 items waiting"));
    }

    #[test]
    fn batches_pair_like_single_items() {
        let arrivals: Vec<(usize, Vec<i64>)> = vec![
            (0, vec![1, 2, 3]),
            (2, vec![30]),
            (1, vec![10, 20, 40, 50]),
            (2, vec![31, 32, 33]),
            (0, vec![4]),
        ];
        let mut one = zip3();
        let mut want = vec![];
        for (port, items) in &arrivals {
            for &i in items {
                one.process_from(*port, Data::Int(i), &mut want).unwrap();
            }
        }
        let mut batch = zip3();
        let mut got = vec![];
        for (port, items) in &arrivals {
            let mut v: Vec<Data> = items.iter().map(|&i| Data::Int(i)).collect();
            batch.process_batch(*port, &mut v, &mut got).unwrap();
            assert!(v.is_empty());
        }
        assert_eq!(got.len(), 4);
        assert_eq!(got, want);
        let mut v = vec![Data::Int(1), Data::Int(2)];
        let e = batch.process_batch(7, &mut v, &mut got).unwrap_err();
        assert_eq!((e.item, v), (Data::Int(1), vec![Data::Int(2)]));
    }
}
