//! Per-item time limits: a node with `timeout_ms` runs on a worker thread of its own,
//! and a call that overruns is abandoned.
//!
//! A thread cannot be killed safely, so on a timeout the worker (and the node instance
//! it owns) is left to finish its call, after which it runs `cleanup` on that instance
//! and exits. A fresh instance is built from the factory for later items and retries,
//! on a worker thread of its own and within the same limit: building may need what the
//! abandoned call still holds (an interpreter that runs one call at a time), so a call
//! made while the replacement is not ready fails with a timeout (to be retried or
//! skipped as any other) instead of waiting for it, and the replacement is used once
//! it is.

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

/// Makes the node instance a worker owns (on the worker's thread).
type Make = Box<dyn FnOnce() -> Result<Box<dyn Node>, NodeError> + Send>;

impl Worker {
    /// Starts a worker that makes its node with `make` and initializes it; its first
    /// reply says whether that worked.
    fn spawn(make: Make, ctx: NodeContext) -> Result<Worker, NodeError> {
        let (call_tx, call_rx) = flume::bounded::<Call>(1);
        let (reply_tx, reply_rx) = flume::bounded::<Reply>(1);
        let name = format!("rm-timed-{}", ctx.node_id);
        std::thread::Builder::new()
            .name(name)
            .spawn(move || {
                let made = std::panic::catch_unwind(std::panic::AssertUnwindSafe(make))
                    .unwrap_or_else(|_| Err(NodeError::new(ErrorKind::Panic, "create panicked")));
                let mut node = match made {
                    Ok(n) => n,
                    Err(e) => {
                        let _ = reply_tx.send(Err(e));
                        return;
                    }
                };
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
        Ok(Worker {
            calls: call_tx,
            replies: reply_rx,
        })
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
    /// A worker whose instance is being made and initialized.
    starting: Option<Worker>,
    /// Whether an instance was abandoned after a timeout (so `starting` replaces it).
    replacing: bool,
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
            starting: None,
            replacing: false,
        }
    }

    /// The ready worker: the one in use, else the one starting (started now if there is
    /// none) once it is ready, waiting for it at most the time limit.
    fn worker(&mut self) -> Result<&Worker, NodeError> {
        if self.worker.is_none() {
            if self.starting.is_none() {
                let make: Make = match self.pending.take() {
                    Some(n) => Box::new(move || Ok(n)),
                    None => {
                        let factory = Arc::clone(&self.factory);
                        let params = self.params.clone();
                        Box::new(move || factory.create(&params))
                    }
                };
                self.starting = Some(Worker::spawn(make, self.ctx.clone())?);
            }
            let starting = self.starting.as_ref().expect("just set");
            match starting.replies.recv_timeout(self.limit) {
                Ok(Ok(_)) => {
                    self.worker = self.starting.take();
                    self.replacing = false;
                }
                Ok(Err(e)) => {
                    self.starting = None;
                    return Err(e);
                }
                Err(flume::RecvTimeoutError::Disconnected) => {
                    self.starting = None;
                    return Err(NodeError::new(ErrorKind::Crashed, "worker thread is gone"));
                }
                // Still starting: kept, and used once ready.
                Err(flume::RecvTimeoutError::Timeout) if self.replacing => {
                    return Err(NodeError::new(
                        ErrorKind::Timeout,
                        format!(
                            "no result within {} ms: the instance replacing one abandoned \
                             after a timeout is not ready (the abandoned call may still hold \
                             what it needs)",
                            self.limit.as_millis()
                        ),
                    ));
                }
                Err(flume::RecvTimeoutError::Timeout) => {
                    return Err(NodeError::new(
                        ErrorKind::Timeout,
                        format!("initialize took longer than {} ms", self.limit.as_millis()),
                    ));
                }
            }
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
                self.replacing = true;
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
            // The instance that held state was abandoned; nothing left to flush (a
            // replacement still starting has seen no item either).
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{NodeDoc, ParamIssue};
    use std::sync::Mutex;

    /// Instances share one "interpreter": a lock held for every call and for making an
    /// instance. Item -1 holds it until `release` is sent.
    struct Interp {
        lock: Arc<Mutex<()>>,
        release: Arc<Mutex<flume::Receiver<()>>>,
    }

    struct Shared(Arc<Mutex<()>>, Arc<Mutex<flume::Receiver<()>>>);

    impl Node for Shared {
        fn process(&mut self, item: Data, out: &mut Vec<Data>) -> Result<(), NodeError> {
            let _held = self.0.lock().unwrap_or_else(|p| p.into_inner());
            if item == Data::Int(-1) {
                let _ = self.1.lock().unwrap().recv();
            }
            out.push(item);
            Ok(())
        }
    }

    struct SharedFactory(Arc<NodeDoc>, Interp);

    impl NodeFactory for SharedFactory {
        fn doc(&self) -> &NodeDoc {
            &self.0
        }
        fn validate(&self, _: &Params) -> Vec<ParamIssue> {
            Vec::new()
        }
        fn create(&self, _: &Params) -> Result<Box<dyn Node>, NodeError> {
            let _held = self.1.lock.lock().unwrap_or_else(|p| p.into_inner());
            Ok(Box::new(Shared(
                Arc::clone(&self.1.lock),
                Arc::clone(&self.1.release),
            )))
        }
    }

    #[derive(serde::Deserialize, schemars::JsonSchema)]
    struct NoParams {}

    #[test]
    fn a_replacement_that_cannot_be_made_yet_fails_calls_until_it_is_ready() {
        let (release_tx, release_rx) = flume::unbounded();
        let factory = Arc::new(SharedFactory(
            NodeDoc::with_params::<NoParams>("Shared", &[], "test", "any", "the input"),
            Interp {
                lock: Arc::default(),
                release: Arc::new(Mutex::new(release_rx)),
            },
        ));
        let first = factory.create(&Params::new()).unwrap();
        let (calls_tx, calls_rx) = flume::unbounded::<i64>();
        let (tx, rx) = flume::unbounded();
        // The calls run on a thread of their own so that a hang fails the test.
        std::thread::spawn(move || {
            let mut node = TimedNode::new(first, factory, Params::new(), Duration::from_millis(50));
            node.initialize(&NodeContext::default()).unwrap();
            while let Ok(i) = calls_rx.recv() {
                let mut out = Vec::new();
                let r = node.process(Data::Int(i), &mut out).map(|()| out);
                tx.send(r.map_err(|e| e.message)).unwrap();
            }
        });
        let call = |i: i64| {
            calls_tx.send(i).unwrap();
            rx.recv_timeout(Duration::from_secs(20))
                .expect("a call hung")
        };
        assert_eq!(call(1), Ok(vec![Data::Int(1)]));
        // Times out, and keeps holding the lock.
        assert_eq!(call(-1), Err("no result within 50 ms".to_string()));
        // The replacement waits for the lock.
        let not_ready = "no result within 50 ms: the instance replacing one abandoned after a \
                         timeout is not ready (the abandoned call may still hold what it needs)";
        assert_eq!(call(2), Err(not_ready.to_string()));
        assert_eq!(call(3), Err(not_ready.to_string()));
        release_tx.send(()).unwrap();
        // Once the abandoned call returns, the replacement is made and used.
        let mut got = call(4);
        for _ in 0..400 {
            if got.is_ok() {
                break;
            }
            assert_eq!(got, Err(not_ready.to_string()));
            got = call(4);
        }
        assert_eq!(got, Ok(vec![Data::Int(4)]));
    }
}
