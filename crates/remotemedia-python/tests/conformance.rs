//! The conformance suite: every Python host compiled into this build (cpython, process,
//! rustpython) must behave the same. Each test runs its case in every host and reports
//! the hosts that differ.
//!
//! Print capture is checked in a child process (this test binary run again for one
//! test), so that its stderr can be read.

use std::sync::{Mutex, Once};
use std::time::Duration;

use remotemedia_core::executor::{run_pipeline, RunFailure, RunOptions, RunResult};
use remotemedia_core::manifest::{self, Format};
use remotemedia_core::{Data, ErrorKind, RunError};
use remotemedia_python::{ItemOutcome, NodeSpec, Runtime};
use serde_json::json;

/// The hosts of this build.
fn hosts() -> Vec<Runtime> {
    let mut h = Vec::new();
    if cfg!(feature = "cpython") {
        h.push(Runtime::CPython);
    }
    h.push(Runtime::Process);
    if cfg!(feature = "rustpython") {
        h.push(Runtime::RustPython);
    }
    h
}

// ------------------------------------------------------------------------- tracing

/// Log events seen by the test subscriber: `(level, node, message)`.
static EVENTS: Mutex<Vec<(tracing::Level, String, String)>> = Mutex::new(Vec::new());

struct Recorder;

struct Fields {
    node: String,
    message: String,
}

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "node" => self.node = format!("{value:?}"),
            "message" => self.message = format!("{value:?}"),
            _ => {}
        }
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        match field.name() {
            "node" => self.node = value.to_string(),
            "message" => self.message = value.to_string(),
            _ => {}
        }
    }
}

impl tracing::Subscriber for Recorder {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(tracing::level_filters::LevelFilter::DEBUG)
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        if event.metadata().target() != "remotemedia::python" {
            return;
        }
        let mut f = Fields {
            node: String::new(),
            message: String::new(),
        };
        event.record(&mut f);
        EVENTS
            .lock()
            .unwrap()
            .push((*event.metadata().level(), f.node, f.message));
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// Installs the recording subscriber before any host starts (the hosts read the
/// enabled level once, when they start).
fn setup() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = tracing::subscriber::set_global_default(Recorder);
    });
}

// ------------------------------------------------------------------------- helpers

fn manifest(rt: Runtime, params: serde_json::Value) -> String {
    let mut params = params;
    params["runtime"] = json!(rt.name());
    json!({
        "version": "v1",
        "metadata": {"name": "conformance"},
        "nodes": [{"id": "py", "node_type": "PythonNode", "params": params}],
        "connections": [],
    })
    .to_string()
}

/// Runs class `Node` of `source` (constructed with `init`) over `inputs` in host `rt`.
fn run_source(
    rt: Runtime,
    source: &str,
    init: serde_json::Value,
    inputs: Vec<Data>,
) -> Result<RunResult, RunFailure> {
    setup();
    let m = manifest(rt, json!({"class": "Node", "source": source, "init": init}));
    let reg = remotemedia_python::registry();
    let p = manifest::load_str(&m, Format::Json, &reg).expect("valid manifest");
    run_pipeline(&p, &reg, inputs, &RunOptions::default())
}

fn outputs(rt: Runtime, source: &str, inputs: Vec<Data>) -> Result<Vec<Data>, String> {
    run_source(rt, source, json!({}), inputs)
        .map(|r| r.outputs[0].items.clone())
        .map_err(|f| f.error.to_string())
}

fn ints(v: &[i64]) -> Vec<Data> {
    v.iter().map(|&i| Data::Int(i)).collect()
}

/// Runs `check` for every host and fails listing every host that failed.
fn each_host(check: impl Fn(Runtime) -> Result<(), String>) {
    let failures: Vec<String> = hosts()
        .into_iter()
        .filter_map(|rt| check(rt).err().map(|e| format!("[{rt}] {e}")))
        .collect();
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

fn expect_eq<T: PartialEq + std::fmt::Debug>(got: T, want: T) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("got {got:?}, expected {want:?}"))
    }
}

fn expect_contains(text: &str, part: &str) -> Result<(), String> {
    if text.contains(part) {
        Ok(())
    } else {
        Err(format!("{text:?} does not contain {part:?}"))
    }
}

// ------------------------------------------------------------------------- behaviour

