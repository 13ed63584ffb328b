"""The SDK's audio node classes run the core's native audio nodes: a file read,
resampled and written from Python is byte for byte what the CLI writes for the same
pipeline; bad params are named; the Python executor refuses them."""

import json
import math
import struct
import subprocess
import wave

import pytest

from _util import cli as cli_path
from _util import run
from remotemedia import ConfigurationError, Pipeline, PipelineError
from remotemedia.nodes.audio import (
    AudioChannelsNode,
    AudioLevelNode,
    AudioResampleNode,
    MediaReaderNode,
    MediaWriterNode,
    ToneGeneratorNode,
)


def write_wav(path, rate=48000, seconds=0.5, channels=2):
    frames = int(rate * seconds)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        data = b"".join(
            struct.pack("<h", int(12000 * math.sin(2 * math.pi * 440 * i / rate))) * channels
            for i in range(frames)
        )
        w.writeframes(data)


def test_a_file_resampled_from_python_equals_the_cli(tmp_path):
    src = tmp_path / "in.wav"
    write_wav(src)
    ours, theirs = tmp_path / "sdk.wav", tmp_path / "cli.wav"

    def pipeline(out):
        return Pipeline([
            MediaReaderNode(path=str(src)),
            AudioChannelsNode(channels=1),
            AudioResampleNode(target_rate=16000, quality="high"),
            MediaWriterNode(path=str(out)),
        ])

    written = run(pipeline(ours).run())
    assert written["type"] == "written" and written["frames"] == 8000
    with wave.open(str(ours)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getnframes()) == (16000, 1, 8000)
    exe = cli_path()
    if exe is None:
        pytest.skip("the remotemedia CLI is not built")
    manifest = tmp_path / "m.json"
    manifest.write_text(pipeline(theirs).serialize())
    assert [n["node_type"] for n in json.loads(manifest.read_text())["nodes"]] == [
        "MediaReader", "AudioChannels", "AudioResample", "MediaWriter"]
    proc = subprocess.run([exe, "run", str(manifest), "--no-progress"], capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    assert ours.read_bytes() == theirs.read_bytes()


def test_events_come_back_as_python_values():
    p = Pipeline([ToneGeneratorNode(sample_rate=16000, duration_ms=300, frequency_hz=1000, amplitude=0.5),
                  AudioLevelNode(interval_ms=100)])
    levels = run(p.run())
    assert [e["type"] for e in levels] == ["level"] * 3
    # A sine of peak 0.5: RMS 0.5/sqrt(2) = -9.03 dBFS, peak -6.02 dBFS.
    for e in levels:
        assert abs(e["rms_dbfs"][0] - 20 * math.log10(0.5 / math.sqrt(2))) < 0.05, e
        assert abs(e["peak_dbfs"][0] - 20 * math.log10(0.5)) < 0.05, e
    assert levels[-1]["pts_us"] == 300_000


def test_bad_params_name_the_node_and_the_python_executor_refuses():
    bad = Pipeline([AudioResampleNode(target_rate=16000, quality="ultra")])
    with pytest.raises(ConfigurationError) as info:
        run(bad.run([]))
    assert "AudioResampleNode_0" in str(info.value) and "quality" in str(info.value)
    with pytest.raises(PipelineError, match=r"run only in the Rust core"):
        run(Pipeline([AudioChannelsNode(channels=1)]).run([], use_rust=False))
