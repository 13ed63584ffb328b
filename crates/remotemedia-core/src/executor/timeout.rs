//! Per-item time limits: a node with `timeout_ms` runs on a worker thread of its own,
//! and a call that overruns is abandoned.
//!
//! A thread cannot be killed safely, so on a timeout the worker (and the node instance
//! it owns) is left to finish its call, after which it runs `cleanup` on that instance
//! and exits. A fresh instance is built from the factory for later items and retries.

use std::sync::Arc;
use std::time::Duration;

use crate::data::Data;
use crate::error::{ErrorKind, NodeError};
use crate::node::{Execution, Node, NodeContext};
use crate::registry::{NodeFactory, Params};

enum Call {
    Process(usize, Data),
    Finish,
    Cleanup,
}

type Reply = Result<Vec<Data>, NodeError>;

struct Worker {
    calls: flume::Sender<Call>,
    replies: flume::Receiver<Reply>,
}

impl Worker {
    /// Starts a worker owning `node`, initializes it there and waits for the result.
    fn start(
        mut node: Box<dyn Node>,
        ctx: NodeContext,
        limit: Duration,
    ) -> Result<Worker, NodeError> {
        let (call_tx, call_rx) = flume::bounded::<Call>(1);
        let (reply_tx, reply_rx) = flume::bounded::<Reply>(1);
        let name = format!("rm-timed-{}", ctx.node_id);
        std::thread::Builder::new()
            .name(name)
            .spawn(move || {
                let init = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    node.initialize(&ctx)
                }))
                .unwrap_or_else(|_| Err(NodeError::new(ErrorKind::Panic, "initialize panicked")));
                let ok = init.is_ok();
                if reply_tx.send(init.map(|_| Vec::new())).is_err() || !ok {
                    let _ = node.cleanup();
                    return;
                }
                while let Ok(call) = call_rx.recv() {
                    if let Call::Cleanup = call {
                        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            node.cleanup()
                        }))
                        .unwrap_or_else(|_| {
                            Err(NodeError::new(ErrorKind::Panic, "cleanup panicked"))
                        });
                        let _ = reply_tx.send(r.map(|_| Vec::new()));
                        return;
                    }
                    let mut out = Vec::new();
                    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match call {
                        Call::Process(port, item) => node.process_from(port, item, &mut out),
                        Call::Finish => node.finish(&mut out),
                        Call::Cleanup => Ok(()),
                    }));
                    let reply = match r {
                        Ok(Ok(())) => Ok(out),
                        Ok(Err(e)) => Err(e),
                        Err(_) => Err(NodeError::new(
                            ErrorKind::Panic,
                            "panicked while processing an item",
                        )),
                    };
                    if reply_tx.send(reply).is_err() {
                        break; // abandoned after a timeout
                    }
                }
                if let Err(e) = node.cleanup() {
                    tracing::warn!(node = %ctx.node_id, "cleanup failed: {e}");
                }
            })
            .map_err(|e| {
                NodeError::new(
                    ErrorKind::Resource,
                    format!("cannot start worker thread: {e}"),
                )
            })?;
        match reply_rx.recv_timeout(limit) {
            Ok(Ok(_)) => Ok(Worker {
                calls: call_tx,
                replies: reply_rx,
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(NodeError::new(
                ErrorKind::Timeout,
                format!("initialize took longer than {} ms", limit.as_millis()),
            )),
        }
    }
}

/// Wraps a node so that each call is bounded by a time limit.
pub struct TimedNode {
    pending: Option<Box<dyn Node>>,
    factory: Arc<dyn NodeFactory>,
    params: Params,
    limit: Duration,
    ctx: NodeContext,
    worker: Option<Worker>,
}

impl TimedNode {
    /// Wraps `node`; `factory` and `params` build a replacement after a timeout.
    pub fn new(
        node: Box<dyn Node>,
        factory: Arc<dyn NodeFactory>,
        params: Params,
        limit: Duration,
    ) -> Self {
        Self {
            pending: Some(node),
            factory,
            params,
            limit,
            ctx: NodeContext::default(),
            worker: None,
        }
    }

    fn worker(&mut self) -> Result<&Worker, NodeError> {
        if self.worker.is_none() {
            let node = match self.pending.take() {
                Some(n) => n,
                None => self.factory.create(&self.params)?,
            };
            self.worker = Some(Worker::start(node, self.ctx.clone(), self.limit)?);
        }
        Ok(self.worker.as_ref().expect("just set"))
    }

    fn call(&mut self, call: Call, out: &mut Vec<Data>) -> Result<(), NodeError> {
        let limit = self.limit;
        let worker = self.worker()?;
        if worker.calls.send(call).is_err() {
            self.worker = None;
            return Err(NodeError::new(ErrorKind::Crashed, "worker thread is gone"));
        }
        match worker.replies.recv_timeout(limit) {
            Ok(Ok(mut items)) => {
                out.append(&mut items);
                Ok(())
            }
            Ok(Err(e)) => Err(e),
            Err(_) => {
                // Abandon the busy worker; the next call starts a fresh instance.
                self.worker = None;
                Err(NodeError::new(
                    ErrorKind::Timeout,
                    format!("no result within {} ms", limit.as_millis()),
                ))
            }
        }
    }
}

impl Node for TimedNode {
    fn initialize(&mut self, ctx: &NodeContext) -> Result<(), NodeError> {
        self.ctx = ctx.clone();
        self.worker().map(|_| ())
    }

    fn process(&mut self, item: Data, out: &mut Vec<Data>) -> Result<(), NodeError> {
        self.call(Call::Process(0, item), out)
    }

    fn process_from(
        &mut self,
        port: usize,
        item: Data,
        out: &mut Vec<Data>,
    ) -> Result<(), NodeError> {
        self.call(Call::Process(port, item), out)
    }

    fn finish(&mut self, out: &mut Vec<Data>) -> Result<(), NodeError> {
        if self.worker.is_none() && self.pending.is_none() {
            // The instance that held state was abandoned; nothing left to flush.
            return Ok(());
        }
        self.call(Call::Finish, out)
    }

    fn cleanup(&mut self) -> Result<(), NodeError> {
        // Abandoned instances clean themselves up when their call returns; the live one
        // is cleaned up here, synchronously.
        match self.worker.take() {
            Some(w) => {
                if w.calls.send(Call::Cleanup).is_err() {
                    return Ok(());
                }
                match w.replies.recv_timeout(self.limit) {
                    Ok(r) => r.map(|_| ()),
                    Err(_) => Err(NodeError::new(
                        ErrorKind::Timeout,
                        format!("cleanup took longer than {} ms", self.limit.as_millis()),
                    )),
                }
            }
            None => Ok(()),
        }
    }

    fn execution(&self) -> Execution {
        Execution::Dedicated
    }
}
