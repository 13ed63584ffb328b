"""The SDK places and runs pipelines as ``remotemedia run`` does: the same refusals
with the same words, remote stages on a real ``remotemedia serve``, failover between
executors, and manifests with ``PythonNode`` run from Python."""

import json
import logging
import os
import socket
import subprocess
import threading
import time

import pytest

from _util import REPO, run
from _util import cli as cli_path
from remotemedia import (
    CalculatorNode,
    ConfigurationError,
    Node,
    PassThroughNode,
    Pipeline,
    PipelineError,
    PlacementError,
    runtime,
)


def need_cli():
    exe = cli_path()
    if exe is None:
        pytest.skip("the remotemedia CLI is not built (cargo build -p remotemedia-cli, or set REMOTEMEDIA_CLI)")
    return exe


def cli_refusal(exe, manifest_text, tmp_path, *args):
    """What `remotemedia run` prints for a pipeline it refuses, without `error: `."""
    path = tmp_path / "m.json"
    path.write_text(manifest_text)
    proc = subprocess.run(
        [exe, "run", str(path), "--no-progress", *args],
        input="",
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if not line.startswith("warning:")]
    assert lines[0].startswith("error: "), proc.stderr
    return "\n".join([lines[0][len("error: "):], *lines[1:]])


@pytest.fixture
def no_ambient_executors(monkeypatch, tmp_path):
    """No executor from the environment or a remotemedia.toml in the working directory."""
    monkeypatch.delenv("REMOTEMEDIA_EXECUTORS", raising=False)
    monkeypatch.chdir(tmp_path)


def test_a_host_nobody_listens_on_is_refused_with_the_cli_message(no_ambient_executors, tmp_path):
    exe = need_cli()
    node = CalculatorNode(operation="add", operand=1)
    node.host = "127.0.0.1:1"
    p = Pipeline([node])
    with pytest.raises(PlacementError) as info:
        run(p.run([1, 2]))
    message = str(info.value)
    assert "127.0.0.1:1" in message
    assert message == cli_refusal(exe, p.serialize(), tmp_path)
    # The manifest entry point refuses it the same way.
    with pytest.raises(PlacementError) as again:
        runtime.run_manifest(p.serialize(), [1])
    assert str(again.value) == message


def test_a_gpu_nobody_has_is_refused_with_the_cli_message(no_ambient_executors, tmp_path):
    exe = need_cli()

    class Needy(Node):
        capabilities = {"gpu": {"type": "cuda", "min_memory_gb": 80}}

        def process(self, data):
            return data

    calc = CalculatorNode(operation="add", operand=1)
    calc.capabilities = {"gpu": {"type": "cuda", "min_memory_gb": 80}}
    p = Pipeline([calc])
    with pytest.raises(PlacementError) as info:
        run(p.run([1]))
    message = str(info.value)
    assert "needs cuda ≥ 80 GB" in message and "hint: no remote executors are configured" in message
    assert message == cli_refusal(exe, p.serialize(), tmp_path)
    # A Python node with the same requirement is refused too, not run here.
    with pytest.raises(PlacementError):
        run(Pipeline([Needy()]).run([1]))


def test_executor_configuration_errors_are_configuration_errors(no_ambient_executors):
    p = Pipeline([PassThroughNode()])
    with pytest.raises(ConfigurationError, match="fastest"):
        run(p.run([1], executors=["a=127.0.0.1:1"], policy="fastest"))
    with pytest.raises(ConfigurationError, match="list of NAME=HOST:PORT"):
        run(p.run([1], executors="a=127.0.0.1:1"))
    with pytest.raises(ConfigurationError, match="no-such-file.toml"):
        run(p.run([1], config="no-such-file.toml"))


