//! The `PythonNode` node type: factory, host selection and the pipeline node.

use std::collections::VecDeque;

use remotemedia_core::node_type::TypedFactory;
use remotemedia_core::registry::ParamIssue;
use remotemedia_core::{
    Data, ErrorKind, Execution, GroupFailure, GroupMember, GroupOutcome, ItemError, Node,
    NodeContext, NodeError, NodeType, Params,
};

use crate::host::{BatchOutcome, GroupRun, Instance, ItemOutcome, LoadError};
use crate::spec::{self, NodeSpec, PythonNodeParams, Runtime};

/// Registered type name of Python nodes.
pub const PYTHON_NODE_TYPE: &str = "PythonNode";

/// Loads a node in the host its spec asks for (`auto`: CPython, then RustPython, each
/// tried in turn when the previous one is unavailable or fails for a compatibility
/// reason; the reason is logged).
pub fn load(spec: &NodeSpec) -> Result<Box<dyn Instance>, LoadError> {
    let runtime = spec
        .effective_runtime()
        .map_err(|reason| LoadError::Unavailable {
            runtime: Runtime::Auto,
            reason,
        })?;
    let start = std::time::Instant::now();
    let loaded = match runtime {
        Runtime::Auto => load_auto(spec),
        r => load_in(r, spec),
    };
    match &loaded {
        Ok(i) => tracing::debug!(
            target: "remotemedia::python",
            class = %spec.describe(),
            runtime = %i.runtime(),
            duration_ms = start.elapsed().as_micros() as f64 / 1000.0,
            "python class loaded"
        ),
        Err(e) => tracing::debug!(
            target: "remotemedia::python",
            class = %spec.describe(),
            error = %e,
            "python class failed to load"
        ),
    }
    loaded
}

fn load_auto(spec: &NodeSpec) -> Result<Box<dyn Instance>, LoadError> {
    let mut first: Option<LoadError> = None;
    let mut reasons = Vec::new();
    for r in [Runtime::CPython, Runtime::RustPython] {
        match load_in(r, spec) {
            Ok(i) => {
                if let Some(prev) = &first {
                    tracing::warn!(
                        target: "remotemedia::python",
                        "{}: runs in the {r} host; the previous host failed: {prev}",
                        spec.describe()
                    );
                }
                return Ok(i);
            }
            Err(e) if e.is_compat() => {
                tracing::info!(
                    target: "remotemedia::python",
                    "{}: {e}; trying the next host",
                    spec.describe()
                );
                reasons.push(format!("{r}: {e}"));
                // A node error is more useful than "host unavailable".
                let replace = matches!(
                    (&first, &e),
                    (None, _) | (Some(LoadError::Unavailable { .. }), LoadError::Node { .. })
                );
                if replace {
                    first = Some(e);
                }
            }
            Err(e) => return Err(e),
        }
    }
    match first {
        Some(LoadError::Node {
            runtime,
            message,
            traceback,
            compat,
        }) => Err(LoadError::Node {
            runtime,
            message: if reasons.len() > 1 {
                format!("{message} (runtime auto tried: {})", reasons.join("; "))
            } else {
                message
            },
            traceback,
            compat,
        }),
        _ => Err(LoadError::Unavailable {
            runtime: Runtime::Auto,
            reason: format!(
                "no Python host can run it: {}",
                if reasons.is_empty() {
                    "none is compiled in".to_string()
                } else {
                    reasons.join("; ")
                }
            ),
        }),
    }
}

fn load_in(runtime: Runtime, spec: &NodeSpec) -> Result<Box<dyn Instance>, LoadError> {
    match runtime {
        #[cfg(feature = "cpython")]
        Runtime::CPython => crate::cpython::load(spec),
        #[cfg(not(feature = "cpython"))]
        Runtime::CPython => Err(LoadError::Unavailable {
            runtime,
            reason: "not compiled in (cargo feature `cpython`)".into(),
        }),
        #[cfg(feature = "rustpython")]
        Runtime::RustPython => crate::rustpython::load(spec),
        #[cfg(not(feature = "rustpython"))]
        Runtime::RustPython => Err(LoadError::Unavailable {
            runtime,
            reason: "not compiled in (cargo feature `rustpython`)".into(),
        }),
        Runtime::Process => crate::process::load(spec),
        Runtime::Auto => load_auto(spec),
    }
}

