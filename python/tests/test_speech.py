"""The speech nodes through the SDK: `VoiceActivity` (energy engine, which needs no
model) over a generated stream — quiet noise, a tone, quiet noise — finds the tone."""

import math
import random
import struct

import pytest
from remotemedia import AudioBuffer, ConfigurationError, runtime

RATE = 16000
CHUNK = 320  # 20 ms


def audio_items(segments):
    """``(kind, seconds)`` pieces as 20 ms ``{"$audio": …}`` items (no numpy needed),
    each stamped with the time of its first frame."""
    rng = random.Random(1)
    samples = []
    for kind, seconds in segments:
        n = int(seconds * RATE)
        if kind == "tone":
            samples += [0.5 * math.sin(2 * math.pi * 440 * (len(samples) + i) / RATE) for i in range(n)]
        else:
            samples += [rng.uniform(-0.001, 0.001) for _ in range(n)]
    items = []
    for k in range(0, len(samples), CHUNK):
        chunk = samples[k : k + CHUNK]
        items.append(
            {
                "$audio": {
                    "sample_rate": RATE,
                    "channels": 1,
                    "pts_us": k * 1_000_000 // RATE,
                    "samples": struct.pack(f"<{len(chunk)}f", *chunk),
                }
            }
        )
    return items


def manifest(output, node_type="VoiceActivity"):
    return {
        "version": "v1",
        "metadata": {"name": "vad"},
        "nodes": [{"id": "vad", "node_type": node_type, "params": {"engine": "energy", "output": output}}],
    }


@pytest.fixture(autouse=True)
def extension():
    if not runtime.is_available():
        pytest.skip("the Rust extension is not built")


def test_the_speech_nodes_are_registered():
    types = runtime.node_types()
    assert "VoiceActivity" in types
    assert "SileroVADNode" in types


def test_energy_vad_events_find_the_tone():
    items = audio_items([("noise", 1.0), ("tone", 1.0), ("noise", 1.0)])
    events = runtime.run_manifest(manifest("events"), items)
    assert [e["type"] for e in events] == ["speech_start", "speech_end"], events
    start, end = events[0]["pts_us"], events[1]["pts_us"]
    # The tone spans 1.0–2.0 s; 30 ms of padding each side, decided per 32 ms frame.
    assert abs(start - 970_000) <= 32_000, events
    assert abs(end - 2_030_000) <= 32_000, events
    assert events[1]["duration_ms"] == (end - start) / 1000


def audio_info(item):
    """``(pts_us, sample_rate, frames)`` of audio from the SDK: an ``AudioBuffer``,
    with numpy or without."""
    assert isinstance(item, AudioBuffer), item
    return item.pts_us, item.sample_rate, item.frames


def test_energy_vad_segments_through_the_alias():
    items = audio_items([("noise", 0.5), ("tone", 0.6), ("noise", 1.0), ("tone", 0.4), ("noise", 0.5)])
    segments = runtime.run_manifest(manifest("segments", "SileroVADNode"), items)
    assert len(segments) == 2, segments
    for seg, (tone_start, tone_len) in zip(segments, [(0.5, 0.6), (2.1, 0.4)]):
        pts, rate, frames = audio_info(seg)
        assert rate == RATE
        # The tone plus 30 ms of padding each side, decided per 32 ms frame.
        assert abs(pts - (tone_start - 0.03) * 1_000_000) <= 32_000, pts
        assert abs(frames / RATE - (tone_len + 0.06)) <= 0.064, frames


def test_the_silero_engine_is_checked_when_the_manifest_loads():
    m = manifest("events")
    del m["nodes"][0]["params"]["engine"]
    try:
        runtime.validate_manifest(m)
    except ConfigurationError as e:
        # Without the model: the error says how to install it, or to use `energy`.
        text = str(e)
        assert "engine" in text, text
        assert "pip install onnxruntime silero-vad" in text or "cannot load" in text, text
        assert "engine: energy" in text, text
