//! Test-only node types: a probe that records its lifecycle and fails on demand.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use remotemedia_core::manifest::{self, Format, Pipeline};
use remotemedia_core::registry::{NodeDoc, NodeFactory, ParamIssue, Params};
use remotemedia_core::{Data, ErrorKind, Execution, Node, NodeContext, NodeError, Registry};

/// Shared log of lifecycle events: `"<id>:<event>"`.
pub type Log = Arc<Mutex<Vec<String>>>;

/// A node that passes items through and, per params, misbehaves:
/// `fail_on` (int item → error), `fail_times` (fail that many attempts, then succeed),
/// `panic_on`, `sleep_ms` per item, `sleep_first_ms` (only on the first call of the first instance),
/// `fail_init`, `dedicated`.
pub struct Probe {
    log: Log,
    id: String,
    params: Params,
    failures: i64,
    calls: u64,
}

impl Probe {
    fn note(&self, event: &str) {
        self.log
            .lock()
            .unwrap()
            .push(format!("{}:{event}", self.id));
    }
    fn int(&self, key: &str) -> Option<i64> {
        self.params.get(key).and_then(|v| v.as_i64())
    }
}

impl Node for Probe {
    fn initialize(&mut self, ctx: &NodeContext) -> Result<(), NodeError> {
        self.id = ctx.node_id.to_string();
        self.note("initialize");
        if self.params.get("fail_init").is_some() {
            return Err(NodeError::new(ErrorKind::Resource, "no device"));
        }
        Ok(())
    }

    fn process(&mut self, item: Data, out: &mut Vec<Data>) -> Result<(), NodeError> {
        self.calls += 1;
        if let Some(ms) = self.int("sleep_ms") {
            std::thread::sleep(Duration::from_millis(ms as u64));
        }
        if let Some(us) = self.int("spin_us") {
            let until = std::time::Instant::now() + Duration::from_micros(us as u64);
            while std::time::Instant::now() < until {}
        }
        if let Some(ms) = self.int("sleep_first_ms") {
            // Once per pipeline, not per instance: a replacement instance does not sleep.
            let marker = format!("{}:slept", self.id);
            let first = {
                let mut log = self.log.lock().unwrap();
                let first = !log.contains(&marker);
                if first {
                    log.push(marker);
                }
                first
            };
            if first {
                std::thread::sleep(Duration::from_millis(ms as u64));
            }
        }
        if let Some(v) = item.as_i64() {
            if Some(v) == self.int("panic_on") {
                panic!("probe asked to panic on {v}");
            }
            if Some(v) == self.int("fail_on") {
                let limit = self.int("fail_times").unwrap_or(i64::MAX);
                if self.failures < limit {
                    self.failures += 1;
                    return Err(NodeError::invalid_input(format!("probe rejects {v}")));
                }
            }
        }
        out.push(item);
        Ok(())
    }

    fn finish(&mut self, _out: &mut Vec<Data>) -> Result<(), NodeError> {
        self.note("finish");
        Ok(())
    }

    fn cleanup(&mut self) -> Result<(), NodeError> {
        self.note("cleanup");
        Ok(())
    }

    fn execution(&self) -> Execution {
        if self.params.get("dedicated").is_some() {
            Execution::Dedicated
        } else {
            Execution::Inline
        }
    }
}

struct ProbeFactory {
    doc: std::sync::Arc<NodeDoc>,
    log: Log,
}

/// Knobs of the test probe.
#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct ProbeParams {
    /// Fail on this input.
    fail_on: Option<i64>,
    /// How many times to fail on it.
    fail_times: Option<i64>,
    /// Panic on this input.
    panic_on: Option<i64>,
    /// Sleep this long per item.
    sleep_ms: Option<i64>,
    /// Spin this long per item.
    spin_us: Option<i64>,
    /// Sleep this long on the first item only.
    sleep_first_ms: Option<i64>,
    /// Fail in initialize.
    fail_init: Option<bool>,
    /// Run on a thread of its own.
    dedicated: Option<bool>,
}

impl NodeFactory for ProbeFactory {
    fn doc(&self) -> &NodeDoc {
        &self.doc
    }
    fn validate(&self, params: &Params) -> Vec<ParamIssue> {
        self.doc.check(params)
    }
    fn create(&self, params: &Params) -> Result<Box<dyn Node>, NodeError> {
        Ok(Box::new(Probe {
            log: Arc::clone(&self.log),
            id: String::new(),
            params: params.clone(),
            failures: 0,
            calls: 0,
        }))
    }
    fn execution(&self, params: &Params) -> Execution {
        if params.get("dedicated").is_some() {
            Execution::Dedicated
        } else {
            Execution::Inline
        }
    }
}

/// The built-in registry plus `Probe`, and the probe log.
pub fn registry() -> (Registry, Log) {
    let log: Log = Arc::default();
    let mut r = Registry::builtin();
    r.register(Arc::new(ProbeFactory {
        log: Arc::clone(&log),
        doc: NodeDoc::with_params::<ProbeParams>("Probe", &[], "test probe", "any", "the input"),
    }));
    (r, log)
}

/// Loads a YAML manifest with the given registry, panicking with the errors.
pub fn load(yaml: &str, registry: &Registry) -> Pipeline {
    manifest::load_str(yaml, Format::Yaml, registry).unwrap_or_else(|e| panic!("{e}"))
}

/// Items `0..n` as ints.
pub fn ints(n: i64) -> Vec<Data> {
    (0..n).map(Data::Int).collect()
}

/// Ints out of data.
pub fn as_ints(items: &[Data]) -> Vec<i64> {
    items.iter().map(|d| d.as_i64().expect("int")).collect()
}
