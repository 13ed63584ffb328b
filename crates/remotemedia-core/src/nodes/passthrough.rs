//! `PassThrough`: emits every item unchanged.

use crate::data::Data;
use crate::error::NodeError;
use crate::node::{ItemError, Node};
use crate::node_type::{NoParams, NodeType};

/// Emits each input unchanged.
#[derive(Debug, Default)]
pub struct PassThrough;

impl Node for PassThrough {
    fn process(&mut self, item: Data, out: &mut Vec<Data>) -> Result<(), NodeError> {
        out.push(item);
        Ok(())
    }

    fn process_batch(
        &mut self,
        _port: usize,
        items: &mut Vec<Data>,
        out: &mut Vec<Data>,
    ) -> Result<(), ItemError> {
        super::emit_all(items, out);
        Ok(())
    }
}

impl NodeType for PassThrough {
    const NAME: &'static str = "PassThrough";
    const ALIASES: &'static [&'static str] = &["PassThroughNode"];
    const DESCRIPTION: &'static str = "Emits every item unchanged.";
    const INPUT: &'static str = "any item";
    const OUTPUT: &'static str = "the same item";
    type Params = NoParams;

    fn from_params(_: &NoParams) -> Result<Self, NodeError> {
        Ok(PassThrough)
    }
}
