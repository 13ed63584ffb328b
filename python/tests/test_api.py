"""The public API: module paths, classes, signatures and basic behaviour."""

import asyncio
import json

import pytest
import remotemedia
from _util import Recorder, run
from remotemedia import (
    BufferNode,
    CalculatorNode,
    DataSinkNode,
    DataSourceNode,
    Node,
    PassThroughNode,
    Pipeline,
)
from remotemedia.core.exceptions import (
    ConfigurationError,
    NodeError,
    PipelineError,
    RemoteMediaError,
    RuntimeNotAvailableError,
)


class Double(Node):
    def process(self, data):
        return data * 2


def test_module_paths():
    import remotemedia.core.exceptions as exc_mod
    import remotemedia.core.node as node_mod
    import remotemedia.core.pipeline as pipeline_mod
    import remotemedia.nodes.base as base_mod
    import remotemedia.nodes.calculator as calc_mod
    import remotemedia.nodes.io_nodes as io_mod

    assert node_mod.Node is Node is remotemedia.core.Node
    assert pipeline_mod.Pipeline is Pipeline is remotemedia.core.Pipeline
    assert base_mod.PassThroughNode is PassThroughNode
    assert base_mod.BufferNode is BufferNode
    assert calc_mod.CalculatorNode is CalculatorNode
    assert io_mod.DataSourceNode is DataSourceNode
    assert io_mod.DataSinkNode is DataSinkNode
    assert exc_mod.NodeError is remotemedia.NodeError
    assert remotemedia.nodes.CalculatorNode is CalculatorNode
    assert isinstance(remotemedia.__version__, str)
    assert remotemedia.is_rust_runtime_available() is True


def test_exception_hierarchy():
    for cls in (PipelineError, NodeError, ConfigurationError, RuntimeNotAvailableError):
        assert issubclass(cls, RemoteMediaError)
    assert issubclass(RuntimeNotAvailableError, ImportError)
    e = NodeError("boom", node_id="a_0", node_type="A", kind="python", phase="process")
    assert (e.node_id, e.node_type, e.kind, e.message, e.phase) == ("a_0", "A", "python", "boom", "process")
    assert str(e) == "node `a_0` (A) failed in process: python: boom"
    assert str(NodeError("plain")) == "plain"
    import pickle

    back = pickle.loads(pickle.dumps(e))
    assert (back.node_id, back.kind, back.message) == ("a_0", "python", "boom")


def test_node_basics():
    with pytest.raises(TypeError):
        Node()  # abstract: process must be implemented
    n = Double(gain=3, label="x")
    assert n.name == "Double"
    assert n.config == {"gain": 3, "label": "x"}
    assert Double(name="d").name == "d"
    assert n.get_config() == {"name": "Double", "class": "Double", "config": {"gain": 3, "label": "x"}}
    assert repr(n) == "Double(name='Double')"
    assert not n.is_initialized
    run(n.initialize())
    assert n.is_initialized
    run(n.cleanup())
    assert not n.is_initialized


def test_node_to_manifest_with_capabilities_and_host():
    n = Double(name="dbl", factor=2)
    assert n.to_manifest() == {"id": "dbl", "node_type": "Double", "params": {"factor": 2}}
    n.capabilities = {"gpu": {"type": "cuda", "min_memory_gb": 2.0}, "memory_gb": 4.0}
    n.host = "worker:50051"
    m = n.to_manifest()
    assert m["capabilities"] == n.capabilities
    assert m["capabilities"] is not n.capabilities
    assert m["host"] == "worker:50051"
    assert "capabilities" not in n.to_manifest(include_capabilities=False)


def test_pipeline_structure():
    p = Pipeline(name="p")
    assert len(p) == 0 and p.name == "p"
    a, b, c = Double(name="a"), Double(name="b"), Double(name="c")
    assert p.add_node(a).add_node(b) is p
    p.add_node(c)
    assert len(p) == 3 and p.node_count == 3
    assert list(p) == [a, b, c]
    assert p.get_node("b") is b and p.get_node("zz") is None
    assert p.remove_node("b") is True
    assert p.remove_node("b") is False
    assert [n.name for n in p] == ["a", "c"]
    assert p.node_ids() == ["a_0", "c_1"]
    with pytest.raises(PipelineError):
        p.add_node("not a node")
    assert Pipeline([a, c]).nodes == [a, c]
    assert Pipeline().name == "Pipeline"
    assert p.get_config()["node_count"] == 2


