#!/usr/bin/env python3
"""Pure-Python baseline for the ``pipeline_execution`` Rust benchmarks.

Same cases, same manifests, same node semantics, same timing boundaries as
``crates/remotemedia-core/benches/pipeline_execution.rs``:

* a manifest is parsed and validated once, outside the timed loop;
* each timed iteration builds the pipeline from the validated manifest (node objects
  instantiated from their registered classes with their params), runs the node
  lifecycle (``initialize``, ``process``, ``finish``, ``cleanup``) and passes every
  input through every node in order;
* the input list is built before each iteration and the result is released after it,
  outside the timing.

The nodes are idiomatic Python with the semantics of the Rust built-ins: a number in,
a number out, no logging, no per-item allocation beyond the result. A node processes a
whole batch with ``list(map(node.process, batch))`` (the fastest idiomatic form found;
the Rust executor also runs node by node over a batch).

Standard library only. ``--json FILE`` writes the medians; a table is printed.
"""

from __future__ import annotations

import argparse
import gc
import json
import operator
import platform
import queue
import statistics
import sys
import threading
import time
from collections import deque
from typing import Any, Callable, Dict, List, Optional, Sequence

# --------------------------------------------------------------------------- nodes


class Node:
    """Base node: one item in, one item out."""

    def initialize(self, node_id: str, inputs: Sequence[str]) -> None:
        """Called once before the first item."""

    def process(self, item: Any) -> Any:
        raise NotImplementedError

    def process_batch(self, port: int, items: List[Any]) -> List[Any]:
        """Processes a batch arriving on input ``port``; returns the outputs."""
        return list(map(self.process, items))

    def finish(self) -> List[Any]:
        """End of stream: returns buffered outputs."""
        return []

    def cleanup(self) -> None:
        """Called once at the very end."""


class PassThrough(Node):
    """Emits each input unchanged."""

    def process(self, item: Any) -> Any:
        return item


OPERATIONS: Dict[str, Callable[[Any, Any], Any]] = {
    "add": operator.add,
    "subtract": operator.sub,
    "multiply": operator.mul,
    "divide": operator.truediv,
    "power": operator.pow,
    "modulo": operator.mod,
}


class Calculator(Node):
    """Applies ``operation`` with ``operand`` to each number."""

    def __init__(self, operation: str, operand: Any) -> None:
        self._fn = OPERATIONS[operation]
        self._operand = operand

    def process(self, item: Any) -> Any:
        return self._fn(item, self._operand)


class Zip(Node):
    """Emits ``{upstream id: item, ...}`` once every input has an item."""

    def __init__(self, strict: bool = True) -> None:
        self._strict = strict
        self._names: List[str] = []
        self._queues: List[deque] = []

    def initialize(self, node_id: str, inputs: Sequence[str]) -> None:
        self._names = list(inputs) or ["input"]
        self._queues = [deque() for _ in self._names]

    def process_batch(self, port: int, items: List[Any]) -> List[Any]:
        queues = self._queues
        queues[port].extend(items)
        out = []
        if all(queues):
            names = self._names
            for _ in range(min(map(len, queues))):
                out.append({name: q.popleft() for name, q in zip(names, queues)})
        return out

    def finish(self) -> List[Any]:
        if self._strict and any(self._queues):
            raise ValueError("inputs ended unevenly")
        return []


REGISTRY: Dict[str, type] = {
    "PassThrough": PassThrough,
    "Calculator": Calculator,
    "Zip": Zip,
}

# ------------------------------------------------------------------------ manifests


def chain_manifest(length: int) -> str:
    """Even positions PassThrough, odd positions Calculator(add 1)."""
    nodes = []
    for i in range(length):
        if i % 2 == 0:
            nodes.append({"id": f"n{i}", "node_type": "PassThrough"})
        else:
            nodes.append(
                {
                    "id": f"n{i}",
                    "node_type": "Calculator",
                    "params": {"operation": "add", "operand": 1},
                }
            )
    connections = [{"from": f"n{i - 1}", "to": f"n{i}"} for i in range(1, length)]
    return json.dumps(
        {
            "version": "v1",
            "metadata": {"name": f"chain-{length}"},
            "nodes": nodes,
            "connections": connections,
        }
    )


def fan_manifest() -> str:
    """A → (B, C) → Zip."""
    return json.dumps(
        {
            "version": "v1",
            "metadata": {"name": "fan-out-fan-in"},
            "nodes": [
                {"id": "a", "node_type": "PassThrough"},
                {
                    "id": "b",
                    "node_type": "Calculator",
                    "params": {"operation": "add", "operand": 1},
                },
                {
                    "id": "c",
                    "node_type": "Calculator",
                    "params": {"operation": "multiply", "operand": 2},
                },
                {"id": "zip", "node_type": "Zip"},
            ],
            "connections": [
                {"from": "a", "to": "b"},
                {"from": "a", "to": "c"},
                {"from": "b", "to": "zip"},
                {"from": "c", "to": "zip"},
            ],
        }
    )


