//! Generates `docs/python-compatibility.md`: which language features and standard
//! library modules work in each Python host, measured by running a probe per row in
//! every host compiled into this build.
//!
//! The test fails when the document disagrees with the probes for the hosts of this
//! build. `REMOTEMEDIA_BLESS=1 cargo test -p remotemedia-python --features rustpython
//! --test compatibility` rewrites it (that needs every host, hence the feature);
//! review the diff before committing.

use std::path::PathBuf;

use remotemedia_core::executor::{run_pipeline, RunOptions};
use remotemedia_core::manifest::{self, Format};
use remotemedia_core::Data;
use remotemedia_python::Runtime;
use serde_json::json;

const ALL_HOSTS: [Runtime; 3] = [Runtime::CPython, Runtime::Process, Runtime::RustPython];

/// `(row, code)`: the code runs with `exec` inside a node's `process`; the row is
/// supported when it raises nothing.
const LANGUAGE: &[(&str, &str)] = &[
    ("f-strings (incl. `=` specifier)", "x = 3\nassert f'{x=}' == 'x=3' and f'{x:03d}' == '003'"),
    ("walrus operator", "assert [y for x in range(3) if (y := x * 2)] == [2, 4]"),
    ("structural pattern matching (`match`)", "def f(v):\n    match v:\n        case {'k': [a, *rest]}:\n            return a + len(rest)\n        case _:\n            return -1\nassert f({'k': [1, 2, 3]}) == 3"),
    ("positional-only and keyword-only parameters", "def f(a, /, b, *, c):\n    return a + b + c\nassert f(1, 2, c=3) == 6"),
    ("closures, `nonlocal`, decorators", "def deco(fn):\n    def w(*a):\n        return fn(*a) + 1\n    return w\ndef outer():\n    n = 0\n    @deco\n    def inc():\n        nonlocal n\n        n += 1\n        return n\n    return inc\ni = outer()\nassert i() == 2 and i() == 3"),
    ("generators and `yield from`", "def g():\n    yield 1\n    r = yield from iter([2, 3])\n    yield 4\nassert list(g()) == [1, 2, 3, 4]"),
    ("async/await with a hand-driven coroutine", "async def f():\n    return 5\nc = f()\ntry:\n    c.send(None)\nexcept StopIteration as e:\n    assert e.value == 5"),
    ("async generators and comprehensions", "async def g():\n    for i in range(3):\n        yield i\nasync def f():\n    return [x async for x in g()]\nc = f()\ntry:\n    c.send(None)\nexcept StopIteration as e:\n    assert e.value == [0, 1, 2]"),
    ("classes: `super()`, properties, `__slots__`", "class A:\n    __slots__ = ('v',)\n    def __init__(self):\n        self.v = 1\n    @property\n    def p(self):\n        return self.v * 10\nclass B(A):\n    __slots__ = ()\n    def __init__(self):\n        super().__init__()\nassert B().p == 10"),
    ("metaclasses and `__init_subclass__`", "seen = []\nclass Meta(type):\n    def __new__(m, n, b, d, **kw):\n        seen.append(n)\n        return super().__new__(m, n, b, d, **kw)\nclass Base(metaclass=Meta):\n    def __init_subclass__(cls, **kw):\n        cls.tag = kw.get('tag')\nclass C(Base, tag='t'):\n    pass\nassert seen == ['Base', 'C'] and C.tag == 't'"),
    ("context managers and `try`/`finally`", "log = []\nclass CM:\n    def __enter__(self):\n        log.append('in')\n    def __exit__(self, *a):\n        log.append('out')\n        return True\nwith CM():\n    raise ValueError()\nassert log == ['in', 'out']"),
    ("exception chaining and notes", "try:\n    try:\n        1 / 0\n    except ZeroDivisionError as e:\n        raise KeyError('k') from e\nexcept KeyError as e:\n    e.add_note('n')\n    assert isinstance(e.__cause__, ZeroDivisionError) and e.__notes__ == ['n']"),
    ("exception groups (`except*`)", "try:\n    raise ExceptionGroup('g', [ValueError(1), TypeError(2)])\nexcept* ValueError as eg:\n    assert len(eg.exceptions) == 1\nexcept* TypeError:\n    pass"),
    ("arbitrary-precision ints", "assert 2 ** 100 // 2 ** 99 == 2 and (10 ** 30) % 7 == 1"),
    ("star unpacking and dict merge operator", "a, *b, c = range(5)\nassert b == [1, 2, 3] and {**{'x': 1}} | {'y': 2} == {'x': 1, 'y': 2}"),
    ("type hints and builtin generics (`list[int]`)", "def f(x: list[int]) -> dict[str, int | None]:\n    return {}\nassert f.__annotations__['x'] == list[int]"),
    ("`eval`, `exec`, `compile`", "assert eval(compile('1 + 2', '<s>', 'eval')) == 3"),
    ("recursion 500 deep", "def f(n):\n    return 0 if n == 0 else 1 + f(n - 1)\nassert f(500) == 500"),
    ("`sys.settrace`", "import sys\nseen = []\ndef t(frame, event, arg):\n    seen.append(event)\n    return None\ndef g():\n    return 1\nsys.settrace(t)\ng()\nsys.settrace(None)\nassert 'call' in seen"),
];