#[test]
fn state_persists_across_items() {
    let src = "class Node:\n    def __init__(self):\n        self.total = 0\n    def process(self, x):\n        self.total += x\n        return self.total\n";
    each_host(|rt| expect_eq(outputs(rt, src, ints(&[1, 2, 3, 4]))?, ints(&[1, 3, 6, 10])));
}

#[test]
fn generators_yield_several_outputs_and_none_emits_nothing() {
    let src = "class Node:\n    def process(self, x):\n        for i in range(x):\n            yield None if i == 1 else i\n";
    each_host(|rt| expect_eq(outputs(rt, src, ints(&[0, 3, 2]))?, ints(&[0, 2, 0])));
    let src = "class Node:\n    def process(self, x):\n        return None if x % 2 else x\n";
    each_host(|rt| expect_eq(outputs(rt, src, ints(&[1, 2, 3, 4]))?, ints(&[2, 4])));
}

#[test]
fn async_process_and_async_generators() {
    let src = "import asyncio\nclass Node:\n    async def process(self, x):\n        await asyncio.sleep(0)\n        return x * 2\n";
    each_host(|rt| expect_eq(outputs(rt, src, ints(&[1, 2]))?, ints(&[2, 4])));
    let src = "class Node:\n    async def process(self, x):\n        for i in range(x):\n            yield i * 10\n";
    each_host(|rt| expect_eq(outputs(rt, src, ints(&[2, 1]))?, ints(&[0, 10, 0])));
}

#[test]
fn initialize_cleanup_once_and_flush_at_end() {
    each_host(|rt| {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let log = dir.path().join("events.txt");
        let src = "class Node:\n    def __init__(self, log):\n        self.log = log\n        self.seen = []\n    def _note(self, what):\n        with open(self.log, 'a') as f:\n            f.write(what + '\\n')\n    def initialize(self):\n        self._note('initialize')\n    def process(self, x):\n        self.seen.append(x)\n    def flush(self):\n        return sum(self.seen)\n    def cleanup(self):\n        self._note('cleanup')\n";
        let r = run_source(
            rt,
            src,
            json!({"log": log.to_string_lossy()}),
            ints(&[1, 2, 3]),
        )
        .map_err(|f| f.to_string())?;
        expect_eq(r.outputs[0].items.clone(), ints(&[6]))?;
        let events = std::fs::read_to_string(&log).map_err(|e| e.to_string())?;
        expect_eq(events.as_str(), "initialize\ncleanup\n")
    });
}

#[test]
fn exceptions_become_structured_node_errors() {
    let src = "class Node:\n    def process(self, x):\n        if x == 2:\n            self.fail(x)\n        return x\n    def fail(self, x):\n        raise KeyError('no such key: %d' % x)\n";
    each_host(|rt| {
        let f = run_source(rt, src, json!({}), ints(&[1, 2, 3]))
            .err()
            .ok_or("the run succeeded")?;
        let e = f.error.node_error().ok_or("not a node error")?;
        expect_eq(e.node_id.as_str(), "py")?;
        expect_eq(e.kind, ErrorKind::Python)?;
        expect_eq(e.message.as_str(), "KeyError: 'no such key: 2'")?;
        let tb = e.traceback.as_deref().ok_or("no traceback")?;
        expect_contains(tb, "Traceback (most recent call last)")?;
        expect_contains(tb, "in process")?;
        expect_contains(tb, "line 7, in fail")?;
        expect_contains(tb, "KeyError")?;
        if tb.contains("in batch") || tb.contains("driver") {
            return Err(format!("the runtime's frames are in the traceback:\n{tb}"));
        }
        expect_eq(f.partial.outputs[0].items.clone(), ints(&[1]))
    });
}

#[test]
fn logging_records_go_to_tracing_at_the_matching_level() {
    each_host(|rt| {
        let tag = format!("conformance-{rt}");
        let src = format!(
            "import logging\nlog = logging.getLogger('conf')\nclass Node:\n    def process(self, x):\n        log.warning('{tag} warn %d', x)\n        log.info('{tag} info')\n        log.error('{tag} error')\n        return x\n"
        );
        outputs(rt, &src, ints(&[7]))?;
        let events = EVENTS.lock().unwrap();
        let mine: Vec<(tracing::Level, String, String)> = events
            .iter()
            .filter(|(_, _, m)| m.starts_with(&tag))
            .cloned()
            .collect();
        expect_eq(
            mine,
            vec![
                (tracing::Level::WARN, "py".into(), format!("{tag} warn 7")),
                (tracing::Level::INFO, "py".into(), format!("{tag} info")),
                (tracing::Level::ERROR, "py".into(), format!("{tag} error")),
            ],
        )
    });
}