class Validated:
    """A parsed and validated manifest: node specs, adjacency, topological order."""

    def __init__(self, text: str) -> None:
        doc = json.loads(text)
        if doc.get("version") != "v1":
            raise ValueError("unsupported manifest version")
        self.specs = doc["nodes"]
        index = {}
        for i, spec in enumerate(self.specs):
            if spec["node_type"] not in REGISTRY:
                raise ValueError(f"unknown node type {spec['node_type']!r}")
            if spec["id"] in index:
                raise ValueError(f"duplicate id {spec['id']!r}")
            index[spec["id"]] = i
        n = len(self.specs)
        self.preds: List[List[int]] = [[] for _ in range(n)]
        self.succs: List[List[int]] = [[] for _ in range(n)]
        for c in doc.get("connections", []):
            f, t = index[c["from"]], index[c["to"]]
            if t not in self.succs[f]:
                self.succs[f].append(t)
                self.preds[t].append(f)
        indegree = [len(p) for p in self.preds]
        ready = [i for i in range(n) if indegree[i] == 0]
        self.topo: List[int] = []
        while ready:
            v = ready.pop(0)
            self.topo.append(v)
            for s in self.succs[v]:
                indegree[s] -= 1
                if indegree[s] == 0:
                    ready.append(s)
                    ready.sort()
        if len(self.topo) != n:
            raise ValueError("cycle")


# ------------------------------------------------------------------------- executor


class Plan:
    """Node instances of a validated manifest (the equivalent of ``Plan::build``)."""

    def __init__(self, pipeline: Validated) -> None:
        specs = pipeline.specs
        self.nodes: List[Node] = [
            REGISTRY[s["node_type"]](**s.get("params", {})) for s in specs
        ]
        self.ids = [s["id"] for s in specs]
        self.inputs = [[self.ids[p] for p in preds] for preds in pipeline.preds]
        self.preds = pipeline.preds
        self.succs = pipeline.succs
        self.topo = pipeline.topo
        self.is_chain = all(len(p) <= 1 for p in self.preds) and all(
            len(s) <= 1 for s in self.succs
        )
        self.order = [self.nodes[i] for i in self.topo]

    def initialize(self) -> None:
        for i in self.topo:
            self.nodes[i].initialize(self.ids[i], self.inputs[i])

    def cleanup(self) -> None:
        for node in self.order:
            node.cleanup()

    def push(self, items: List[Any]) -> List[Any]:
        """A chain: the batch through every node in order."""
        for node in self.order:
            items = node.process_batch(0, items)
        return items

    def finish_chain(self) -> List[Any]:
        out: List[Any] = []
        order = self.order
        for k, node in enumerate(order):
            flushed = node.finish()
            for rest in order[k + 1 :]:
                if not flushed:
                    break
                flushed = rest.process_batch(0, flushed)
            out.extend(flushed)
        return out

    def run_graph(self, items: List[Any]) -> List[Any]:
        """A graph: node by node in topological order, batches routed along edges."""
        inbox: List[List[List[Any]]] = [[[] for _ in range(max(1, len(p)))] for p in self.preds]
        outputs: List[Any] = []
        for i in self.topo:
            node = self.nodes[i]
            if not self.preds[i]:
                inbox[i][0] = items
            emitted: List[Any] = []
            for port, batch in enumerate(inbox[i]):
                if batch:
                    emitted.extend(node.process_batch(port, batch))
            emitted.extend(node.finish())
            inbox[i] = []
            if not self.succs[i]:
                outputs.extend(emitted)
            for s in self.succs[i]:
                inbox[s][self.preds[s].index(i)] = emitted
        return outputs


def run(pipeline: Validated, items: List[Any]) -> List[Any]:
    """One timed iteration: build, initialize, process, finish, cleanup."""
    plan = Plan(pipeline)
    plan.initialize()
    try:
        if plan.is_chain:
            out = plan.push(items)
            out.extend(plan.finish_chain())
            return out
        return plan.run_graph(items)
    finally:
        plan.cleanup()


class Session:
    """A streaming session on a chain.

    ``send_batch`` runs the chain on the caller's thread and hands the output batch to
    the receiver through a bounded queue (8 batches, as the Rust session). Under the
    GIL a separate processing thread would only add switching, so this is the faster
    Python design.
    """

    _END = object()

    def __init__(self, pipeline: Validated, capacity: int = 8) -> None:
        self._plan = Plan(pipeline)
        if not self._plan.is_chain:
            raise ValueError("sessions here take a chain")
        self._plan.initialize()
        self._out: "queue.Queue[Any]" = queue.Queue(maxsize=capacity)

    def send_batch(self, items: List[Any]) -> None:
        out = self._plan.push(items)
        if out:
            self._out.put(out)

    def close(self) -> None:
        rest = self._plan.finish_chain()
        if rest:
            self._out.put(rest)
        self._out.put(self._END)

    def recv_batch(self) -> Optional[List[Any]]:
        batch = self._out.get()
        return None if batch is self._END else batch

    def finish(self) -> None:
        self._plan.cleanup()


