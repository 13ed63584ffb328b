"""Failures: error mapping, tracebacks, cleanup, bad values and bad manifests."""

import logging
import os
import subprocess
import sys
import textwrap
import traceback

import pytest
from _util import Recorder, run
from remotemedia import CalculatorNode, Node, PassThroughNode, Pipeline, runtime
from remotemedia.core.exceptions import ConfigurationError, InvalidInputError, NodeError


class Boom(Recorder):
    """Raises ValueError on the item 2."""

    def process(self, data):
        self.seen.append(data)
        if data == 2:
            raise ValueError("bad item")
        return data


def _raise_node_error(data):
    raise NodeError(f"cannot use {data!r}", kind="invalid_input")


class Picky(Node):
    def process(self, data):
        _raise_node_error(data)


def test_node_raising_on_one_item(use_rust):
    before, boom, after = Recorder(name="before"), Boom(name="boom"), Recorder(name="after")
    p = Pipeline([before, CalculatorNode(operation="add", operand=1), boom, after])
    with pytest.raises(NodeError) as info:
        run(p.run([-1, 0, 1, 2, 3], use_rust=use_rust))
    e = info.value
    assert (e.node_id, e.node_type, e.kind, e.phase) == ("boom_2", "Boom", "python", "process")
    assert e.message == "ValueError: bad item"
    assert e.input_preview == "2"
    assert str(e) == "node `boom_2` (Boom) failed in process: python: ValueError: bad item; input: 2"
    # The original exception is chained, with its traceback.
    cause = e.__cause__
    assert isinstance(cause, ValueError) and str(cause) == "bad item"
    frames = traceback.extract_tb(cause.__traceback__)
    assert frames[-1].name == "process" and frames[-1].filename == __file__
    assert 'raise ValueError("bad item")' in e.traceback
    assert "ValueError: bad item" in "".join(traceback.format_exception(type(e), e, e.__traceback__))
    # Each item reached the failing node once: no retry, no fallback run.
    assert boom.seen == [0, 1, 2]
    # cleanup ran on every node, once.
    for node in (before, boom, after):
        assert node.events == ["initialize", "cleanup"], node.name


def test_node_error_kind_is_kept(use_rust):
    p = Pipeline([PassThroughNode(), Picky(name="picky")])
    with pytest.raises(NodeError) as info:
        run(p.run([5], use_rust=use_rust))
    e = info.value
    assert (e.node_id, e.kind, e.message) == ("picky_1", "invalid_input", "cannot use 5")
    assert isinstance(e.__cause__, NodeError)
    assert traceback.extract_tb(e.__cause__.__traceback__)[-1].name == "_raise_node_error"


def test_native_node_error(use_rust):
    rec = Recorder()
    p = Pipeline([rec, CalculatorNode(operation="divide", operand=0, name="div")])
    with pytest.raises(NodeError) as info:
        run(p.run([3], use_rust=use_rust))
    e = info.value
    assert (e.node_id, e.node_type, e.kind, e.message, e.phase) == (
        "div_1",
        "CalculatorNode",
        "arithmetic",
        "division by zero",
        "process",
    )
    assert rec.events == ["initialize", "cleanup"]


def test_initialize_failure_cleans_up(use_rust):
    class BadInit(Recorder):
        async def initialize(self):
            self.events.append("initialize")
            raise RuntimeError("no device")

    ok, bad = Recorder(name="ok"), BadInit(name="bad")
    with pytest.raises(NodeError) as info:
        run(Pipeline([ok, bad]).run([1], use_rust=use_rust))
    e = info.value
    assert (e.node_id, e.phase, e.kind, e.message) == ("bad_1", "initialize", "python", "RuntimeError: no device")
    assert isinstance(e.__cause__, RuntimeError)
    assert ok.events == ["initialize", "cleanup"]
    assert bad.events == ["initialize", "cleanup"]
    assert bad.seen == []


def test_flush_failure(use_rust):
    class BadFlush(Node):
        def process(self, data):
            return data

        def flush(self):
            raise KeyError("gone")

    with pytest.raises(NodeError) as info:
        run(Pipeline([BadFlush(name="f")]).run([1], use_rust=use_rust))
    assert (info.value.node_id, info.value.phase, info.value.message) == ("f_0", "finish", "KeyError: 'gone'")