const CHILD_ENV: &str = "REMOTEMEDIA_CONFORMANCE_CHILD";

/// In a child process: runs a printing node in the host named by the environment.
#[test]
fn print_child() {
    let Ok(rt) = std::env::var(CHILD_ENV) else {
        return;
    };
    let rt = Runtime::from_name(&rt).expect("runtime name");
    let src = "class Node:\n    def process(self, x):\n        print('item', x)\n        print('partial', end='')\n        return x\n";
    let out = outputs(rt, src, ints(&[5])).unwrap();
    assert_eq!(out, ints(&[5]));
}

#[test]
fn print_is_captured_to_stderr_with_the_node_id() {
    each_host(|rt| {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["print_child", "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, rt.name())
            .output()
            .map_err(|e| e.to_string())?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            return Err(format!("child failed: {stdout}\n{stderr}"));
        }
        expect_contains(&stderr, "[py] item 5\n")?;
        expect_contains(&stderr, "[py] partial\n")?;
        if stdout.contains("item 5") {
            return Err(format!("print reached stdout: {stdout}"));
        }
        Ok(())
    });
}

#[test]
fn data_converts_both_ways() {
    let src = "class Node:\n    def process(self, x):\n        return [type(x).__name__, x]\n";
    let inputs = vec![
        Data::Null,
        Data::Bool(true),
        Data::Int(-9_007_199_254_740_993),
        Data::Float(2.5),
        Data::text("héllo"),
        Data::Bytes(bytes::Bytes::from_static(b"\x00\xff")),
        Data::list(vec![Data::Int(1), Data::text("a")]),
        Data::map_from([("k", Data::list(vec![Data::Bool(false)]))]),
    ];
    let names = [
        "NoneType", "bool", "int", "float", "str", "bytes", "list", "dict",
    ];
    let want: Vec<Data> = names
        .iter()
        .zip(&inputs)
        .map(|(n, d)| Data::list(vec![Data::text(*n), d.clone()]))
        .collect();
    each_host(|rt| expect_eq(outputs(rt, src, inputs.clone())?, want.clone()));
    // Python-only shapes: tuples become lists, bytearray bytes, int subclasses ints.
    let src = "class Node:\n    def process(self, x):\n        return {'t': (1, (2.0, None)), 'b': bytearray(b'ab'), 'big': 2**62, 'neg': -2**63}\n";
    let want = Data::map_from([
        (
            "t",
            Data::list(vec![
                Data::Int(1),
                Data::list(vec![Data::Float(2.0), Data::Null]),
            ]),
        ),
        ("b", Data::Bytes(bytes::Bytes::from_static(b"ab"))),
        ("big", Data::Int(1 << 62)),
        ("neg", Data::Int(i64::MIN)),
    ]);
    each_host(|rt| expect_eq(outputs(rt, src, ints(&[0]))?, vec![want.clone()]));
}

#[test]
fn ints_that_do_not_fit_i64_are_errors() {
    let src = "class Node:\n    def process(self, x):\n        return {'a': [0, x * 2**64]}\n";
    each_host(|rt| {
        let e = outputs(rt, src, ints(&[0, 1])).err().ok_or("no error")?;
        expect_contains(
            &e,
            "integer 18446744073709551616 does not fit a signed 64-bit int",
        )?;
        expect_contains(&e, "; input: 1")
    });
}

#[test]
fn unconvertible_return_is_an_error_naming_the_type() {
    let src = "class Thing:\n    pass\nclass Node:\n    def process(self, x):\n        return Thing() if x else x\n";
    each_host(|rt| {
        let e = outputs(rt, src, ints(&[0, 1])).err().ok_or("no error")?;
        expect_contains(&e, "node `py` (PythonNode) failed in process")?;
        expect_contains(&e, "cannot convert <")?;
        expect_contains(&e, "Thing object at")?;
        expect_contains(&e, "to pipeline data")
    });
}

// ------------------------------------------------------------------------- bad input

fn load_error(rt: Runtime, source: &str, init: serde_json::Value) -> Result<String, String> {
    match run_source(rt, source, init, vec![]) {
        Ok(_) => Err("the node loaded".into()),
        Err(f) => match f.error {
            RunError::Build { ref node_id, .. } if node_id == "py" => Ok(f.error.to_string()),
            ref other => Err(format!("unexpected error: {other}")),
        },
    }
}