def test_the_pure_python_executor_refuses_what_it_cannot_place():
    node = PassThroughNode()
    node.host = "127.0.0.1:1"
    with pytest.raises(PipelineError, match=r"use_rust=False runs every node in this process.*127\.0\.0\.1:1"):
        run(Pipeline([node]).run([1], use_rust=False))
    with pytest.raises(PipelineError, match="executors were given"):
        run(Pipeline([PassThroughNode()]).run([1], use_rust=False, executors=["a=127.0.0.1:1"]))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Executor:
    """A `remotemedia serve` on loopback, stopped by the test."""

    def __init__(self, exe, *args):
        self.proc = subprocess.Popen(
            [exe, "serve", "--listen", "127.0.0.1:0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        line = self.proc.stdout.readline()
        assert line.startswith("listening on "), line
        self.address = line.split()[-1]

    def streams(self):
        """Streams the executor has taken (`remotemedia_streams_total`)."""
        return self.metric("remotemedia_streams_total")

    def metric(self, name):
        """A counter or gauge from the executor's /metrics."""
        host, port = self.address.rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=10) as s:
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        for line in data.decode().splitlines():
            if line.split(" ")[0] == name:
                return float(line.split()[-1])
        raise AssertionError(f"no {name} in {data[:300]!r}")

    def kill(self):
        self.proc.kill()
        self.proc.wait(timeout=30)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@pytest.fixture
def executors():
    exe = need_cli()
    started = []

    def start(*args):
        e = Executor(exe, *args)
        started.append(e)
        return e

    yield start
    for e in started:
        e.stop()


def test_a_node_with_a_host_runs_on_that_executor(no_ambient_executors, executors):
    gpu = executors()
    add = CalculatorNode(operation="add", operand=1)
    add.host = gpu.address
    p = Pipeline([add, CalculatorNode(operation="multiply", operand=2)])
    before = gpu.streams()
    assert run(p.run([1, 2, 3])) == [4, 6, 8]
    assert gpu.streams() == before + 1
    # Given as an executor instead of a host: the same.
    plain = Pipeline([CalculatorNode(operation="add", operand=1)])
    outputs = runtime.run_manifest(
        plain.serialize(), [10], executors=[f"gpu={gpu.address}"], policy="balanced"
    )
    # With a greedy or balanced policy a plain node may stay on this machine; the
    # result is the same either way.
    assert outputs == [11]


def test_tuples_and_audio_cross_a_remote_executor_unchanged(no_ambient_executors, executors):
    from remotemedia import AudioBuffer, PassThroughNode

    gpu = executors()
    hop = PassThroughNode()
    hop.host = gpu.address
    audio = AudioBuffer([0.5, -0.25, 1.0, 0.0], 16000, 2, 40_000)
    items = [(1, ("a", [2, (3,)])), audio]
    out = run(Pipeline([hop]).run(items))
    assert out[0] == items[0] and type(out[0]) is tuple and type(out[0][1][1][1]) is tuple
    assert out[1] == audio
    assert gpu.streams() >= 1


GPU_MACHINE = str(REPO / "examples" / "remote" / "gpu-capabilities.json")


def test_a_remote_stage_fails_over_to_the_other_executor(no_ambient_executors, executors, caplog):
    # Two executors that say they have the GPU the node needs; this machine has none.
    first = executors("--capabilities", GPU_MACHINE)
    second = executors("--capabilities", GPU_MACHINE)
    n = 200_000
    manifest = {
        "version": "v1",
        "metadata": {"name": "failover"},
        "nodes": [
            {"id": "add", "node_type": "Calculator", "params": {"operation": "add", "operand": 1},
             "capabilities": {"gpu": {"type": "cuda", "min_memory_gb": 16}}},
            {"id": "double", "node_type": "Calculator", "params": {"operation": "multiply", "operand": 2}},
        ],
        "connections": [{"from": "add", "to": "double"}],
    }

    def kill_mid_stream():
        # The first executor dies as soon as the stream is under way on it.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if first.metric("remotemedia_active_streams") >= 1:
                    break
            except OSError:
                pass
            time.sleep(0.005)
        first.kill()

    killer = threading.Thread(target=kill_mid_stream)
    killer.start()
    try:
        with caplog.at_level(logging.WARNING, logger="remotemedia.runtime"):
            outputs = runtime.run_manifest(
                json.dumps(manifest),
                range(n),
                executors=[f"a={first.address}", f"b={second.address}"],
            )
    finally:
        killer.join()
    # Nothing lost, nothing twice, in order.
    assert outputs == [2 * i + 2 for i in range(n)]
    failovers = [r.message for r in caplog.records if r.message.startswith("failover:")]
    assert len(failovers) == 1, caplog.records
    assert f"from a to b" in failovers[0], failovers
    assert second.streams() >= 1


PY_MANIFEST = """
version: v1
metadata: {name: python}
nodes:
  - id: upper
    node_type: PythonNode
    params:
      class: Upper
      runtime: %s
      source: |
        class Upper:
            def process(self, data):
                return data.upper() + "!"
"""


@pytest.mark.parametrize("host", ["cpython", "process"])
def test_manifests_with_python_nodes_run_from_python(host):
    assert "PythonNode" in runtime.node_types()
    runtime.validate_manifest(PY_MANIFEST % host)
    assert runtime.run_manifest(PY_MANIFEST % host, ["a", "b"]) == ["A!", "B!"]


def test_a_python_node_exception_names_the_node():
    bad = (PY_MANIFEST % "cpython").replace('data.upper() + "!"', "1 / 0")
    with pytest.raises(Exception) as info:
        runtime.run_manifest(bad, ["a"])
    assert "upper" in str(info.value) and "ZeroDivisionError" in str(info.value)


def test_the_extension_names_a_placement_argument_it_does_not_know():
    from remotemedia import runtime as rt

    text = Pipeline([PassThroughNode()]).serialize()
    with pytest.raises(TypeError, match="unexpected keyword argument `executor`; expected executors"):
        rt.extension().run_manifest(text, [1], None, None, executor=["a=127.0.0.1:1"])