def stream(pipeline: Validated, batches: List[List[Any]]) -> int:
    """Sends ``batches`` from a sender thread; this thread receives and counts."""
    session = Session(pipeline)

    def sender() -> None:
        for batch in batches:
            session.send_batch(batch)
        session.close()

    thread = threading.Thread(target=sender)
    thread.start()
    received = 0
    while True:
        batch = session.recv_batch()
        if batch is None:
            break
        received += len(batch)
    thread.join()
    session.finish()
    return received


def floor(items: List[Any]) -> List[Any]:
    """The simple chain's arithmetic without a framework: one pass of ``+ 1``."""
    return [x + 1 for x in items]


def build_only(pipeline: Validated) -> Plan:
    return Plan(pipeline)


# ------------------------------------------------------------------------- timing

STREAM_ITEMS = 1_000_000
STREAM_BATCH = 1024


def stream_batches(n: int) -> List[List[int]]:
    return [list(range(i, min(i + STREAM_BATCH, n))) for i in range(0, n, STREAM_BATCH)]


def measure(
    fn: Callable[[Any], Any],
    setup: Callable[[], Any],
    warmup_s: float,
    measure_s: float,
    min_samples: int,
    max_samples: int,
) -> Dict[str, Any]:
    """Warm up, then time single iterations until ``measure_s`` has passed and at least
    ``min_samples`` were taken. The result of an iteration is released after its timing,
    as criterion does."""
    clock = time.perf_counter_ns
    end = time.perf_counter() + warmup_s
    while time.perf_counter() < end:
        fn(setup())
    samples: List[int] = []
    end = time.perf_counter() + measure_s
    while len(samples) < max_samples and (
        len(samples) < min_samples or time.perf_counter() < end
    ):
        arg = setup()
        t0 = clock()
        out = fn(arg)
        t1 = clock()
        samples.append(t1 - t0)
        del out, arg
    return {
        "median_ns": statistics.median(samples),
        "mean_ns": statistics.fmean(samples),
        "min_ns": min(samples),
        "samples": len(samples),
    }


def check(simple: Validated, complex_: Validated, fan: Validated) -> None:
    """Checks every case's output once, outside the timing."""
    assert run(simple, list(range(100))) == [i + 1 for i in range(100)]
    assert run(complex_, list(range(100))) == [i + 5 for i in range(100)]
    assert floor(list(range(100))) == [i + 1 for i in range(100)]
    assert run(fan, list(range(1000))) == [{"b": i + 1, "c": i * 2} for i in range(1000)]
    assert stream(simple, stream_batches(10_000)) == 10_000


def cases(quick: bool) -> List[tuple]:
    simple = Validated(chain_manifest(3))
    complex_ = Validated(chain_manifest(10))
    fan = Validated(fan_manifest())
    check(simple, complex_, fan)

    def ints(n: int) -> Callable[[], List[int]]:
        return lambda: list(range(n))

    small = (0.3, 1.5, 200) if quick else (1.0, 5.0, 1000)
    big = (0.0, 0.0, 3) if quick else (0.5, 10.0, 10)
    return [
        ("simple_100", lambda xs: run(simple, xs), ints(100), small, 100),
        ("complex_100", lambda xs: run(complex_, xs), ints(100), small, 100),
        ("scaling/10", lambda xs: run(simple, xs), ints(10), small, 10),
        ("scaling/100", lambda xs: run(simple, xs), ints(100), small, 100),
        ("scaling/1000", lambda xs: run(simple, xs), ints(1000), small, 1000),
        ("graph_construction", build_only, lambda: complex_, small, None),
        ("floor/100", floor, ints(100), small, 100),
        ("floor/1000", floor, ints(1000), small, 1000),
        ("fan_out_fan_in_1000", lambda xs: run(fan, xs), ints(1000), small, 1000),
        (
            "streaming_session",
            lambda b: stream(simple, b),
            lambda: stream_batches(STREAM_ITEMS),
            big,
            STREAM_ITEMS,
        ),
    ]


def fmt_ns(ns: float) -> str:
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.2f} µs"
    return f"{ns:.0f} ns"


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", metavar="FILE", help="write results as JSON")
    parser.add_argument("--quick", action="store_true", help="short run")
    parser.add_argument(
        "--filter", metavar="TEXT", help="only cases whose name contains TEXT"
    )
    args = parser.parse_args(argv)

    results: Dict[str, Any] = {}
    print(f"{'case':<24} {'median':>12} {'mean':>12} {'samples':>8}")
    for name, fn, setup, (warm, meas, min_samples), items in cases(args.quick):
        if args.filter and args.filter not in name:
            continue
        r = measure(fn, setup, warm, meas, min_samples, max_samples=1_000_000)
        if items:
            r["items"] = items
        results[name] = r
        print(
            f"{name:<24} {fmt_ns(r['median_ns']):>12} {fmt_ns(r['mean_ns']):>12} "
            f"{r['samples']:>8}",
            flush=True,
        )
    if args.json:
        doc = {
            "python": platform.python_version(),
            "implementation": platform.python_implementation(),
            "gc_enabled": gc.isenabled(),
            "quick": args.quick,
            "cases": results,
        }
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=2)
            f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