/// Modules of the standard library: the code imports and exercises them.
const MODULES: &[(&str, &str)] = &[
    ("abc", "import abc\nclass A(abc.ABC):\n    @abc.abstractmethod\n    def f(self): ...\ntry:\n    A()\n    raise AssertionError\nexcept TypeError:\n    pass"),
    ("argparse", "import argparse\np = argparse.ArgumentParser()\np.add_argument('--n', type=int)\nassert p.parse_args(['--n', '3']).n == 3"),
    ("array", "import array\nassert array.array('h', [1, 2]).tobytes() == b'\\x01\\x00\\x02\\x00'"),
    ("ast", "import ast\nassert isinstance(ast.parse('x = 1').body[0], ast.Assign)"),
    ("asyncio", "import asyncio\nasync def f():\n    await asyncio.sleep(0)\n    return 1\nassert asyncio.run(f()) == 1"),
    ("base64", "import base64\nassert base64.b64encode(b'hi') == b'aGk='"),
    ("bisect", "import bisect\nassert bisect.bisect([1, 3, 5], 4) == 2"),
    ("bz2", "import bz2\nassert bz2.decompress(bz2.compress(b'abc')) == b'abc'"),
    ("calendar", "import calendar\nassert calendar.isleap(2024) and calendar.monthrange(2023, 2)[1] == 28"),
    ("collections", "import collections\nassert collections.Counter('abca').most_common(1) == [('a', 2)]\nassert collections.deque([1, 2], maxlen=1) == collections.deque([2])\nP = collections.namedtuple('P', 'x y')\nassert P(1, 2).y == 2"),
    ("concurrent.futures", "import concurrent.futures as cf\nwith cf.ThreadPoolExecutor(2) as ex:\n    assert list(ex.map(abs, [-1, -2])) == [1, 2]"),
    ("contextlib", "import contextlib\n@contextlib.contextmanager\ndef cm():\n    yield 5\nwith cm() as v:\n    assert v == 5"),
    ("contextvars", "import contextvars\nv = contextvars.ContextVar('v', default=1)\nt = v.set(2)\nassert v.get() == 2\nv.reset(t)\nassert v.get() == 1"),
    ("copy", "import copy\na = [[1]]\nb = copy.deepcopy(a)\nb[0].append(2)\nassert a == [[1]]"),
    ("csv", "import csv, io\nassert list(csv.reader(io.StringIO('a,b\\n1,\"2,3\"\\n'))) == [['a', 'b'], ['1', '2,3']]"),
    ("ctypes", "import ctypes\nassert ctypes.sizeof(ctypes.c_int32) == 4"),
    ("dataclasses", "import dataclasses\n@dataclasses.dataclass(frozen=True)\nclass P:\n    x: int\n    y: int = 2\nassert dataclasses.asdict(P(1)) == {'x': 1, 'y': 2}"),
    ("datetime", "import datetime\nd = datetime.datetime(2024, 2, 28) + datetime.timedelta(days=1)\nassert d.isoformat() == '2024-02-29T00:00:00'"),
    ("decimal", "import decimal\nassert decimal.Decimal('0.1') + decimal.Decimal('0.2') == decimal.Decimal('0.3')"),
    ("difflib", "import difflib\nassert difflib.SequenceMatcher(None, 'abcd', 'abed').ratio() == 0.75"),
    ("dis", "import dis\nassert any(i.opname for i in dis.get_instructions(lambda: 1))"),
    ("email", "import email\nm = email.message_from_string('Subject: hi\\n\\nbody')\nassert m['Subject'] == 'hi'"),
    ("enum", "import enum\nclass C(enum.Enum):\n    A = 1\nassert C(1) is C.A and C.A.name == 'A'"),
    ("fractions", "import fractions\nassert fractions.Fraction(1, 3) * 3 == 1"),
    ("functools", "import functools\n@functools.lru_cache(None)\ndef fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\nassert fib(50) == 12586269025 and functools.reduce(lambda a, b: a * b, [1, 2, 3]) == 6"),
    ("gc", "import gc\ngc.collect()\nassert gc.isenabled() in (True, False)"),
    ("glob / fnmatch", "import glob, fnmatch\nassert fnmatch.fnmatch('a.py', '*.py') and isinstance(glob.glob('*'), list)"),
    ("gzip / zlib", "import gzip, zlib\nassert gzip.decompress(gzip.compress(b'x' * 100)) == b'x' * 100 and zlib.crc32(b'abc') == 891568578"),
    ("hashlib / hmac", "import hashlib, hmac\nassert hashlib.sha256(b'').hexdigest().startswith('e3b0c442') and len(hmac.new(b'k', b'm', 'sha1').digest()) == 20"),
    ("heapq", "import heapq\nassert heapq.nsmallest(2, [5, 1, 4, 2]) == [1, 2]"),
    ("html", "import html\nassert html.escape('<a>') == '&lt;a&gt;'"),
    ("http.client", "import http.client\nassert http.client.responses[404] == 'Not Found'"),
    ("inspect", "import inspect\ndef f(a, b=2): pass\nassert list(inspect.signature(f).parameters) == ['a', 'b']"),
    ("io", "import io\nb = io.BytesIO()\nb.write(b'ab')\nassert b.getvalue() == b'ab' and io.StringIO('x\\ny').readlines() == ['x\\n', 'y']"),
    ("itertools", "import itertools\nassert list(itertools.accumulate([1, 2, 3])) == [1, 3, 6] and len(list(itertools.combinations(range(4), 2))) == 6"),
    ("json", "import json\nassert json.loads(json.dumps({'a': [1, 2.5, None, 'é']})) == {'a': [1, 2.5, None, 'é']}"),
    ("locale", "import locale\nassert locale.getlocale() is not None"),
    ("logging", "import logging\nlogging.getLogger('probe').debug('x')"),
    ("lzma", "import lzma\nassert lzma.decompress(lzma.compress(b'abc')) == b'abc'"),
    ("math / cmath", "import math, cmath\nassert math.isclose(math.sqrt(2) ** 2, 2) and cmath.sqrt(-1) == 1j and math.comb(5, 2) == 10"),
    ("mmap", "import mmap\nm = mmap.mmap(-1, 16)\nm[0:2] = b'ab'\nassert m[0:2] == b'ab'"),
    ("multiprocessing", "import multiprocessing\nassert multiprocessing.cpu_count() >= 1"),
    ("operator", "import operator\nassert operator.itemgetter(1)([3, 4]) == 4"),
    ("os / os.path", "import os\nassert os.path.join('a', 'b') == 'a' + os.sep + 'b' and os.getpid() > 0 and isinstance(os.environ, object)"),
    ("pathlib", "import pathlib\nassert pathlib.PurePosixPath('/a/b.txt').suffix == '.txt'"),
    ("pickle", "import pickle\nassert pickle.loads(pickle.dumps({'a': (1, 2)})) == {'a': (1, 2)}"),
    ("pprint", "import pprint\nassert pprint.pformat({'a': 1}) == \"{'a': 1}\""),
    ("queue", "import queue\nq = queue.Queue()\nq.put(1)\nassert q.get() == 1"),
    ("random", "import random\nr = random.Random(1)\nx = r.random()\nassert 0 <= x < 1 and len(set(r.sample(range(10), 3))) == 3 and random.Random(1).random() == x"),
    ("re", "import re\nassert re.findall(r'(\\w+)@(\\w+)', 'a@b c@d') == [('a', 'b'), ('c', 'd')] and re.sub(r'\\d+', '#', 'a1b22') == 'a#b#'"),
    ("secrets / uuid", "import secrets, uuid\nassert len(secrets.token_hex(4)) == 8 and uuid.uuid4().version == 4"),
    ("select", "import select\nassert hasattr(select, 'select')"),
    ("shlex", "import shlex\nassert shlex.split('a \"b c\"') == ['a', 'b c']"),
    ("shutil / tempfile", "import shutil, tempfile, os\nd = tempfile.mkdtemp()\nopen(os.path.join(d, 'f'), 'w').close()\nshutil.rmtree(d)\nassert not os.path.exists(d)"),
    ("signal", "import signal\nassert signal.SIGTERM == 15"),
    ("socket", "import socket\na, b = socket.socketpair()\na.sendall(b'x')\nassert b.recv(1) == b'x'\na.close()\nb.close()"),
    ("sqlite3", "import sqlite3\nc = sqlite3.connect(':memory:')\nassert c.execute('select 1 + 1').fetchone() == (2,)"),
    ("ssl", "import ssl\nassert ssl.create_default_context() is not None"),
    ("statistics", "import statistics\nassert statistics.median([3, 1, 2]) == 2 and statistics.mean([1, 2]) == 1.5"),
    ("string", "import string\nassert string.Template('$a!').substitute(a='x') == 'x!'"),
    ("struct", "import struct\nassert struct.unpack('<hI', struct.pack('<hI', -2, 7)) == (-2, 7)"),
    ("subprocess", "import subprocess, sys\nassert subprocess.run(['true']).returncode == 0"),
    ("tarfile", "import tarfile, io\nb = io.BytesIO()\nwith tarfile.open(fileobj=b, mode='w') as t:\n    data = b'xyz'\n    info = tarfile.TarInfo('f')\n    info.size = len(data)\n    t.addfile(info, io.BytesIO(data))\nb.seek(0)\nassert tarfile.open(fileobj=b).extractfile('f').read() == b'xyz'"),
    ("textwrap", "import textwrap\nassert textwrap.wrap('a b c d', 3) == ['a b', 'c d']"),
    ("threading", "import threading\nout = []\nt = threading.Thread(target=lambda: out.append(1))\nt.start()\nt.join()\nassert out == [1]"),
    ("time", "import time\nassert time.monotonic() > 0 and time.time() > 1.6e9"),
    ("timeit", "import timeit\nassert timeit.timeit('1 + 1', number=10) >= 0"),
    ("tomllib", "import tomllib\nassert tomllib.loads('a = 1') == {'a': 1}"),
    ("traceback", "import traceback\ntry:\n    1 / 0\nexcept ZeroDivisionError as e:\n    assert 'ZeroDivisionError' in ''.join(traceback.format_exception(e))"),
    ("typing", "import typing\nT = typing.TypeVar('T')\nclass Box(typing.Generic[T]):\n    pass\nassert typing.get_origin(typing.Optional[int]) is typing.Union"),
    ("unicodedata", "import unicodedata\nassert unicodedata.name('é') == 'LATIN SMALL LETTER E WITH ACUTE' and unicodedata.normalize('NFD', 'é') == 'e\\u0301'"),
    ("urllib.parse", "import urllib.parse\nassert urllib.parse.urlparse('http://h/p?q=1').query == 'q=1' and urllib.parse.quote('a b') == 'a%20b'"),
    ("warnings", "import warnings\nwith warnings.catch_warnings(record=True) as w:\n    warnings.simplefilter('always')\n    warnings.warn('x')\nassert len(w) == 1"),
    ("weakref", "import weakref\nclass A: pass\na = A()\nr = weakref.ref(a)\nassert r() is a"),
    ("xml.etree.ElementTree", "import xml.etree.ElementTree as ET\nassert ET.fromstring('<a><b x=\"1\"/></a>').find('b').get('x') == '1'"),
    ("zipfile", "import zipfile, io\nb = io.BytesIO()\nwith zipfile.ZipFile(b, 'w') as z:\n    z.writestr('f', 'data')\nassert zipfile.ZipFile(b).read('f') == b'data'"),
];