def test_lifecycle_and_managed_execution():
    rec = Recorder()
    p = Pipeline([rec, Double()])

    async def go():
        with pytest.raises(PipelineError):
            async for _ in p.process([1]):
                pass
        async with p.managed_execution() as same:
            assert same is p and p.is_initialized
            with pytest.raises(PipelineError):
                p.add_node(Double())
            with pytest.raises(PipelineError):
                p.remove_node("Double")
            out = [x async for x in p.process([1, 2])]

            async def agen():
                yield 3
                yield 4

            out += [x async for x in p.process(agen())]
        return out

    assert run(go()) == [2, 4, 6, 8]
    assert rec.events == ["initialize", "cleanup"]
    assert not p.is_initialized
    with pytest.raises(PipelineError):
        run(Pipeline().initialize())


def test_run_inside_managed_execution_keeps_lifecycle(use_rust):
    rec = Recorder()
    p = Pipeline([rec, Double()])

    async def go():
        async with p.managed_execution():
            first = await p.run([1, 2], use_rust=use_rust)
            second = await p.run(5, use_rust=use_rust)
        return first, second

    assert run(go()) == ([2, 4], 10)
    assert rec.events == ["initialize", "cleanup"]


def test_run_return_shapes(use_rust):
    class Fan(Node):
        def process(self, data):
            for _ in range(data):
                yield data

    p = Pipeline([Fan()])
    assert run(p.run([1, 2], use_rust=use_rust)) == [1, 2, 2]
    assert run(p.run([], use_rust=use_rust)) == []
    assert run(p.run(1, use_rust=use_rust)) == 1
    assert run(p.run(3, use_rust=use_rust)) == [3, 3, 3]
    assert run(p.run(0, use_rust=use_rust)) is None
    buf = Pipeline([BufferNode(buffer_size=5)])
    assert run(buf.run([1, 2], use_rust=use_rust)) == [[1, 2]]
    assert run(buf.run(None, use_rust=use_rust)) is None
    with pytest.raises(PipelineError):
        run(Pipeline().run([1], use_rust=use_rust))


def test_tuple_is_a_single_item(use_rust):
    p = Pipeline([PassThroughNode()])
    out = run(p.run((1, 2), use_rust=use_rust))
    assert list(out) == [1, 2]  # the Rust core hands tuples back as lists


def test_builtin_nodes(use_rust):
    seen = []
    p = Pipeline(
        [
            DataSourceNode(),
            PassThroughNode(),
            CalculatorNode(operation="multiply", operand=3),
            BufferNode(buffer_size=2),
            DataSinkNode(callback=seen.append),
        ]
    )
    assert run(p.run([1, 2, 3], use_rust=use_rust)) == [[3, 6], [9]]
    assert seen == [[3, 6], [9]]


def test_data_sink_async_callback(use_rust):
    seen = []

    async def cb(item):
        await asyncio.sleep(0)
        seen.append(item)

    p = Pipeline([DataSinkNode(callback=cb)])
    assert run(p.run([1, 2], use_rust=use_rust)) == [1, 2]
    assert seen == [1, 2]


def test_calculator_configuration():
    c = CalculatorNode(operation="add", operand=2)
    assert c.get_supported_operations() == ["add", "subtract", "multiply", "divide", "power", "modulo"]
    assert c.to_manifest()["params"] == {"operation": "add", "operand": 2}
    assert CalculatorNode().to_manifest()["params"] == {}
    for bad in (
        dict(operation="add"),
        dict(operand=1),
        dict(operation="sqrt", operand=1),
        dict(operation="add", operand="1"),
        dict(operation="add", operand=True),
        dict(operation="add", operand=float("nan")),
        dict(operation="add", operand=2**63),
    ):
        with pytest.raises(ConfigurationError):
            CalculatorNode(**bad)
    with pytest.raises(ConfigurationError):
        BufferNode(buffer_size=0)


