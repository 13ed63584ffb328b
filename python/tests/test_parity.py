"""``use_rust=True`` and ``use_rust=False`` give identical results."""

import asyncio
import math

import pytest
from _util import both, run
from remotemedia import (
    BufferNode,
    CalculatorNode,
    DataSinkNode,
    DataSourceNode,
    Node,
    NodeError,
    PassThroughNode,
    Pipeline,
)


class RunningTotal(Node):
    """Stateful: emits the running sum; counts lifecycle calls."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.total = 0
        self.inits = 0
        self.cleanups = 0

    async def initialize(self):
        self.inits += 1
        self.total = 0

    def process(self, data):
        self.total += data
        return self.total

    async def cleanup(self):
        self.cleanups += 1


class Repeat(Node):
    """Generator: each item `times` times; drops odd items."""

    def __init__(self, times=2, **kwargs):
        super().__init__(times=times, **kwargs)
        self.times = times

    def process(self, data):
        if data % 2:
            return
        for i in range(self.times):
            yield {"item": data, "copy": i}


class SlowSquare(Node):
    """async def process."""

    async def process(self, data):
        await asyncio.sleep(0)
        return data * data


class Split(Node):
    """Async generator: splits a string into words."""

    async def process(self, data):
        for word in data.split():
            await asyncio.sleep(0)
            yield word


class Tag(Node):
    """Plain function returning a dict; None filters the item out."""

    def process(self, data):
        if data is None or data == "skip":
            return None
        return {"value": data, "tag": self.name}


class Flusher(Node):
    """Emits nothing per item, everything on flush (async flush)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.items = []

    def process(self, data):
        self.items.append(data)

    async def flush(self):
        out, self.items = self.items, []
        return {"count": len(out), "items": out}


PIPELINES = {
    "builtins": (
        lambda: Pipeline(
            [
                DataSourceNode(),
                PassThroughNode(),
                CalculatorNode(operation="add", operand=10),
                CalculatorNode(operation="divide", operand=4),
                CalculatorNode(operation="power", operand=2),
                DataSinkNode(),
            ]
        ),
        [1, 2, 3, -7, 2.5, 0],
    ),
    "calculator_map_form": (
        lambda: Pipeline([CalculatorNode(), PassThroughNode()]),
        [
            {"operation": "add", "args": [1, 2]},
            {"operation": "modulo", "args": [-7, 3]},
            {"operation": "power", "args": [2, -2]},
            {"operation": "subtract", "args": [0.5, 2], "extra": [1, {"x": None}]},
        ],
    ),
    "stateful_custom": (
        lambda: Pipeline([CalculatorNode(operation="multiply", operand=2), RunningTotal()]),
        list(range(20)),
    ),
    "generator": (
        lambda: Pipeline([PassThroughNode(), Repeat(times=3), PassThroughNode()]),
        list(range(7)),
    ),
    "async_node": (
        lambda: Pipeline([SlowSquare(), CalculatorNode(operation="subtract", operand=1)]),
        [1, 2, 3, 4],
    ),
    "async_generator": (
        lambda: Pipeline([Split(), Tag(name="t")]),
        ["hello big world", "", "skip this skip"],
    ),
    "buffer": (
        lambda: Pipeline([CalculatorNode(operation="add", operand=1), BufferNode(buffer_size=3)]),
        list(range(8)),
    ),
    "buffer_then_builtin": (
        lambda: Pipeline([BufferNode(buffer_size=2), PassThroughNode(), Flusher()]),
        list(range(5)),
    ),
    "none_items": (
        lambda: Pipeline([PassThroughNode(), Tag(), PassThroughNode()]),
        [None, 1, "skip", "x", None],
    ),
    "mixed_values": (
        lambda: Pipeline([PassThroughNode(), Tag(name="m"), PassThroughNode()]),
        [
            True,
            False,
            -(2**63),
            2**63 - 1,
            1.5,
            float("inf"),
            "ünïcode ✓",
            b"\x00\xffbytes",
            [1, [2, [3, []]]],
            {"nested": {"a": [1, 2], "b": None}, "order": 1},
        ],
    ),
}