const PROBE: &str = "\
import sys

class Node:
    def __init__(self, probes):
        self.probes = probes

    def process(self, name):
        if name == '$version':
            v = sys.version_info
            return '%s %d.%d' % (sys.implementation.name, v[0], v[1])
        try:
            exec(self.probes[name], {'__name__': '__probe__'})
            return 'yes'
        except BaseException as e:
            return 'no (%s)' % type(e).__name__
";

fn hosts() -> Vec<Runtime> {
    ALL_HOSTS.into_iter().filter(|r| r.compiled_in()).collect()
}

/// Runs every probe in `rt`: the version string, then one result per row.
fn probe(rt: Runtime) -> Vec<String> {
    let probes: serde_json::Map<String, serde_json::Value> = LANGUAGE
        .iter()
        .chain(MODULES)
        .map(|(name, code)| (name.to_string(), json!(code)))
        .collect();
    let m = json!({
        "version": "v1",
        "metadata": {"name": "compatibility"},
        "nodes": [{"id": "probe", "node_type": "PythonNode", "params": {
            "class": "Node", "source": PROBE, "runtime": rt.name(),
            "init": {"probes": probes},
        }}],
        "connections": [],
    });
    let reg = remotemedia_python::registry();
    let p = manifest::load_str(&m.to_string(), Format::Json, &reg).unwrap();
    let mut inputs = vec![Data::text("$version")];
    inputs.extend(LANGUAGE.iter().chain(MODULES).map(|(n, _)| Data::text(*n)));
    let r = run_pipeline(&p, &reg, inputs, &RunOptions::default())
        .unwrap_or_else(|f| panic!("[{rt}] the probes failed to run: {f}"));
    r.outputs[0]
        .items
        .iter()
        .map(|d| d.as_str().unwrap_or("?").to_string())
        .collect()
}