/// The factory of the `PythonNode` node type (any class a manifest names).
pub type PythonNodeFactory = TypedFactory<PythonNode>;

impl NodeType for PythonNode {
    const NAME: &'static str = PYTHON_NODE_TYPE;
    const DESCRIPTION: &'static str =
        "A Python class run inside the runtime: `process(data)` (plain, async, generator or \
         async generator), optional `initialize()`, `cleanup()` and `flush()`. Runs in \
         embedded CPython, a pool of worker processes or embedded RustPython.";
    const INPUT: &'static str = "any item (as the Python value)";
    const OUTPUT: &'static str = "whatever `process` returns or yields (None emits nothing)";
    /// Any importable module, inline source, extra import paths and interpreter.
    const EXECUTES_CLIENT_CODE: bool = true;
    type Params = PythonNodeParams;

    fn check(written: &Params) -> Vec<ParamIssue> {
        spec::check(written)
    }

    fn from_params(params: &PythonNodeParams) -> Result<Self, NodeError> {
        let spec =
            NodeSpec::from_params(params).map_err(|m| NodeError::new(ErrorKind::Config, m))?;
        PythonNode::load(&spec)
    }

    fn execution_of(params: &PythonNodeParams) -> Execution {
        NodeSpec::from_params(params).map_or(Execution::Inline, |s| execution_of(&s))
    }
}

/// How a node of `spec` is scheduled: worker processes are waited on from a thread of
/// their own; the embedded hosts (which `auto` chooses between) run inline.
pub(crate) fn execution_of(spec: &NodeSpec) -> Execution {
    if spec.effective_runtime() == Ok(Runtime::Process) {
        Execution::Dedicated
    } else {
        Execution::Inline
    }
}

/// A pipeline node backed by a Python class in one of the hosts.
pub struct PythonNode {
    instance: Box<dyn Instance>,
    /// Outcomes of items the host processed past a failure, for the items the executor
    /// hands back next (so that no item is processed twice).
    ahead: VecDeque<ItemOutcome>,
}

impl std::fmt::Debug for PythonNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PythonNode")
            .field("runtime", &self.instance.runtime())
            .finish()
    }
}

impl PythonNode {
    /// Loads the node described by `spec` (see [`load`]).
    pub fn load(spec: &NodeSpec) -> Result<PythonNode, NodeError> {
        let instance = load(spec).map_err(|e| e.to_node_error())?;
        Ok(PythonNode {
            instance,
            ahead: VecDeque::new(),
        })
    }

    /// The host running the node.
    pub fn runtime(&self) -> Runtime {
        self.instance.runtime()
    }

    /// Runs `items` in order until one fails: `Ok` when all succeeded, else the index
    /// of the failed item and its error (the items after it are not consumed).
    fn run_slice(&mut self, items: &[Data], out: &mut Vec<Data>) -> Result<(), (usize, NodeError)> {
        // First the outcomes computed ahead by an earlier call.
        let mut used = 0;
        while used < items.len() {
            let Some(outcome) = self.ahead.pop_front() else {
                break;
            };
            match outcome {
                ItemOutcome::Ok(mut outs) => {
                    out.append(&mut outs);
                    used += 1;
                }
                ItemOutcome::Err(error) => return Err((used, error)),
            }
        }
        if used == items.len() {
            return Ok(());
        }
        self.ahead.clear();
        let BatchOutcome {
            mut outputs,
            ok,
            tail,
        } = self.instance.run(&items[used..]);
        out.append(&mut outputs);
        let mut tail = tail.into_iter();
        match tail.next() {
            None => Ok(()),
            Some(first) => {
                let error = match first {
                    ItemOutcome::Err(e) => e,
                    ItemOutcome::Ok(_) => {
                        NodeError::new(ErrorKind::Other, "host reported an outcome out of order")
                    }
                };
                self.ahead.extend(tail);
                Err((used + ok, error))
            }
        }
    }
}

