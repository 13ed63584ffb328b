//! `Echo`: wraps each item with a per-node counter.

use crate::data::Data;
use crate::error::NodeError;
use crate::node::{Node, NodeContext};
use crate::registry::{NodeDoc, NodeFactory, Params};

/// Wraps each item as `{"node": <id>, "count": n, "data": item}`, `n` counting from 1.
#[derive(Debug, Default)]
pub struct Echo {
    node_id: String,
    count: i64,
}

impl Node for Echo {
    fn initialize(&mut self, ctx: &NodeContext) -> Result<(), NodeError> {
        self.node_id = ctx.node_id.to_string();
        Ok(())
    }

    fn process(&mut self, item: Data, out: &mut Vec<Data>) -> Result<(), NodeError> {
        self.count += 1;
        out.push(Data::map_from([
            ("node", Data::text(&self.node_id)),
            ("count", Data::Int(self.count)),
            ("data", item),
        ]));
        Ok(())
    }
}

pub(crate) struct EchoFactory {
    doc: NodeDoc,
}

impl EchoFactory {
    pub(crate) fn new() -> Self {
        Self {
            doc: NodeDoc {
                node_type: "Echo",
                aliases: &["EchoNode"],
                description: "Wraps each item with the node id and a counter that starts at 1.",
                input: "any item",
                output: "{\"node\": <node id>, \"count\": <n>, \"data\": <item>}",
                params: vec![],
            },
        }
    }
}

impl NodeFactory for EchoFactory {
    fn doc(&self) -> &NodeDoc {
        &self.doc
    }

    fn create(&self, _params: &Params) -> Result<Box<dyn Node>, NodeError> {
        Ok(Box::new(Echo::default()))
    }
}
