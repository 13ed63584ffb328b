"""``remotemedia.AudioBuffer``: the one Python shape of audio, in the SDK and in every
``PythonNode`` host, with numpy and without."""

import array
import os
import subprocess
import sys
import textwrap

import pytest
from _util import run
from remotemedia import AudioBuffer, Node, PassThroughNode, Pipeline, runtime
from remotemedia._remotemedia import roundtrip

np = pytest.importorskip("numpy")


def address(a):
    return a.__array_interface__["data"][0]


def stereo(frames=4):
    return np.arange(frames * 2, dtype=np.float32).reshape(frames, 2) / 10


def test_the_constructor_keeps_the_array_and_checks_the_rest():
    s = stereo()
    a = AudioBuffer(s, 48000, 2, pts_us=1500)
    assert a.samples is s
    assert (a.sample_rate, a.channels, a.pts_us, a.frames) == (48000, 2, 1500, 4)
    assert a.duration_us == 83 and a.end_pts_us == 1583
    assert repr(a) == "AudioBuffer(frames=4, sample_rate=48000, channels=2, pts_us=1500)"
    flat = np.zeros(6, dtype=np.float32)
    assert AudioBuffer(flat, 8000, 3).frames == 2
    assert AudioBuffer(flat, 8000).channels == 1


@pytest.mark.parametrize(
    "args, error, text",
    [
        ((np.zeros(4), 8000), TypeError, r"must be float32, got a numpy array of dtype float64 \(convert with samples.astype"),
        ((stereo(), 8000), ValueError, r"shape \(4, 2\) hold 2 channels .* but channels=1; pass channels=2"),
        ((np.zeros(5, dtype=np.float32), 8000, 2), ValueError, "5 interleaved samples cannot be split into 2 channels"),
        ((np.zeros((2, 2, 2), dtype=np.float32), 8000, 2), ValueError, "got 3 dimensions"),
        ((np.zeros(2, dtype=np.float32), 0), ValueError, "sample_rate must be a positive number of Hz, got 0"),
        ((np.zeros(2, dtype=np.float32), 8000.0), TypeError, "sample_rate must be an int, not float"),
        ((np.zeros(2, dtype=np.float32), 8000, 0), ValueError, "channels must be 1..65535, got 0"),
        ((np.zeros(2, dtype=np.float32), 8000, 1, 1.5), TypeError, "pts_us must be an int"),
        (("abc", 8000), TypeError, "must be a float32 numpy array, a buffer of float32 .* not str"),
    ],
)
def test_bad_buffers_are_refused_with_the_reason(args, error, text):
    with pytest.raises(error, match=text):
        AudioBuffer(*args)


def test_audio_round_trips_through_the_core_without_a_copy():
    s = stereo(480)
    out = roundtrip(AudioBuffer(s, 48000, 2, 20_000))
    assert type(out) is AudioBuffer
    assert (out.sample_rate, out.channels, out.pts_us) == (48000, 2, 20_000)
    assert out.samples.shape == (480, 2) and out.samples.dtype == np.float32
    assert address(out.samples) == address(s), "the samples were copied"
    assert not out.samples.flags.writeable
    assert out == AudioBuffer(s, 48000, 2, 20_000)


def test_other_layouts_are_made_contiguous_with_the_right_values():
    planar = np.arange(8, dtype=np.float32).reshape(2, 4)
    interleaved_view = planar.T  # (frames, channels), not C-contiguous
    out = roundtrip(AudioBuffer(interleaved_view, 8000, 2))
    assert np.array_equal(out.samples, interleaved_view)
    big_endian = np.arange(4, dtype=">f4")
    assert np.array_equal(roundtrip(AudioBuffer(big_endian, 8000)).samples, [0, 1, 2, 3])


def test_audio_through_a_pipeline_and_a_python_node_shares_memory(use_rust):
    seen = []

    class Halve(Node):
        def process(self, data):
            seen.append((type(data), address(data.samples)))
            return data

    s = stereo(960)
    outs = run(Pipeline([PassThroughNode(), Halve(), PassThroughNode()]).run([AudioBuffer(s, 48000, 2, 7)], use_rust=use_rust))
    [out] = outs
    assert seen == [(AudioBuffer, address(s))]
    assert type(out) is AudioBuffer and out.pts_us == 7 and address(out.samples) == address(s)


def test_a_node_that_processes_audio_gives_the_same_in_both_executors(use_rust):
    class Gain(Node):
        def __init__(self, factor, **kw):
            super().__init__(**kw)
            self.factor = factor

        def process(self, data):
            return data.with_samples(data.samples * np.float32(self.factor))

    s = stereo(8)
    [out] = run(Pipeline([Gain(0.5)]).run([AudioBuffer(s, 16000, 2, 40)], use_rust=use_rust))
    assert out == AudioBuffer(s * np.float32(0.5), 16000, 2, 40)