#[test]
fn syntax_error_in_source() {
    each_host(|rt| {
        let e = load_error(rt, "class Node:\n    def process(self, x)\n", json!({}))?;
        expect_contains(&e, "cannot build node `py` (PythonNode)")?;
        expect_contains(&e, "syntax error in `source`")
    });
}

#[test]
fn missing_class() {
    each_host(|rt| {
        let e = load_error(rt, "class Other:\n    pass\n", json!({}))?;
        expect_contains(&e, "no class `Node` in `source`; it defines `Other`")
    });
}

#[test]
fn constructor_raises() {
    let src = "class Node:\n    def __init__(self, n):\n        raise RuntimeError('bad n %d' % n)\n    def process(self, x):\n        return x\n";
    each_host(|rt| {
        let e = load_error(rt, src, json!({"n": 4}))?;
        expect_contains(&e, "constructing `Node` failed: RuntimeError: bad n 4")
    });
}

#[test]
fn class_without_process() {
    each_host(|rt| {
        let e = load_error(rt, "class Node:\n    pass\n", json!({}))?;
        expect_contains(&e, "class `Node` has no `process` method")
    });
}

fn process_spec(source: &str) -> NodeSpec {
    let mut spec = NodeSpec::source(source, "Node");
    spec.runtime = Some(Runtime::Process);
    spec
}

#[test]
fn killed_worker_fails_its_item_and_is_replaced() {
    setup();
    let src = "import os\nclass Node:\n    def __init__(self):\n        self.n = 0\n    def process(self, x):\n        self.n += 1\n        if x == 3:\n            os.kill(os.getpid(), 9)\n        return [x, self.n]\n";
    let mut node = remotemedia_python::load(&process_spec(src)).unwrap();
    node.initialize("py").unwrap();
    let out = node.run(&ints(&[1, 2, 3, 4]));
    assert_eq!(out.ok, 2);
    assert_eq!(
        out.outputs,
        vec![Data::list(ints(&[1, 1])), Data::list(ints(&[2, 2]))]
    );
    match &out.tail[0] {
        ItemOutcome::Err(e) => {
            assert_eq!(e.kind, ErrorKind::Crashed);
            assert!(
                e.message
                    .contains("was killed by signal 9 (SIGKILL) while processing this item"),
                "{}",
                e.message
            );
        }
        other => panic!("{other:?}"),
    }
    // Later items continue on a fresh worker. Its state started over, and the items
    // before the killed one were run again there (their results died with the worker).
    let out = node.run(&ints(&[4, 5]));
    assert_eq!(
        out.outputs,
        vec![Data::list(ints(&[4, 3])), Data::list(ints(&[5, 4]))]
    );
    node.cleanup().unwrap();
}

#[test]
fn killed_worker_in_a_pipeline_is_the_items_node_error() {
    let src = "import os\nclass Node:\n    def process(self, x):\n        if x == 2:\n            os.kill(os.getpid(), 9)\n        return x\n";
    let f = run_source(Runtime::Process, src, json!({}), ints(&[1, 2, 3])).unwrap_err();
    let e = f.error.node_error().unwrap();
    assert_eq!(e.kind, ErrorKind::Crashed);
    assert_eq!(e.input_preview.as_deref(), Some("2"));
    assert_eq!(f.partial.outputs[0].items, ints(&[1]));
}

#[test]
fn hung_call_is_killed_at_timeout() {
    setup();
    let src = "import time\nclass Node:\n    def process(self, x):\n        if x == 2:\n            time.sleep(60)\n        return x\n";
    let mut spec = process_spec(src);
    spec.timeout = Some(Duration::from_millis(300));
    let mut node = remotemedia_python::load(&spec).unwrap();
    node.initialize("py").unwrap();
    let start = std::time::Instant::now();
    let out = node.run(&ints(&[1, 2, 3]));
    assert!(start.elapsed() < Duration::from_secs(10));
    assert_eq!(out.outputs, ints(&[1]));
    match &out.tail[0] {
        ItemOutcome::Err(e) => {
            assert_eq!(e.kind, ErrorKind::Timeout);
            assert!(
                e.message.starts_with("no result within 300 ms"),
                "{}",
                e.message
            );
        }
        other => panic!("{other:?}"),
    }
    let out = node.run(&ints(&[3, 4]));
    assert_eq!(out.outputs, ints(&[3, 4]));
    node.cleanup().unwrap();
}

