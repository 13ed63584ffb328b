//! Per-item time limits: each call of a node with `timeout_ms` runs on a thread of a
//! shared pool, and the caller waits at most the limit for it.
//!
//! A thread cannot be killed safely, so on a timeout the call (and the node instance
//! it holds) is abandoned: when the call returns, its thread runs `cleanup` on that
//! instance and goes back to the pool. A fresh instance is built from the factory for
//! later items and retries — made and initialized on a pool thread too, within the
//! same limit: making it may need what the abandoned call still holds (an interpreter
//! that runs one call at a time), so a call made while the replacement is not ready
//! fails with a timeout (retried or skipped as any other) instead of waiting for it,
//! and the replacement is used once it is.
//!
//! The pool is shared by every timed node of the process: a thread is started only
//! when no idle one is left, and an idle thread ends after [`IDLE_EXIT`]. So the
//! threads in use at once are the calls in progress (at most one per stage being run,
//! which the executor's pools bound) plus the abandoned calls still running, never one
//! per node.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Duration;

use crate::data::Data;
use crate::error::{ErrorKind, NodeError};
use crate::node::{Execution, Node, NodeContext};
use crate::registry::{NodeFactory, Params};

/// How long an idle pool thread waits for a call before it ends.
pub(crate) const IDLE_EXIT: Duration = Duration::from_secs(10);

type Job = Box<dyn FnOnce() + Send>;

/// Threads running timed calls, shared by the process.
struct CallPool {
    jobs_tx: flume::Sender<Job>,
    jobs_rx: flume::Receiver<Job>,
    /// Threads waiting for a job.
    idle: AtomicUsize,
}

fn pool() -> &'static CallPool {
    static POOL: OnceLock<CallPool> = OnceLock::new();
    POOL.get_or_init(|| {
        let (jobs_tx, jobs_rx) = flume::unbounded();
        CallPool {
            jobs_tx,
            jobs_rx,
            idle: AtomicUsize::new(0),
        }
    })
}

impl CallPool {
    /// Runs `job` on an idle thread, or on a new one when none is idle.
    fn submit(&'static self, job: Job) -> Result<(), NodeError> {
        // Claim an idle thread; when there is none, start one for this job.
        let claimed = self
            .idle
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .is_ok();
        if claimed {
            self.jobs_tx
                .send(job)
                .map_err(|_| NodeError::new(ErrorKind::Resource, "timed call pool is gone"))?;
            return Ok(());
        }
        std::thread::Builder::new()
            .name("rm-timed".into())
            .spawn(move || {
                let mut job = job;
                loop {
                    job();
                    self.idle.fetch_add(1, Ordering::AcqRel);
                    match self.jobs_rx.recv_timeout(IDLE_EXIT) {
                        Ok(next) => job = next,
                        Err(_) => {
                            // Leave unless a job was meant for this thread meanwhile.
                            let left = self
                                .idle
                                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                                    n.checked_sub(1)
                                })
                                .is_ok();
                            if left {
                                return;
                            }
                            match self.jobs_rx.recv() {
                                Ok(next) => job = next,
                                Err(_) => return,
                            }
                        }
                    }
                }
            })
            .map(|_| ())
            .map_err(|e| {
                NodeError::new(
                    ErrorKind::Resource,
                    format!("cannot start worker thread: {e}"),
                )
            })
    }
}

enum Call {
    Initialize(NodeContext),
    Process(usize, Data),
    Finish,
    Cleanup,
}

type Reply = Result<Vec<Data>, NodeError>;

/// Where a call's result meets its caller.
#[derive(Default)]
struct Slot {
    state: Mutex<SlotState>,
    done: Condvar,
}

#[derive(Default)]
struct SlotState {
    result: Option<(Box<dyn Node>, Reply)>,
    /// The caller stopped waiting: the instance is cleaned up where the call ran.
    abandoned: bool,
}

