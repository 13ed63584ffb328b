//! `Echo`: wraps each item with a per-node counter.

use crate::data::Data;
use crate::error::NodeError;
use crate::node::{Node, NodeContext};
use crate::node_type::{NoParams, NodeType};

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

impl NodeType for Echo {
    const NAME: &'static str = "Echo";
    const ALIASES: &'static [&'static str] = &["EchoNode"];
    const DESCRIPTION: &'static str =
        "Wraps each item with the node id and a counter that starts at 1.";
    const INPUT: &'static str = "any item";
    const OUTPUT: &'static str = "{\"node\": <node id>, \"count\": <n>, \"data\": <item>}";
    type Params = NoParams;

    fn from_params(_: &NoParams) -> Result<Self, NodeError> {
        Ok(Echo::default())
    }
}
