"""remotemedia.client against a real `remotemedia serve --pipelines`: audio and items
in, events, audio and the summary out, flush, errors, with or without numpy."""

import asyncio
import math
import subprocess
import sys

import pytest

from _util import cli as cli_path

websockets = pytest.importorskip("websockets")

from remotemedia.client import SessionError, connect  # noqa: E402

LEVEL = """
version: v1
metadata: {name: level, overridable: [gain.db]}
nodes:
  - {id: level, node_type: AudioLevel, params: {interval_ms: 100}}
  - {id: gain, node_type: AudioGain, params: {db: -6}}
"""

CALC = """
version: v1
metadata: {name: calc}
nodes:
  - {id: add, node_type: Calculator, params: {operation: add, operand: 1}}
"""

MONO = """
version: v1
metadata: {name: mono}
nodes:
  - {id: vad, node_type: VoiceActivity, params: {engine: energy}}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    exe = cli_path()
    if exe is None:
        pytest.skip("the remotemedia CLI is not built (cargo build -p remotemedia-cli, or set REMOTEMEDIA_CLI)")
    d = tmp_path_factory.mktemp("sessions")
    p = d / "pipelines"
    p.mkdir()
    (p / "level.yaml").write_text(LEVEL)
    (p / "calc.yaml").write_text(CALC)
    (p / "mono.yaml").write_text(MONO)
    proc = subprocess.Popen([exe, "serve", "--listen", "127.0.0.1:0", "--pipelines", str(p)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline()
    assert line.startswith("listening on "), line
    yield line.split()[-1]
    proc.terminate()
    proc.wait(timeout=30)


def tone(seconds, rate=16000, amp=0.5):
    return [amp * math.sin(2 * math.pi * 440 * i / rate) for i in range(int(seconds * rate))]


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


def test_audio_in_events_and_audio_out(server):
    async def go():
        outs = []
        async with connect(server, "level", sample_rate=16000) as s:
            assert s.id and s.id.startswith("level-")
            samples = tone(0.5)
            for i in range(0, len(samples), 1000):
                await s.send(samples[i:i + 1000])
            await s.ping()
            await s.end()
            async for out in s:
                outs.append(out)
        return outs, s.summary

    outs, summary = run(go())
    levels = [o for o in outs if o.type == "output"]
    assert [o.pts_us for o in levels] == [100000, 200000, 300000, 400000, 500000]
    assert all(abs(o.item["rms_dbfs"][0] + 9.03) < 0.05 for o in levels)
    audio = [o for o in outs if o.type == "audio"]
    assert len(audio) == 25 and audio[0].sample_rate == 16000 and audio[0].sink == "gain"
    assert [o.type for o in outs].count("pong") == 1
    assert summary["outputs"] == 30


def test_numpy_chunks_when_numpy_is_installed(server):
    np = pytest.importorskip("numpy")

    async def go():
        got = []
        async with connect(server, "level", sample_rate=16000, params={"gain.db": 0}) as s:
            x = np.asarray(tone(0.1), dtype=np.float32)
            await s.send(x)
            await s.end()
            async for out in s:
                if out.type == "audio":
                    got.append(out.audio)
        return np.concatenate(got), x

    back, sent = run(go())
    assert back.dtype == np.float32 and back.shape == sent.shape
    assert np.max(np.abs(back - sent)) < 1.0 / 16000  # s16 on the way back


def test_audio_buffers_in_and_out(server):
    from remotemedia import AudioBuffer

    async def go():
        async with connect(server, "level", sample_rate=16000, params={"gain.db": 0}) as s:
            with pytest.raises(ValueError, match="this session takes 16000 Hz, 1 channel"):
                await s.send(AudioBuffer([0.0] * 160, 8000))
            await s.send(AudioBuffer(tone(0.1), 16000, 1, 0))
            await s.end()
            return [o.buffer for o in [o async for o in s] if o.type == "audio"]

    buffers = run(go())
    assert buffers and all(isinstance(b, AudioBuffer) and b.sample_rate == 16000 for b in buffers)
    assert sum(b.frames for b in buffers) == 1600
    assert [b.pts_us for b in buffers] == sorted(b.pts_us for b in buffers)


def test_items_flush_and_errors(server):
    async def go():
        async with connect(server, "calc", sample_rate=None) as s:
            await s.send_item(1)
            first = await s.__aiter__().__anext__()
            await s.flush()
            flushed = await s.__aiter__().__anext__()
            await s.send_item({"$tensor": "bad"})
            bad = await s.__aiter__().__anext__()
            await s.send_item(41)
            await s.end()
            rest = [o async for o in s]
        return first, flushed, bad, rest

    first, flushed, bad, rest = run(go())
    assert (first.type, first.sink, first.item) == ("output", "add", 2)
    assert flushed.type == "flushed"
    assert bad.type == "error" and bad.kind == "bad_input"
    assert [o.item for o in rest] == [42]


def test_session_errors_raise(server):
    async def unknown():
        async with connect(server, "nope"):
            pass

    with pytest.raises(SessionError) as e:
        run(unknown())
    assert e.value.kind == "unknown_pipeline"

    async def node_fails():
        async with connect(server, "mono", sample_rate=16000, channels=2) as s:
            await s.send(tone(0.1, amp=0.1) * 2)
            async for _ in s:
                pass

    with pytest.raises(SessionError) as e:
        run(node_fails())
    assert e.value.node_id == "vad" and "AudioChannels" in e.value.message