/// Runs `call` on `node` on a pool thread; waits at most `limit` for the node and the
/// reply. `Err(None)` when the call did not return in time (it was abandoned).
fn call_on_pool(
    mut node: Box<dyn Node>,
    call: Call,
    limit: Duration,
) -> Result<(Box<dyn Node>, Reply), Option<NodeError>> {
    let slot = Arc::new(Slot::default());
    let theirs = Arc::clone(&slot);
    let cleans_up = matches!(call, Call::Cleanup);
    let job: Job = Box::new(move || {
        let reply = run_call(&mut *node, call);
        let mut st = theirs.state.lock().unwrap_or_else(|p| p.into_inner());
        if st.abandoned {
            drop(st);
            if cleans_up {
                return;
            }
            if let Err(e) = node.cleanup() {
                tracing::warn!("cleanup of an abandoned instance failed: {e}");
            }
            return;
        }
        st.result = Some((node, reply));
        drop(st);
        theirs.done.notify_one();
    });
    pool().submit(job).map_err(Some)?;
    let deadline = std::time::Instant::now() + limit;
    let mut st = slot.state.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        if let Some(r) = st.result.take() {
            return Ok(r);
        }
        let now = std::time::Instant::now();
        if now >= deadline {
            st.abandoned = true;
            return Err(None);
        }
        st = slot
            .done
            .wait_timeout(st, deadline - now)
            .unwrap_or_else(|p| p.into_inner())
            .0;
    }
}

/// A node instance being made and initialized on a pool thread.
#[derive(Default)]
struct Starting {
    state: Mutex<StartState>,
    done: Condvar,
}

#[derive(Default)]
struct StartState {
    result: Option<Result<Box<dyn Node>, NodeError>>,
    /// Nobody will take the instance: the pool thread cleans it up.
    abandoned: bool,
}

type Make = Box<dyn FnOnce() -> Result<Box<dyn Node>, NodeError> + Send>;

/// Makes and initializes an instance on a pool thread; the result waits in the slot.
fn start_on_pool(make: Make, ctx: NodeContext) -> Result<Arc<Starting>, NodeError> {
    let slot = Arc::new(Starting::default());
    let theirs = Arc::clone(&slot);
    let job: Job = Box::new(move || {
        let made = std::panic::catch_unwind(std::panic::AssertUnwindSafe(make))
            .unwrap_or_else(|_| Err(NodeError::new(ErrorKind::Panic, "create panicked")));
        let result = made.and_then(|mut node| {
            match run_call(&mut *node, Call::Initialize(ctx)) {
                Ok(_) => Ok(node),
                Err(e) => {
                    // Cleanup is owed after a failed initialize too.
                    let _ = run_call(&mut *node, Call::Cleanup);
                    Err(e)
                }
            }
        });
        let mut st = theirs.state.lock().unwrap_or_else(|p| p.into_inner());
        if st.abandoned {
            drop(st);
            if let Ok(mut node) = result {
                if let Err(e) = node.cleanup() {
                    tracing::warn!("cleanup of an abandoned instance failed: {e}");
                }
            }
            return;
        }
        st.result = Some(result);
        drop(st);
        theirs.done.notify_one();
    });
    pool().submit(job)?;
    Ok(slot)
}

impl Starting {
    /// The instance, if it is ready within `limit` (else it stays in the slot).
    fn wait(&self, limit: Duration) -> Option<Result<Box<dyn Node>, NodeError>> {
        let deadline = std::time::Instant::now() + limit;
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(r) = st.result.take() {
                return Some(r);
            }
            let now = std::time::Instant::now();
            if now >= deadline {
                return None;
            }
            st = self
                .done
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Nobody will wait for it any more: cleaned up where it was made.
    fn abandon(&self) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.abandoned = true;
        if let Some(Ok(mut node)) = st.result.take() {
            drop(st);
            let _ = node.cleanup();
        }
    }
}

fn run_call(node: &mut dyn Node, call: Call) -> Reply {
    let mut out = Vec::new();
    let what = match call {
        Call::Initialize(_) => "initialize panicked",
        Call::Process(..) => "panicked while processing an item",
        Call::Finish => "finish panicked",
        Call::Cleanup => "cleanup panicked",
    };
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match call {
        Call::Initialize(ctx) => node.initialize(&ctx),
        Call::Process(port, item) => node.process_from(port, item, &mut out),
        Call::Finish => node.finish(&mut out),
        Call::Cleanup => node.cleanup(),
    }));
    match r {
        Ok(Ok(())) => Ok(out),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(NodeError::new(ErrorKind::Panic, what)),
    }
}

