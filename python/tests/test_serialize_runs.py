"""``Pipeline.serialize()`` of a pipeline with the user's own node classes writes a
manifest ``remotemedia run`` runs as it is, with the outputs of ``Pipeline.run``."""

import importlib
import json
import os
import subprocess
import sys
import textwrap

import pytest

from _util import cli as cli_path
from _util import run
from remotemedia import CalculatorNode, Pipeline

MODULE = textwrap.dedent(
    """
    from remotemedia import Node

    class Scale(Node):
        def __init__(self, factor, offset=0, **kwargs):
            super().__init__(**kwargs)
            self.factor, self.offset = factor, offset

        def process(self, data):
            return data * self.factor + self.offset

    class Tagged(Node):
        def process(self, data):
            return {"value": data, "tag": self.config.get("tag")}
    """
)


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "user_nodes_for_serialize.py").write_text(MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("user_nodes_for_serialize")
    yield module
    sys.modules.pop("user_nodes_for_serialize", None)


def test_a_serialized_pipeline_with_user_nodes_runs_in_the_cli(user_module, tmp_path):
    exe = cli_path()
    if exe is None:
        pytest.skip("the remotemedia CLI is not built (cargo build -p remotemedia-cli, or set REMOTEMEDIA_CLI)")
    p = Pipeline(
        [
            CalculatorNode(operation="add", operand=1),
            user_module.Scale(3, offset=0.5),
            user_module.Tagged(tag="x"),
        ]
    )
    doc = json.loads(p.serialize())
    scale, tagged = doc["nodes"][1], doc["nodes"][2]
    assert scale["node_type"] == tagged["node_type"] == "PythonNode"
    assert scale["params"]["module"] == "user_nodes_for_serialize"
    assert scale["params"]["class"] == "Scale"
    assert scale["params"]["init"] == {"factor": 3, "offset": 0.5}
    assert tagged["params"]["init"] == {"tag": "x"}
    assert scale["params"]["python_path"] == [str(tmp_path.resolve())]

    manifest = tmp_path / "serialized.json"
    manifest.write_text(p.serialize())
    # The runtime's interpreter imports remotemedia (the classes' base) from this
    # environment, as an activated virtualenv would give it.
    env = dict(os.environ, VIRTUAL_ENV=sys.prefix)
    proc = subprocess.run(
        [exe, "run", str(manifest), "--input", "-", "--no-progress"],
        input="1\n2\n",
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    cli_outputs = [json.loads(line) for line in proc.stdout.splitlines()]
    assert cli_outputs == run(p.run([1, 2])) == [
        {"value": 6.5, "tag": "x"},
        {"value": 9.5, "tag": "x"},
    ]


def test_constructor_arguments_that_are_not_json_are_named(user_module):
    from remotemedia import ConfigurationError

    p = Pipeline([user_module.Scale(object())])
    with pytest.raises(ConfigurationError) as info:
        p.serialize()
    assert info.value.errors[0]["node_id"] == "Scale_0"
    assert "node `Scale_0` (Scale): constructor arguments are not JSON" in str(info.value)


def test_a_reused_pipeline_sees_every_change_between_runs():
    # A Pipeline keeps its validated manifest between runs; any change to what the
    # manifest is made of must be seen, including a dict changed in place.
    import asyncio

    from remotemedia import CalculatorNode, DataSinkNode, PassThroughNode, Pipeline, PlacementError

    calc = CalculatorNode(operation="add", operand=1)
    p = Pipeline([PassThroughNode(), calc])
    go = lambda: asyncio.run(p.run([1, 2]))  # noqa: E731
    assert go() == [2, 3]
    assert go() == [2, 3]
    calc.operand = 10
    assert go() == [11, 12]
    calc.operation = "multiply"
    assert go() == [10, 20]
    calc.capabilities = {"gpu": {"type": "cuda", "min_memory_gb": 80}}
    with pytest.raises(PlacementError):
        go()
    calc.capabilities = {}
    assert go() == [10, 20]
    calc.capabilities = {"memory_gb": 1}
    assert go() == [10, 20]
    calc.capabilities["gpu"] = {"type": "cuda", "min_memory_gb": 80}  # in place
    with pytest.raises(PlacementError):
        go()
    calc.capabilities = None
    seen = []
    sink = DataSinkNode()
    p.add_node(sink)
    assert go() == [10, 20]
    sink.callback = seen.append  # now a Python node
    assert go() == [10, 20] and seen == [10, 20]
    p2 = Pipeline([PassThroughNode(name="a"), CalculatorNode(operation="add", operand=1, name="b")])
    assert asyncio.run(p2.run([1])) == [2]
    p2.connect("a", "b")
    assert asyncio.run(p2.run([1])) == [2]
    p2.nodes[1].name = "renamed"
    assert asyncio.run(p2.run([1])) == [2]
