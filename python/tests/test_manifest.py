"""Manifests: ``Pipeline.serialize()`` output is valid for the Rust core and its CLI."""

import json
import os
import subprocess

import pytest
from _util import REPO, run
from _util import cli as _cli
from remotemedia import (
    CalculatorNode,
    DataSinkNode,
    DataSourceNode,
    PassThroughNode,
    Pipeline,
    runtime,
)

def _builtin_pipeline():
    p = Pipeline(name="round-trip")
    p.add_node(DataSourceNode(name="source"))
    p.add_node(PassThroughNode())
    p.add_node(CalculatorNode(operation="multiply", operand=2.5, name="scale"))
    p.add_node(CalculatorNode(name="calc"))
    p.add_node(DataSinkNode(name="sink"))
    p.nodes[2].capabilities = {"cpu": {"cores": 1}, "memory_gb": 0.5}
    return p


def test_serialize_validates_in_the_core():
    text = _builtin_pipeline().serialize(description="built-ins only")
    runtime.validate_manifest(text)  # raises ConfigurationError if invalid
    assert runtime.validate_manifest(json.loads(text)) is None


def test_serialized_manifest_runs_like_the_pipeline():
    p = _builtin_pipeline()
    p.remove_node("calc")  # the remaining nodes accept plain numbers
    outputs = runtime.run_manifest(p.serialize(), [1, 2, 4])
    assert outputs == run(p.run([1, 2, 4])) == run(p.run([1, 2, 4], use_rust=False)) == [2.5, 5.0, 10.0]


def test_yaml_manifests_run():
    yaml_text = """
version: v1
metadata:
  name: yaml
nodes:
  - id: add
    node_type: CalculatorNode
    params: {operation: add, operand: 2}
  - id: out
    node_type: PassThroughNode
connections:
  - {from: add, to: out}
"""
    runtime.validate_manifest(yaml_text)
    assert runtime.run_manifest(yaml_text, [1, 2]) == [3, 4]


def test_serialize_round_trips_through_cli(tmp_path):
    cli = _cli()
    if cli is None:
        pytest.skip("the remotemedia CLI is not built (cargo build -p remotemedia-cli, or set REMOTEMEDIA_CLI)")
    path = tmp_path / "pipeline.json"
    path.write_text(_builtin_pipeline().serialize(description="round trip"))
    done = subprocess.run([cli, "validate", str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    done = subprocess.run([cli, "validate", "--json", str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["valid"] is True
    # And the CLI rejects what the SDK rejects.
    bad = json.loads(path.read_text())
    bad["nodes"][2]["params"]["operation"] = "sqrt"
    path.write_text(json.dumps(bad))
    assert subprocess.run([cli, "validate", str(path)], capture_output=True, timeout=60).returncode != 0