/// Wraps a node so that each call is bounded by a time limit.
pub struct TimedNode {
    /// The instance not initialized yet (the one the plan built).
    pending: Option<Box<dyn Node>>,
    /// The initialized instance, between calls.
    live: Option<Box<dyn Node>>,
    factory: Arc<dyn NodeFactory>,
    params: Params,
    limit: Duration,
    ctx: NodeContext,
    /// An instance being made and initialized.
    starting: Option<Arc<Starting>>,
    /// Whether an instance was abandoned after a timeout (so `starting` replaces it).
    replacing: bool,
}

impl TimedNode {
    /// How every timed node is scheduled: its calls wait on a pool thread.
    pub(crate) const EXECUTION: Execution = Execution::Dedicated;

    /// Wraps `node`; `factory` and `params` build a replacement after a timeout.
    pub fn new(
        node: Box<dyn Node>,
        factory: Arc<dyn NodeFactory>,
        params: Params,
        limit: Duration,
    ) -> Self {
        Self {
            pending: Some(node),
            live: None,
            factory,
            params,
            limit,
            ctx: NodeContext::default(),
            starting: None,
            replacing: false,
        }
    }

    fn too_slow(&self, what: &str) -> NodeError {
        NodeError::new(
            ErrorKind::Timeout,
            format!("{what} took longer than {} ms", self.limit.as_millis()),
        )
    }

    /// The initialized instance: the live one, else the one starting (started now if
    /// there is none: the pending instance or a fresh one from the factory), once it is
    /// ready, waiting for it at most the limit.
    fn instance(&mut self) -> Result<Box<dyn Node>, NodeError> {
        if let Some(n) = self.live.take() {
            return Ok(n);
        }
        if self.starting.is_none() {
            let make: Make = match self.pending.take() {
                Some(n) => Box::new(move || Ok(n)),
                None => {
                    let factory = Arc::clone(&self.factory);
                    let params = self.params.clone();
                    Box::new(move || factory.create(&params))
                }
            };
            self.starting = Some(start_on_pool(make, self.ctx.clone())?);
        }
        let starting = Arc::clone(self.starting.as_ref().expect("just set"));
        match starting.wait(self.limit) {
            Some(result) => {
                self.starting = None;
                self.replacing = false;
                result
            }
            // Still starting: kept, and used once ready.
            None if self.replacing => Err(NodeError::new(
                ErrorKind::Timeout,
                format!(
                    "no result within {} ms: the instance replacing one abandoned after a \
                     timeout is not ready (the abandoned call may still hold what it needs)",
                    self.limit.as_millis()
                ),
            )),
            None => Err(self.too_slow("initialize")),
        }
    }

    fn call(&mut self, call: Call, out: &mut Vec<Data>) -> Result<(), NodeError> {
        let node = self.instance()?;
        match call_on_pool(node, call, self.limit) {
            Ok((node, reply)) => {
                self.live = Some(node);
                out.append(&mut reply?);
                Ok(())
            }
            // The instance was abandoned; the next call starts a fresh one.
            Err(None) => {
                tracing::debug!(
                    node = %self.ctx.node_id,
                    limit_ms = self.limit.as_millis() as u64,
                    "call abandoned at its time limit: a fresh instance replaces this one"
                );
                self.replacing = true;
                Err(NodeError::new(
                    ErrorKind::Timeout,
                    format!("no result within {} ms", self.limit.as_millis()),
                ))
            }
            Err(Some(e)) => Err(e),
        }
    }
}

impl Node for TimedNode {
    fn initialize(&mut self, ctx: &NodeContext) -> Result<(), NodeError> {
        self.ctx = ctx.clone();
        let node = self.instance()?;
        self.live = Some(node);
        Ok(())
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
        // (A replacement still starting has processed nothing either.)
        if self.live.is_none() && self.pending.is_none() {
            // The instance that held state was abandoned; nothing left to flush.
            return Ok(());
        }
        self.call(Call::Finish, out)
    }

    fn cleanup(&mut self) -> Result<(), NodeError> {
        // Abandoned instances are cleaned up when their call returns, one still
        // starting when it is ready; the live one is cleaned up here, waiting at most
        // the limit.
        if let Some(s) = self.starting.take() {
            s.abandon();
        }
        match self.live.take() {
            Some(node) => match call_on_pool(node, Call::Cleanup, self.limit) {
                Ok((_, reply)) => reply.map(|_| ()),
                Err(None) => Err(self.too_slow("cleanup")),
                Err(Some(e)) => Err(e),
            },
            None => Ok(()),
        }
    }

    fn execution(&self) -> Execution {
        Self::EXECUTION
    }
}