def test_cleanup_errors_are_logged_not_raised(use_rust, caplog):
    class BadCleanup(Node):
        def process(self, data):
            return data

        async def cleanup(self):
            raise OSError("disk")

    with caplog.at_level(logging.WARNING, logger="remotemedia"):
        assert run(Pipeline([BadCleanup()]).run([1, 2], use_rust=use_rust)) == [1, 2]
    assert "disk" in caplog.text


def test_unserializable_input_blames_no_node():
    rec = Recorder(name="first")
    p = Pipeline([rec, PassThroughNode()])
    with pytest.raises(InvalidInputError) as info:
        run(p.run([1, object()]))
    e = info.value
    assert isinstance(e, NodeError)  # code catching NodeError still catches it
    assert (e.node_id, e.kind, e.index) == (None, "invalid_input", 1)
    assert "input item 1" in e.message and "object" in e.message
    assert isinstance(e.__cause__, TypeError)
    assert rec.events == []  # nothing started, so there is nothing to clean up


EDGE_VALUES = [
    (2**70, OverflowError, "integer 1180591620717411303424 does not fit a signed 64-bit int"),
    ([1, {"k": [0, -(2**64)]}], OverflowError,
     'integer -18446744073709551616 does not fit a signed 64-bit int (at $[1]["k"][1])'),
    ({1: "a"}, TypeError, "dict key 1 of type int is not a str; pipeline maps need str keys"),
    ({"a": {(1, 2): 0}}, TypeError,
     'dict key (1, 2) of type tuple is not a str; pipeline maps need str keys (at $["a"])'),
    ({1, 2}, TypeError, "cannot convert {1, 2} of type set to pipeline data; supported: None, "
     "bool, int, float, str, bytes, list, tuple, dict with str keys, numpy arrays"),
    ((frozenset([3]),), TypeError, "cannot convert frozenset({3}) of type frozenset to pipeline "
     "data; supported: None, bool, int, float, str, bytes, list, tuple, dict with str keys, "
     "numpy arrays (at $[0])"),
]


@pytest.mark.parametrize("value,cause,message", EDGE_VALUES)
@pytest.mark.parametrize("python_node", [False, True])
def test_both_executors_refuse_the_edges_of_the_data_model_alike(value, cause, message, python_node):
    class Keep(Node):
        def process(self, data):
            return data

    outcomes = []
    for use_rust in (True, False):
        p = Pipeline([Keep() if python_node else PassThroughNode()])
        with pytest.raises(InvalidInputError) as info:
            run(p.run([0, value], use_rust=use_rust))
        outcomes.append((str(info.value), info.value.node_id, type(info.value.__cause__)))
    assert outcomes[0] == outcomes[1] == (
        f"input item 1 cannot enter the pipeline: {message}", None, cause
    )


@pytest.mark.parametrize("value,cause,message", EDGE_VALUES[:3])
def test_streams_refuse_the_edges_alike(value, cause, message):
    async def stream(use_rust):
        p = Pipeline([PassThroughNode()])
        async with p.managed_execution():
            with pytest.raises(InvalidInputError) as info:
                async for _ in p.process([0, value], use_rust=use_rust):
                    pass
        return str(info.value)

    assert run(stream(True)) == run(stream(False)) == f"input item 1 cannot enter the pipeline: {message}"


def test_int_too_big_is_an_error_not_truncated():
    with pytest.raises(NodeError) as info:
        run(Pipeline([PassThroughNode()]).run([2**64 + 5]))
    assert "18446744073709551621 does not fit a signed 64-bit int" in info.value.message
    assert isinstance(info.value.__cause__, OverflowError)


@pytest.mark.parametrize(
    "bad, expected",
    [
        ({1, 2}, "of type set"),
        ({1: "a"}, "dict key 1 of type int is not a str"),
        ([1, [2, {"k": object()}]], '(at $[1][1]["k"])'),
        (complex(1, 2), "of type complex"),
    ],
)
def test_unserializable_output_names_the_node(bad, expected):
    class Emit(Recorder):
        def process(self, data):
            return bad

    emit, rec = Emit(name="emit"), Recorder()
    with pytest.raises(NodeError) as info:
        run(Pipeline([PassThroughNode(), emit, rec]).run([1]))
    e = info.value
    assert e.node_id == "emit_1" and e.kind == "python"
    assert expected in e.message, e.message
    assert isinstance(e.__cause__, TypeError)
    assert emit.events == ["initialize", "cleanup"] and rec.events == ["initialize", "cleanup"]


def test_cyclic_value_is_rejected():
    cyclic = []
    cyclic.append(cyclic)
    with pytest.raises(NodeError) as info:
        run(Pipeline([PassThroughNode()]).run([cyclic]))
    assert "nested deeper" in info.value.message