fn doc_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/python-compatibility.md")
}

fn cell(s: &str) -> String {
    if s == "yes" {
        "✅".into()
    } else if let Some(rest) = s.strip_prefix("no ") {
        format!("❌ {rest}")
    } else {
        s.to_string()
    }
}

fn render(results: &[(Runtime, Vec<String>)]) -> String {
    let mut out = String::new();
    out.push_str("# Python compatibility of the `PythonNode` hosts\n\n");
    out.push_str(
        "Which language features and standard-library modules work in each host. \
         **Generated** by `crates/remotemedia-python/tests/compatibility.rs`, which runs one \
         probe per row inside a `PythonNode` in every host and fails when this file \
         disagrees; regenerate with\n\n\
         ```sh\n\
         REMOTEMEDIA_BLESS=1 cargo test -p remotemedia-python --features rustpython --test compatibility\n\
         ```\n\n\
         - **cpython**: CPython embedded through pyo3 (linked in from the build Python's static library, or its libpython);\n\
         - **process**: CPython worker processes (the same interpreter as a program);\n\
         - **rustpython**: embedded RustPython (cargo feature `rustpython`) with its \
           frozen pure-Python standard library; no CPython needed.\n\n\
         ✅ the probe passed; ❌ it raised the exception named. A probe exercises a \
         module's common use, not all of it. Third-party packages such as numpy are \
         importable in the CPython hosts when installed, never in RustPython.\n\n",
    );
    let header = |out: &mut String, first: &str| {
        out.push_str(&format!("| {first} |"));
        for (rt, _) in results {
            out.push_str(&format!(" {rt} |"));
        }
        out.push_str("\n|---|");
        for _ in results {
            out.push_str("---|");
        }
        out.push('\n');
    };
    let row = |out: &mut String, name: &str, i: usize| {
        out.push_str(&format!("| {name} |"));
        for (_, r) in results {
            out.push_str(&format!(" {} |", cell(&r[i])));
        }
        out.push('\n');
    };
    out.push_str(
        "## Behaviour shared by every host\n\n\
         The conformance suite (`crates/remotemedia-python/tests/conformance.rs`) runs the \
         same cases in every host: state kept in `self`, plain / generator / `async` / async \
         generator `process`, `initialize` and `cleanup` once each, `flush` at the end of the \
         stream, exceptions as node errors with the Python type, message and traceback, \
         `logging` records in the runtime's tracing output at the matching level, `print` \
         output on stderr as `[node id] line`, the value conversions (ints that do not fit \
         64 bits are errors), and the load errors (syntax error, missing class, failing \
         constructor).\n\n\
         Where the hosts differ:\n\n\
         - **Audio**: an `AudioBuffer` in every host (`samples`, `sample_rate`, `channels`, \
           `pts_us`; the same class as the SDK's `remotemedia.AudioBuffer`). Its `samples` \
           are a read-only float32 numpy array in the CPython hosts when numpy is installed \
           (shape `(frames,)` mono, `(frames, channels)` otherwise), else — and always in \
           RustPython — a flat read-only `memoryview` of format `'f'`. A node returns audio \
           as an `AudioBuffer` (e.g. `data.with_samples(new)`), or in the `$audio` dict form.\n\
         - **Tensors**: numpy arrays in the CPython hosts when numpy is installed; otherwise, \
           and always in RustPython, the dict `{\"$tensor\": {\"shape\", \"dtype\", \"data\"}}` \
           (little-endian bytes), which a node may also return.\n\
         - **Crashes and hangs**: only the process host contains them. A worker that dies \
           fails the item it was on (kind `crashed`, with the signal or exit status), a call \
           running past `timeout_ms` kills the worker (kind `timeout`); a fresh worker \
           replaces it and later items continue, but state kept in `self` starts over. In \
           the embedded hosts a crash takes the process down and a hung call blocks the node.\n\
         - **Parallelism**: the embedded hosts run every node on one interpreter thread; the \
           process host runs `workers` processes per node.\n\
         - **Imports**: the CPython hosts see the interpreter's `sys.path` (and the active \
           virtualenv); RustPython sees its frozen standard library and `python_path` only.\n\n",
    );
    header(&mut out, "interpreter");
    row(&mut out, "implementation and version", 0);
    out.push_str("\n## Language features\n\n");
    header(&mut out, "feature");
    for (i, (name, _)) in LANGUAGE.iter().enumerate() {
        row(&mut out, name, 1 + i);
    }
    out.push_str("\n## Standard library\n\n");
    header(&mut out, "module");
    for (i, (name, _)) in MODULES.iter().enumerate() {
        let name = format!("`{name}`").replace(" / ", "` / `");
        row(&mut out, &name, 1 + LANGUAGE.len() + i);
    }
    out
}