@pytest.mark.parametrize("name", sorted(PIPELINES))
def test_parity(name):
    factory, data = PIPELINES[name]
    rust, python = both(factory, data)
    assert rust == python
    assert rust  # every pipeline here produces something


def test_expected_values():
    factory, data = PIPELINES["builtins"]
    assert run(factory().run(data)) == [
        (11 / 4) ** 2,
        3.0**2,
        (13 / 4) ** 2,
        0.5625,
        (12.5 / 4) ** 2,
        2.5**2,
    ]
    factory, data = PIPELINES["stateful_custom"]
    out = run(factory().run(data))
    assert out == [sum(2 * i for i in range(k + 1)) for k in range(20)]
    factory, data = PIPELINES["generator"]
    assert run(factory().run(data)) == [
        {"item": i, "copy": c} for i in (0, 2, 4, 6) for c in range(3)
    ]
    factory, data = PIPELINES["async_generator"]
    assert [o["value"] for o in run(factory().run(data))] == ["hello", "big", "world", "this"]
    factory, data = PIPELINES["buffer"]
    assert run(factory().run(data)) == [[1, 2, 3], [4, 5, 6], [7, 8]]
    factory, data = PIPELINES["buffer_then_builtin"]
    assert run(factory().run(data)) == [{"count": 3, "items": [[0, 1], [2, 3], [4]]}]
    factory, data = PIPELINES["none_items"]
    assert run(factory().run(data)) == [{"value": 1, "tag": "Tag"}, {"value": "x", "tag": "Tag"}]


def test_mixed_values_are_preserved():
    factory, data = PIPELINES["mixed_values"]
    out = run(factory().run(data))
    assert [o["value"] for o in out] == data
    assert isinstance(out[0]["value"], bool) and isinstance(out[2]["value"], int)


def test_state_persists_and_lifecycle_runs_once(use_rust):
    node = RunningTotal()
    p = Pipeline([PassThroughNode(), node, PassThroughNode()])
    assert run(p.run([1, 2, 3], use_rust=use_rust)) == [1, 3, 6]
    assert (node.total, node.inits, node.cleanups) == (6, 1, 1)
    assert run(p.run([4], use_rust=use_rust)) == [4]
    assert (node.inits, node.cleanups) == (2, 2)


CALC_CASES = [
    (op, a, b)
    for op in ("add", "subtract", "multiply", "divide", "power", "modulo")
    for a, b in [
        (7, 3),
        (-7, 3),
        (7, -3),
        (0, 0),
        (2, 62),
        (2, 63),
        (-2, 63),
        (2, -3),
        (0, -1),
        (1, 2**40),
        (-1, 2**40 + 1),
        (3, 100),
        (2**62, 2),
        (-(2**63), -1),
        (2**63 - 1, 1),
        (7.5, 2),
        (-7.5, 2),
        (7.5, -2),
        (-8.0, 0.5),
        (1e308, 10.0),
        (10.0, 400.0),
        (0.0, -1.0),
        (-0.0, 1.0),
        (0.0, 3.0),
        (float("inf"), 2.0),
        (float("-inf"), 0.5),
        (float("nan"), 0.0),
        (5.0, float("inf")),
        (-5.0, float("inf")),
        (1.5, 0.0),
        (1, True),
        ("a", 1),
        (None, 2.0),
    ]
]


def _outcome(use_rust, op, a, b):
    p = Pipeline([CalculatorNode()])
    try:
        out = run(p.run({"operation": op, "args": [a, b]}, use_rust=use_rust))
    except NodeError as e:
        return ("error", e.node_id, e.node_type, e.kind, e.message)
    r = out["result"]
    if isinstance(r, float):
        if math.isnan(r):
            return ("ok", "float", "nan")  # the sign of a NaN carries no meaning
        return ("ok", "float", repr(r), math.copysign(1.0, r))
    return ("ok", type(r).__name__, r)


@pytest.mark.parametrize("op,a,b", CALC_CASES)
def test_calculator_parity(op, a, b):
    assert _outcome(True, op, a, b) == _outcome(False, op, a, b)