// ------------------------------------------------------------------------- media

#[test]
fn audio_and_tensors_round_trip() {
    use remotemedia_core::{AudioBuffer, DType, Tensor};
    let audio = Data::from(AudioBuffer::new(vec![0.5f32, -0.25, 1.0, 0.0], 16_000, 2));
    let tensor = Data::from(
        Tensor::new(
            vec![2, 3],
            DType::I16,
            bytes::Bytes::from((0u8..12).collect::<Vec<u8>>()),
        )
        .unwrap(),
    );
    let src = "class Node:\n    def process(self, x):\n        return x\n";
    each_host(|rt| {
        expect_eq(
            outputs(rt, src, vec![audio.clone(), tensor.clone()])?,
            vec![audio.clone(), tensor.clone()],
        )
    });
    // Without numpy a node may build the tagged forms itself.
    let src = "class Node:\n    def process(self, x):\n        return {'$tensor': {'shape': [2], 'dtype': 'uint8', 'data': bytes([x, x + 1])}}\n";
    let want =
        Data::from(Tensor::new(vec![2], DType::U8, bytes::Bytes::from_static(&[7, 8])).unwrap());
    each_host(|rt| expect_eq(outputs(rt, src, ints(&[7]))?, vec![want.clone()]));
}

// ------------------------------------------------------------------------- auto

#[test]
fn auto_prefers_cpython_then_falls_back_on_compatibility_errors() {
    let which = "import sys\nclass Node:\n    def process(self, x):\n        return sys.implementation.name\n";
    let run_auto = |src: &str| {
        setup();
        let m = manifest(Runtime::Auto, json!({"class": "Node", "source": src}));
        let reg = remotemedia_python::registry();
        let p = manifest::load_str(&m, Format::Json, &reg).unwrap();
        run_pipeline(&p, &reg, ints(&[1]), &RunOptions::default())
            .map(|r| r.outputs[0].items.clone())
            .map_err(|f| f.error.to_string())
    };
    if !cfg!(any(feature = "cpython", feature = "rustpython")) {
        let e = run_auto(which).unwrap_err();
        assert!(e.contains("no Python host can run it"), "{e}");
        return;
    }
    let first = if cfg!(feature = "cpython") {
        "cpython"
    } else {
        "rustpython"
    };
    assert_eq!(run_auto(which).unwrap(), vec![Data::text(first)]);
    // A node that cannot import in CPython is retried in RustPython when compiled in.
    let picky = "import sys\nif sys.implementation.name != 'rustpython':\n    raise ImportError('this node needs RustPython')\nclass Node:\n    def process(self, x):\n        return sys.implementation.name\n";
    let got = run_auto(picky);
    if cfg!(feature = "rustpython") {
        assert_eq!(got.unwrap(), vec![Data::text("rustpython")]);
    } else {
        let e = got.unwrap_err();
        assert!(e.contains("ImportError: this node needs RustPython"), "{e}");
    }
    // A failure that is not about compatibility is not retried.
    let broken = "raise ValueError('broken node')\n";
    let e = run_auto(broken).unwrap_err();
    assert!(
        e.contains("running `source` failed: ValueError: broken node"),
        "{e}"
    );
    assert!(!e.contains("runtime auto tried"), "{e}");
}

// ------------------------------------------------------------------------- accounting

/// Runs `source` with `on_error: skip` and checks that every input is either an output
/// or a skipped item, with the failed one named.
fn skip_run(rt: Runtime, source: &str, workers: u64) -> Result<(), String> {
    setup();
    let m = json!({
        "version": "v1",
        "metadata": {"name": "accounting"},
        "nodes": [{"id": "py", "node_type": "PythonNode", "on_error": "skip", "params": {
            "class": "Node", "source": source, "runtime": rt.name(), "workers": workers,
        }}],
        "connections": [],
    });
    let reg = remotemedia_python::registry();
    let p = manifest::load_str(&m.to_string(), Format::Json, &reg).map_err(|e| format!("{e:?}"))?;
    let inputs: Vec<i64> = (1..=200).collect();
    let r =
        run_pipeline(&p, &reg, ints(&inputs), &RunOptions::default()).map_err(|f| f.to_string())?;
    let want: Vec<i64> = inputs
        .iter()
        .copied()
        .filter(|&x| x != 3 && x != 150)
        .collect();
    expect_eq(r.outputs[0].items.clone(), ints(&want))?;
    let previews: Vec<Option<String>> = r.skipped.iter().map(|e| e.input_preview.clone()).collect();
    expect_eq(previews, vec![Some("3".into()), Some("150".into())])?;
    let m = r
        .metrics
        .nodes
        .iter()
        .find(|n| &*n.node_id == "py")
        .ok_or("no metrics")?;
    expect_eq((m.items_in, m.items_out, m.errors), (200, 198, 2))
}