def test_unknown_node_type_in_manifest():
    manifest = {
        "version": "v1",
        "metadata": {"name": "m"},
        "nodes": [
            {"id": "src", "node_type": "PassThrough"},
            {"id": "mystery", "node_type": "NoSuchNode"},
        ],
        "connections": [{"from": "src", "to": "mystery"}],
    }
    for call in (runtime.validate_manifest, lambda m: runtime.run_manifest(m, [1])):
        with pytest.raises(ConfigurationError) as info:
            call(manifest)
        assert "mystery" in str(info.value) and "NoSuchNode" in str(info.value)
        assert info.value.errors[0]["node_id"] == "mystery"
        assert info.value.errors[0]["path"] == "nodes[1].node_type"


def test_a_class_the_runtime_cannot_import_is_not_serialized():
    class Custom(Node):
        def process(self, data):
            return data

    with pytest.raises(ConfigurationError) as info:
        Pipeline([PassThroughNode(), Custom()]).serialize()
    assert info.value.errors[0]["node_id"] == "Custom_1"
    assert str(info.value) == (
        "node `Custom_1` (Custom) cannot be written as a PythonNode: its class is defined "
        "inside a function, so the runtime cannot import it; define it at the top level of a module"
    )


def test_bad_capabilities_are_a_configuration_error():
    class Needy(Node):
        capabilities = {"gpu": {"type": "quantum"}}

        def process(self, data):
            return data

    with pytest.raises(ConfigurationError) as info:
        run(Pipeline([Needy()]).run([1]))
    assert "Needy_0" in str(info.value)


def test_missing_extension_is_a_clear_error():
    code = textwrap.dedent(
        """
        import asyncio, sys
        sys.modules["remotemedia._remotemedia"] = None  # makes the import fail
        from remotemedia import Pipeline, PassThroughNode, RuntimeNotAvailableError
        import remotemedia
        assert remotemedia.is_rust_runtime_available() is False
        p = Pipeline([PassThroughNode()])
        assert asyncio.run(p.run([1], use_rust=False)) == [1]
        try:
            asyncio.run(p.run([1]))
        except RuntimeNotAvailableError as e:
            assert isinstance(e, ImportError)
            print(e)
        else:
            raise SystemExit("no error")
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=dict(os.environ)
    )
    assert out.returncode == 0, out.stderr
    assert "remotemedia._remotemedia" in out.stdout
    assert "pip install ." in out.stdout and "use_rust=False" in out.stdout


@pytest.mark.parametrize("style", ["coroutine", "async_generator"])
def test_async_node_raising_on_one_item(use_rust, style):
    seen = []

    class AsyncBoom(Node):
        if style == "coroutine":

            async def process(self, data):
                seen.append(data)
                if data == 2:
                    raise ValueError("bad item")
                return data

        else:

            async def process(self, data):
                seen.append(data)
                yield data
                if data == 2:
                    raise ValueError("bad item")

    after = Recorder()
    with pytest.raises(NodeError) as info:
        run(Pipeline([AsyncBoom(name="ab"), after]).run([0, 1, 2, 3], use_rust=use_rust))
    e = info.value
    assert (e.node_id, e.kind, e.message, e.input_preview) == ("ab_0", "python", "ValueError: bad item", "2")
    assert isinstance(e.__cause__, ValueError)
    assert traceback.extract_tb(e.__cause__.__traceback__)[-1].name == "process"
    assert seen == [0, 1, 2]
    assert after.events == ["initialize", "cleanup"]


def test_async_node_unserializable_output():
    class AsyncOut(Node):
        async def process(self, data):
            return {data} if data == 1 else data

    with pytest.raises(NodeError) as info:
        run(Pipeline([AsyncOut(name="ao")]).run([0, 1, 2]))
    e = info.value
    assert (e.node_id, e.input_preview) == ("ao_0", "1")
    assert "of type set" in e.message and isinstance(e.__cause__, TypeError)


def test_node_names_with_any_characters(use_rust):
    class Fail(Node):
        def process(self, data):
            raise RuntimeError("nope")

    p = Pipeline([PassThroughNode(name="in put"), Fail(name="stage/2 ✓")])
    with pytest.raises(NodeError) as info:
        run(p.run([1], use_rust=use_rust))
    assert info.value.node_id == "stage/2 ✓_1"
    assert run(Pipeline([PassThroughNode(name="a b")]).run([1], use_rust=use_rust)) == [1]