/// The cells of the host columns, by row, parsed from a rendered document.
fn columns(doc: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let mut hosts = Vec::new();
    let mut rows = Vec::new();
    for line in doc.lines() {
        let Some(inner) = line.strip_prefix("| ").and_then(|l| l.strip_suffix(" |")) else {
            continue;
        };
        let cells: Vec<String> = inner.split(" | ").map(str::to_string).collect();
        if cells[0] == "interpreter" {
            hosts = cells[1..].to_vec();
        } else if !matches!(cells[0].as_str(), "feature" | "module") {
            rows.push(cells);
        }
    }
    (hosts, rows)
}

/// True for a probe that failed only because this CPython was built without an optional
/// extension module (`_ssl`, `_sqlite3`, `_lzma`…, whose C libraries a Python build may
/// lack): a property of the machine's interpreter, not of the host.
fn missing_optional_module(result: &str) -> bool {
    matches!(result, "no (ModuleNotFoundError)" | "no (ImportError)")
}

#[test]
fn compatibility_document_matches_the_hosts() {
    let bless = std::env::var("REMOTEMEDIA_BLESS").is_ok_and(|v| v == "1");
    let mut results: Vec<(Runtime, Vec<String>)> =
        hosts().into_iter().map(|rt| (rt, probe(rt))).collect();
    // The document describes a full CPython build; when this machine's interpreter lacks
    // an optional module, say so and check the rest (blessing records the truth).
    if !bless {
        for (rt, r) in &mut results {
            if *rt == Runtime::RustPython {
                continue;
            }
            for (i, (name, _)) in MODULES.iter().enumerate() {
                let cell = &mut r[1 + LANGUAGE.len() + i];
                if missing_optional_module(cell) {
                    eprintln!("[{rt}] `{name}` is not available in this interpreter ({cell}); not checked");
                    *cell = "yes".into();
                }
            }
        }
    }
    // Rows every CPython-based host must pass (the probes themselves are sound).
    for (rt, r) in &results {
        if *rt != Runtime::RustPython {
            for (i, (name, _)) in LANGUAGE.iter().chain(MODULES).enumerate() {
                assert_eq!(r[1 + i], "yes", "[{rt}] probe `{name}` failed in CPython");
            }
        }
    }
    // Rows RustPython must pass: the ones PythonNode users rely on most.
    if let Some((_, r)) = results.iter().find(|(rt, _)| *rt == Runtime::RustPython) {
        for must in [
            "json",
            "re",
            "dataclasses",
            "collections",
            "logging",
            "itertools",
            "functools",
        ] {
            let i = MODULES.iter().position(|(n, _)| *n == must).unwrap();
            assert_eq!(r[1 + LANGUAGE.len() + i], "yes", "[rustpython] `{must}`");
        }
    }
    let rendered = render(&results);
    let path = doc_path();
    if bless {
        assert_eq!(
            results.len(),
            ALL_HOSTS.len(),
            "blessing needs every host: add --features rustpython"
        );
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &rendered).unwrap();
        return;
    }
    let doc = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!(
            "{} is missing; generate it with REMOTEMEDIA_BLESS=1 (and --features rustpython)",
            path.display()
        )
    });
    if results.len() == ALL_HOSTS.len() {
        assert!(
            doc == rendered,
            "{} is out of date; regenerate it with REMOTEMEDIA_BLESS=1 and review the diff",
            path.display()
        );
        return;
    }
    // Without every host only the columns of this build's hosts can be checked.
    let (doc_hosts, doc_rows) = columns(&doc);
    let (new_hosts, new_rows) = columns(&rendered);
    assert_eq!(
        doc_rows.iter().map(|r| r[0].clone()).collect::<Vec<_>>(),
        new_rows.iter().map(|r| r[0].clone()).collect::<Vec<_>>(),
        "the rows of {} differ from the probes; regenerate it with REMOTEMEDIA_BLESS=1",
        path.display()
    );
    let mut drift = Vec::new();
    for (j, host) in new_hosts.iter().enumerate() {
        let Some(k) = doc_hosts.iter().position(|h| h == host) else {
            drift.push(format!("host {host} has no column"));
            continue;
        };
        for (old, new) in doc_rows.iter().zip(&new_rows) {
            if old[1 + k] != new[1 + j] {
                drift.push(format!(
                    "{} / {host}: the document says {:?}, the probe gives {:?}",
                    new[0],
                    old[1 + k],
                    new[1 + j]
                ));
            }
        }
    }
    assert!(
        drift.is_empty(),
        "{} is out of date (regenerate it with REMOTEMEDIA_BLESS=1 and --features rustpython):\n{}",
        path.display(),
        drift.join("\n")
    );
}