def test_native_audio_nodes_emit_audio_buffers():
    m = {
        "version": "v1",
        "metadata": {"name": "audio"},
        "nodes": [
            {"id": "tone", "node_type": "ToneGenerator", "params": {"sample_rate": 8000, "channels": 2, "duration_ms": 40, "chunk_ms": 20}},
        ],
        "connections": [],
    }
    outs = runtime.run_manifest(m, [])
    assert [type(o) for o in outs] == [AudioBuffer, AudioBuffer]
    assert [o.pts_us for o in outs] == [0, 20_000]
    assert outs[0].samples.shape == (160, 2)


def test_a_buffer_whose_fields_were_broken_is_an_error_naming_the_value():
    a = AudioBuffer(np.zeros(4, dtype=np.float32), 8000)
    a.channels = 3
    with pytest.raises(ValueError, match="AudioBuffer: 4 interleaved samples cannot be split into 3 channels"):
        roundtrip(a)
    a = AudioBuffer(np.zeros(4, dtype=np.float32), 8000)
    a.samples = "nope"
    with pytest.raises(TypeError, match="must be a float32 numpy array or buffer, not str"):
        roundtrip(a)


def test_buffers_other_than_numpy_are_accepted():
    a = AudioBuffer(array.array("f", [0.5, -0.5]), 8000)
    assert isinstance(a.samples, memoryview) and a.samples.readonly
    out = roundtrip(a)
    assert out.samples.tolist() == [0.5, -0.5]  # numpy is loaded: an array comes back
    assert AudioBuffer([0.25, 0.75], 8000).samples.tolist() == [0.25, 0.75]
    raw = array.array("f", [1.0, 2.0]).tobytes()
    assert roundtrip(AudioBuffer(raw, 8000)).samples.tolist() == [1.0, 2.0]


def _python(code):
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True, text=True, timeout=120, env=dict(os.environ),
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def test_without_numpy_samples_are_a_float32_memoryview():
    out = _python(
        """
        import array, sys
        sys.modules["numpy"] = None  # numpy cannot be imported
        from remotemedia import AudioBuffer, Node, Pipeline
        import asyncio

        class Louder(Node):
            def process(self, data):
                assert isinstance(data.samples, memoryview), type(data.samples)
                return data.with_samples([v * 2 for v in data.samples])

        a = AudioBuffer(array.array("f", [0.25, -0.5, 1.0, 0.0]), 8000, 2, 5)
        for use_rust in (True, False):
            [out] = asyncio.run(Pipeline([Louder()]).run([a], use_rust=use_rust))
            assert type(out) is AudioBuffer, out
            assert (out.channels, out.frames, out.pts_us) == (2, 2, 5)
            assert out.samples.tolist() == [0.5, -1.0, 2.0, 0.0], out.samples.tolist()
            if use_rust:
                assert out.samples.format == "f" and out.samples.readonly
        print("ok")
        """
    )
    assert out.strip() == "ok"


def test_one_class_whichever_loads_first():
    # A host (the CLI's embedded CPython) may load the shared module before the SDK is
    # imported from a node; the SDK then uses that class, so isinstance agrees.
    out = _python(
        """
        import importlib.util, sys, types
        import remotemedia._audio_buffer as path_probe  # find the file without the package
        src = open(path_probe.__file__).read()
        for name in list(sys.modules):
            if name == "remotemedia" or name.startswith("remotemedia.") or name == "_remotemedia_audio":
                del sys.modules[name]
        m = types.ModuleType("_remotemedia_audio")
        sys.modules["_remotemedia_audio"] = m
        exec(compile(src, "<host>", "exec"), m.__dict__)
        import remotemedia
        assert remotemedia.AudioBuffer is m.AudioBuffer
        print("ok")
        """
    )
    assert out.strip() == "ok"


@pytest.mark.parametrize("host", ["process", "cpython"])
def test_every_host_gives_a_python_node_the_same_audio_buffer(host):
    source = textwrap.dedent(
        """
        class Node:
            def process(self, data):
                import remotemedia
                assert isinstance(data, remotemedia.AudioBuffer), type(data)
                return [data.samples.shape, data.samples.flags.writeable, data.with_samples(data.samples[::-1].copy())]
        """
    )
    m = {
        "version": "v1",
        "metadata": {"name": "audio"},
        "nodes": [{"id": "py", "node_type": "PythonNode", "params": {"runtime": host, "source": source, "class": "Node"}}],
        "connections": [],
    }
    s = stereo(3)
    [[shape, writeable, out]] = runtime.run_manifest(m, [AudioBuffer(s, 8000, 2, 9)])
    assert list(shape) == [3, 2] and writeable is False
    assert out == AudioBuffer(s[::-1].copy(), 8000, 2, 9)


def test_the_sdk_readme_audio_example_runs_and_prints_what_it_says():
    readme = os.path.join(os.path.dirname(__file__), "..", "..", "crates", "remotemedia-py", "README.md")
    text = open(readme, encoding="utf-8").read()
    block = text.split("<!-- sdk-audio-example:", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    expected = [line.split("# ", 1)[1].strip() for line in block.splitlines() if line.startswith("print(")]
    out = _python(block).splitlines()
    assert out == expected
