//! `PassThrough`: emits every item unchanged.

use crate::data::Data;
use crate::error::NodeError;
use crate::node::{ItemError, Node};
use crate::registry::{NodeDoc, NodeFactory, Params};

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

pub(crate) struct PassThroughFactory {
    doc: NodeDoc,
}

impl PassThroughFactory {
    pub(crate) fn new() -> Self {
        Self {
            doc: NodeDoc {
                node_type: "PassThrough",
                aliases: &["PassThroughNode"],
                description: "Emits every item unchanged.",
                input: "any item",
                output: "the same item",
                params: vec![],
            },
        }
    }
}

impl NodeFactory for PassThroughFactory {
    fn doc(&self) -> &NodeDoc {
        &self.doc
    }

    fn create(&self, _params: &Params) -> Result<Box<dyn Node>, NodeError> {
        Ok(Box::new(PassThrough))
    }
}