impl Node for PythonNode {
    fn initialize(&mut self, ctx: &NodeContext) -> Result<(), NodeError> {
        self.instance.initialize(&ctx.node_id)
    }

    fn process(&mut self, item: Data, out: &mut Vec<Data>) -> Result<(), NodeError> {
        // Single calls are retries (or direct use): never served from `ahead`.
        let outcome = self.instance.run(std::slice::from_ref(&item));
        match outcome.tail.into_iter().next() {
            Some(ItemOutcome::Err(e)) => Err(e),
            _ => {
                out.extend(outcome.outputs);
                Ok(())
            }
        }
    }

    fn process_batch(
        &mut self,
        _port: usize,
        items: &mut Vec<Data>,
        out: &mut Vec<Data>,
    ) -> Result<(), ItemError> {
        match self.run_slice(items, out) {
            Ok(()) => {
                items.clear();
                Ok(())
            }
            Err((k, error)) => {
                let rest = items.split_off(k + 1);
                let item = items.pop().unwrap_or_default();
                *items = rest;
                Err(ItemError { item, error })
            }
        }
    }

    fn finish(&mut self, out: &mut Vec<Data>) -> Result<(), NodeError> {
        self.ahead.clear();
        let mut outs = self.instance.finish()?;
        out.append(&mut outs);
        Ok(())
    }

    fn cleanup(&mut self) -> Result<(), NodeError> {
        self.ahead.clear();
        self.instance.cleanup()
    }

    fn execution(&self) -> Execution {
        self.instance.execution()
    }

    fn group_member(&mut self) -> Option<&mut dyn GroupMember> {
        self.instance.group_key()?;
        Some(self)
    }
}

impl GroupMember for PythonNode {
    fn group_key(&self) -> usize {
        self.instance.group_key().unwrap_or_default()
    }

    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }

    fn process_group(
        &mut self,
        port: usize,
        items: &mut Vec<Data>,
        rest: &mut [&mut dyn Node],
        out: &mut Vec<Data>,
    ) -> GroupOutcome {
        // Members with outcomes computed ahead finish those one by one first.
        let mut members: Vec<&mut PythonNode> = Vec::with_capacity(rest.len());
        let mut handles = Vec::with_capacity(rest.len());
        if self.ahead.is_empty() {
            for node in rest.iter_mut() {
                let Some(member) = node
                    .group_member()
                    .and_then(|g| g.as_any_mut().downcast_mut::<PythonNode>())
                else {
                    break;
                };
                if !member.ahead.is_empty() {
                    break;
                }
                let Some(handle) = member.instance.group_handle() else {
                    break;
                };
                handles.push(handle);
                members.push(member);
            }
        }
        if handles.is_empty() {
            return remotemedia_core::node::process_alone(self, port, items, out);
        }
        let GroupRun {
            stats,
            last,
            last_inputs,
        } = self.instance.run_group(&handles, items);
        let BatchOutcome { outputs, ok, tail } = last;
        out.extend(outputs);
        let k = stats.len().saturating_sub(1);
        let mut tail = tail.into_iter();
        let failure = tail.next().map(|first| {
            let error = match first {
                ItemOutcome::Err(e) => e,
                ItemOutcome::Ok(_) => {
                    NodeError::new(ErrorKind::Other, "host reported an outcome out of order")
                }
            };
            let member: &mut PythonNode = if k == 0 { self } else { &mut *members[k - 1] };
            member.ahead.extend(tail);
            let mut inputs = if k == 0 {
                std::mem::take(items)
            } else {
                last_inputs
            };
            let rest = inputs.split_off((ok + 1).min(inputs.len()));
            let item = inputs.pop().unwrap_or_default();
            GroupFailure {
                error: ItemError { item, error },
                rest,
            }
        });
        items.clear();
        GroupOutcome {
            members: stats,
            failure,
        }
    }
}