def test_calculator_both_input_forms(use_rust):
    p = Pipeline([CalculatorNode()])
    out = run(p.run([{"operation": "power", "args": [2, 10]}, {"operation": "divide", "args": [1, 4]}], use_rust=use_rust))
    assert out == [
        {"operation": "power", "args": [2, 10], "result": 1024},
        {"operation": "divide", "args": [1, 4], "result": 0.25},
    ]
    p = Pipeline([CalculatorNode(operation="modulo", operand=3)])
    assert run(p.run([-7, 7.5], use_rust=use_rust)) == [2, 1.5]


def test_serialize_manifest():
    p = Pipeline(
        [PassThroughNode(), CalculatorNode(operation="add", operand=1, name="calc"), Double(factor=2)],
        name="demo",
    )
    doc = json.loads(p.serialize(description="a demo"))
    assert doc["version"] == "v1"
    assert doc["metadata"]["name"] == "demo"
    assert doc["metadata"]["description"] == "a demo"
    assert doc["metadata"]["created_at"].endswith("Z")
    assert [n["id"] for n in doc["nodes"]] == ["PassThroughNode_0", "calc_1", "Double_2"]
    # Built-in nodes as their native types; a class of ours as a PythonNode importing it.
    assert [n["node_type"] for n in doc["nodes"]] == ["PassThroughNode", "CalculatorNode", "PythonNode"]
    assert doc["nodes"][1]["params"] == {"operation": "add", "operand": 1}
    double = doc["nodes"][2]["params"]
    assert (double["module"], double["class"], double["init"]) == ("test_api", "Double", {"factor": 2})
    assert doc["connections"] == [
        {"from": "PassThroughNode_0", "to": "calc_1"},
        {"from": "calc_1", "to": "Double_2"},
    ]
    p.nodes[2].capabilities = {"cpu": {"cores": 2}}
    assert json.loads(p.serialize())["nodes"][2]["capabilities"] == {"cpu": {"cores": 2}}
    assert "capabilities" not in json.loads(p.serialize(include_capabilities=False))["nodes"][2]
    assert "description" not in json.loads(p.serialize())["metadata"]


def test_serialize_rejects_unserializable_params():
    p = Pipeline([Double(model=object())])
    with pytest.raises(ConfigurationError) as info:
        p.serialize()
    assert "Double_0" in str(info.value)
    assert info.value.errors[0]["node_id"] == "Double_0"


def test_extension_entry_points():
    from remotemedia import runtime
    from remotemedia._host import NodeHost

    ext = runtime.extension()
    assert {"PassThrough", "Calculator"} <= set(runtime.node_types())
    assert ext.PYTHON_CALLBACK_TYPE == "PythonCallback"
    assert ext.validate_manifest(Pipeline([PassThroughNode()]).serialize()) == []

    class AsyncInc(Node):
        async def initialize(self):
            self.loop = asyncio.get_running_loop()

        async def process(self, data):
            assert asyncio.get_running_loop() is self.loop
            return data + 1

    node = AsyncInc()
    manifest = {
        "version": "v1",
        "metadata": {"name": "direct"},
        "nodes": [
            {"id": "inc", "node_type": "PythonCallback", "params": {"handle": "inc"}},
            {"id": "add", "node_type": "Calculator", "params": {"operation": "add", "operand": 1}},
        ],
        "connections": [{"from": "inc", "to": "add"}],
    }
    # Called synchronously with no event loop: the host runs coroutines on a private loop.
    report = ext.run_manifest(json.dumps(manifest), [1, 2], {"inc": NodeHost(node)})
    assert report["error"] is None and report["outputs"] == [3, 4]
    assert node.loop.is_closed()
    assert [m["node_id"] for m in report["metrics"]["nodes"]] == ["inc", "add"]
    report = ext.run_manifest(json.dumps(manifest), [1], {})
    assert report["error"]["type"] == "manifest"