#[test]
fn failed_items_are_accounted_for_and_later_items_continue() {
    let src = "class Node:\n    def process(self, x):\n        if x in (3, 150):\n            raise ValueError(x)\n        return x\n";
    each_host(|rt| skip_run(rt, src, 1));
    // Killed workers, with one worker and with several (the batch is split).
    let src = "import os\nclass Node:\n    def process(self, x):\n        if x in (3, 150):\n            os.kill(os.getpid(), 9)\n        return x\n";
    skip_run(Runtime::Process, src, 1).unwrap();
    skip_run(Runtime::Process, src, 3).unwrap();
}

// ------------------------------------------------------------------------- SDK classes

#[test]
fn sdk_node_subclasses_run_where_the_sdk_is_importable() {
    let sdk = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../python");
    let src = "from remotemedia.core.node import Node as SdkNode\n\nclass Node(SdkNode):\n    def __init__(self, factor=1, **kwargs):\n        super().__init__(**kwargs)\n        self.factor = factor\n\n    async def initialize(self):\n        await super().initialize()\n        self.logger.info('ready')\n\n    async def process(self, x):\n        return [x * self.factor, self.is_initialized, self.name]\n";
    each_host(|rt| {
        setup();
        let m = manifest(
            rt,
            json!({"class": "Node", "source": src, "init": {"factor": 3, "name": "triple"},
                   "python_path": [sdk.to_string_lossy()]}),
        );
        let reg = remotemedia_python::registry();
        let p = manifest::load_str(&m, Format::Json, &reg).map_err(|e| format!("{e:?}"))?;
        let r = run_pipeline(&p, &reg, ints(&[2]), &RunOptions::default())
            .map_err(|f| f.to_string())?;
        expect_eq(
            r.outputs[0].items.clone(),
            vec![Data::list(vec![
                Data::Int(6),
                Data::Bool(true),
                Data::text("triple"),
            ])],
        )
    });
}

#[test]
fn runaway_recursion_is_a_recursion_error_not_a_crash() {
    let src = "class Node:\n    def process(self, x):\n        return self.process(x)\n";
    each_host(|rt| {
        let e = outputs(rt, src, ints(&[1])).err().ok_or("no error")?;
        expect_contains(
            &e,
            "python: RecursionError: maximum recursion depth exceeded",
        )
    });
}

// ------------------------------------------------------------------------- chains

/// Node classes for chains of Python nodes: `Add` keeps a running count, `Fan` yields
/// two outputs for even items and none for odd ones, `Picky` raises on `bad`, `Sum`
/// flushes the sum of what it saw.
const CHAIN_NODES: &str = "class Add:\n    def __init__(self):\n        self.calls = 0\n    def process(self, x):\n        self.calls += 1\n        return x + 1\n\nclass Fan:\n    def process(self, x):\n        if x % 2 == 0:\n            yield x\n            yield x * 10\n\nclass Picky:\n    def __init__(self, bad):\n        self.bad = bad\n    def process(self, x):\n        if x == self.bad:\n            raise ValueError('picky rejects %d' % x)\n        return x\n\nclass Sum:\n    def __init__(self):\n        self.total = 0\n    def process(self, x):\n        self.total += x\n        return x\n    def flush(self):\n        return self.total\n\nclass Opaque:\n    def process(self, x):\n        return {x}\n\nclass Unwrap:\n    def process(self, s):\n        return sorted(s)[0]\n";

