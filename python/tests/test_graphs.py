"""Graphs from Python: fan-out, fan-in through Zip, several sinks, the flow nodes
(Filter, Zip, Echo), the same outputs from both executors and from the CLI."""

import json
import subprocess

import pytest

from _util import cli as cli_path
from _util import run
from remotemedia import (
    CalculatorNode,
    ConfigurationError,
    EchoNode,
    FilterNode,
    Node,
    NodeError,
    PassThroughNode,
    Pipeline,
    PipelineError,
    ZipNode,
)


class Square(Node):
    def process(self, data):
        return data * data


def diamond():
    src = PassThroughNode(name="src")
    inc = CalculatorNode(operation="add", operand=1, name="inc")
    sq = Square(name="sq")
    zip_ = ZipNode(name="zip")
    p = Pipeline([src, inc, sq, zip_])
    p.connect(src, inc).connect(src, sq).connect(inc, zip_).connect(sq, zip_)
    return p


@pytest.mark.parametrize("use_rust", [True, False])
def test_fan_out_and_zip_fan_in(use_rust):
    assert run(diamond().run([1, 2, 3], use_rust=use_rust)) == [
        {"inc_1": 2, "sq_2": 1},
        {"inc_1": 3, "sq_2": 4},
        {"inc_1": 4, "sq_2": 9},
    ]


def test_the_graph_is_in_the_manifest_and_the_cli_runs_it(tmp_path):
    p = diamond()
    doc = json.loads(p.serialize())
    assert doc["connections"] == [
        {"from": "src_0", "to": "inc_1"},
        {"from": "src_0", "to": "sq_2"},
        {"from": "inc_1", "to": "zip_3"},
        {"from": "sq_2", "to": "zip_3"},
    ]
    exe = cli_path()
    if exe is None:
        pytest.skip("the remotemedia CLI is not built")
    # The CLI runs the same graph (the Python node as a PythonNode reference).
    only_native = Pipeline(
        [PassThroughNode(name="src"), CalculatorNode(operation="add", operand=1, name="inc"),
         CalculatorNode(operation="multiply", operand=10, name="ten"), ZipNode(name="zip")],
        connections=[("src", "inc"), ("src", "ten"), ("inc", "zip"), ("ten", "zip")],
    )
    path = tmp_path / "graph.json"
    path.write_text(only_native.serialize())
    proc = subprocess.run([exe, "run", str(path), "--input", "-", "--no-progress"], input="1\n2\n",
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    cli = [json.loads(line) for line in proc.stdout.splitlines()]
    assert cli == run(only_native.run([1, 2])) == run(only_native.run([1, 2], use_rust=False))
    assert cli == [{"inc_1": 2, "ten_2": 10}, {"inc_1": 3, "ten_2": 20}]


@pytest.mark.parametrize("use_rust", [True, False])
def test_several_sinks(use_rust):
    src = PassThroughNode(name="src")
    big = FilterNode(gt=2, name="big")
    small = FilterNode(lte=2, name="small")
    p = Pipeline([src, big, small], connections=[(src, big), (src, small)])
    out = run(p.run([1, 2, 3, 4], use_rust=use_rust))
    assert sorted(out) == [1, 2, 3, 4]
    assert [x for x in out if x > 2] == [3, 4] and [x for x in out if x <= 2] == [1, 2]


@pytest.mark.parametrize("use_rust", [True, False])
def test_filter_and_echo(use_rust):
    p = Pipeline([FilterNode(field="score", gte=0.5), EchoNode(name="seen")])
    items = [{"score": 0.2}, {"score": 0.9}, {"score": 0.5}]
    assert run(p.run(items, use_rust=use_rust)) == [
        {"node": "seen_1", "count": 1, "data": {"score": 0.9}},
        {"node": "seen_1", "count": 2, "data": {"score": 0.5}},
    ]
    eq = Pipeline([FilterNode(eq="yes")])
    assert run(eq.run(["yes", "no", "yes"], use_rust=use_rust)) == ["yes", "yes"]


@pytest.mark.parametrize("use_rust", [True, False])
def test_flow_node_errors_name_the_node(use_rust):
    p = Pipeline([FilterNode(gt=1, name="f")])
    with pytest.raises(NodeError) as info:
        run(p.run([2, "three"], use_rust=use_rust))
    assert info.value.node_id == "f_0"
    assert "cannot order text against a number" in str(info.value)
    unpaired = Pipeline([PassThroughNode(name="a"), FilterNode(gt=1, name="b"), ZipNode(name="z")],
                        connections=[("a", "b"), ("a", "z"), ("b", "z")])
    with pytest.raises(NodeError) as info:
        run(unpaired.run([1, 2], use_rust=use_rust))
    assert info.value.node_id == "z_2" and "unpaired" in str(info.value)


def test_bad_params_and_connections_are_refused():
    with pytest.raises(ConfigurationError, match="exactly one of"):
        FilterNode(gt=1, lt=5)
    with pytest.raises(ConfigurationError, match="needs a number"):
        FilterNode(gt="x")
    with pytest.raises(ConfigurationError, match="max_pending"):
        ZipNode(max_pending=0)
    p = Pipeline([PassThroughNode(name="a")])
    with pytest.raises(PipelineError, match="no node named 'b'"):
        p.connect("a", "b")
    with pytest.raises(PipelineError, match="cannot feed itself"):
        p.connect("a", "a")
    a, b = PassThroughNode(name="a"), PassThroughNode(name="b")
    loop = Pipeline([a, b], connections=[(a, b), (b, a)])
    with pytest.raises(PipelineError, match="cycle"):
        run(loop.run([1], use_rust=False))
    with pytest.raises(ConfigurationError, match="cycle"):
        run(loop.run([1]))


def test_removing_a_node_removes_its_connections():
    a, b, c = PassThroughNode(name="a"), PassThroughNode(name="b"), CalculatorNode(operation="add", operand=1, name="c")
    p = Pipeline([a, b, c], connections=[(a, b), (b, c), (a, c)])
    p.remove_node("b")
    assert [(x.name, y.name) for x, y in p.connections] == [("a", "c")]
    assert run(p.run([1])) == [2]


@pytest.mark.parametrize("use_rust", [True, False])
def test_native_nodes_start_each_run_afresh_python_nodes_keep_their_objects(use_rust):
    class Count(Node):
        def __init__(self, **kw):
            super().__init__(**kw)
            self.seen = 0

        def process(self, data):
            self.seen += 1
            return self.seen

    async def twice():
        p = Pipeline([EchoNode(name="e"), Count(name="c")])
        async with p.managed_execution():  # initialized once, run twice
            first = await p.run([1, 2], use_rust=use_rust)
            second = await p.run([3], use_rust=use_rust)
        return first, second

    # Echo (native) counts from 1 in every run; the Python node's object keeps its state.
    assert run(twice()) == ([1, 2], [3])

    async def echo_twice():
        p = Pipeline([EchoNode(name="e")])
        async with p.managed_execution():
            return [await p.run([x], use_rust=use_rust) for x in ("a", "b")]

    assert run(echo_twice()) == [[{"node": "e_0", "count": 1, "data": "a"}],
                                 [{"node": "e_0", "count": 1, "data": "b"}]]