/// Runs a chain of Python nodes `(id, class, init, on_error)` of [`CHAIN_NODES`].
fn run_chain(
    rt: Runtime,
    nodes: &[(&str, &str, serde_json::Value, &str)],
    inputs: Vec<Data>,
) -> Result<RunResult, RunFailure> {
    setup();
    let nodes: Vec<serde_json::Value> = nodes
        .iter()
        .map(|(id, class, init, on_error)| {
            json!({"id": id, "node_type": "PythonNode", "on_error": on_error, "params": {
                "class": class, "source": CHAIN_NODES, "init": init, "runtime": rt.name(),
            }})
        })
        .collect();
    let connections: Vec<serde_json::Value> = nodes
        .windows(2)
        .map(|w| json!({"from": w[0]["id"], "to": w[1]["id"]}))
        .collect();
    let m = json!({"version": "v1", "metadata": {"name": "chain"}, "nodes": nodes,
                   "connections": connections});
    let reg = remotemedia_python::registry();
    let p = manifest::load_str(&m.to_string(), Format::Json, &reg).expect("valid manifest");
    run_pipeline(&p, &reg, inputs, &RunOptions::default())
}

fn node_counts(r: &RunResult, id: &str) -> Result<(u64, u64, u64), String> {
    let m = r.metrics.node(id).ok_or(format!("no metrics for {id}"))?;
    Ok((m.items_in, m.items_out, m.errors))
}

#[test]
fn chains_of_python_nodes_behave_like_single_nodes() {
    // In the cpython host consecutive nodes run as one group: same outputs, same
    // skipped item named after its node, same per-node metrics as everywhere else.
    let chain = [
        ("a", "Add", json!({}), "fail"),
        ("b", "Fan", json!({}), "fail"),
        ("c", "Picky", json!({"bad": 40}), "skip"),
        ("d", "Sum", json!({}), "fail"),
    ];
    each_host(|rt| {
        let r =
            run_chain(rt, &chain, ints(&(0..8).collect::<Vec<_>>())).map_err(|f| f.to_string())?;
        // a: 1..=8; b: evens 2,4,6,8 -> x, 10x; c drops 40; d passes on, flushes the sum.
        let want = [2, 20, 4, 6, 60, 8, 80];
        let sum: i64 = want.iter().sum();
        let mut all = want.to_vec();
        all.push(sum);
        expect_eq(r.outputs[0].items.clone(), ints(&all))?;
        expect_eq(r.skipped.len(), 1)?;
        expect_eq(r.skipped[0].node_id.as_str(), "c")?;
        expect_eq(r.skipped[0].input_preview.as_deref(), Some("40"))?;
        expect_contains(&r.skipped[0].message, "picky rejects 40")?;
        expect_eq(node_counts(&r, "a")?, (8, 8, 0))?;
        expect_eq(node_counts(&r, "b")?, (8, 8, 0))?;
        expect_eq(node_counts(&r, "c")?, (8, 7, 1))?;
        expect_eq(node_counts(&r, "d")?, (7, 8, 0))
    });
}

#[test]
fn a_failing_node_inside_a_chain_is_named_and_earlier_outputs_are_kept() {
    let chain = [
        ("a", "Add", json!({}), "fail"),
        ("b", "Picky", json!({"bad": 4}), "fail"),
        ("c", "Add", json!({}), "fail"),
    ];
    each_host(|rt| {
        let f = run_chain(rt, &chain, ints(&[0, 1, 2, 3, 4, 5]))
            .err()
            .ok_or("the run succeeded")?;
        let e = f.error.node_error().ok_or("not a node error")?;
        expect_eq(e.node_id.as_str(), "b")?;
        expect_eq(e.message.as_str(), "ValueError: picky rejects 4")?;
        expect_eq(e.input_preview.as_deref(), Some("4"))?;
        expect_eq(f.partial.outputs[0].items.clone(), ints(&[2, 3, 4]))
    });
}

#[test]
fn cpython_nodes_in_a_row_pass_python_objects_between_them() {
    if !cfg!(feature = "cpython") {
        return;
    }
    // A set is no pipeline value, but between two cpython nodes it stays a Python
    // object; only what leaves the last node is converted.
    let chain = [
        ("wrap", "Opaque", json!({}), "fail"),
        ("unwrap", "Unwrap", json!({}), "fail"),
    ];
    let r = run_chain(Runtime::CPython, &chain, ints(&[3, 1])).unwrap();
    assert_eq!(r.outputs[0].items, ints(&[3, 1]));
    // Leaving the chain, it is an error naming the node that returned it.
    let f = run_chain(Runtime::CPython, &chain[..1], ints(&[3])).unwrap_err();
    let e = f.error.node_error().unwrap();
    assert_eq!(e.node_id, "wrap");
    assert!(
        e.message.contains("cannot enter the pipeline"),
        "{}",
        e.message
    );
}
