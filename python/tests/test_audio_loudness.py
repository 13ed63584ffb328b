"""AudioLoudness against pyloudnorm: the same generated signal, the same integrated
loudness (within 0.1 LU)."""

import pytest
from remotemedia import AudioBuffer, runtime

np = pytest.importorskip("numpy")
pyln = pytest.importorskip("pyloudnorm")

RATE = 48000


def signal():
    """Stereo, 12 s: a 1 kHz sine at -23 dBFS, seeded noise at about -30 dBFS, a quiet
    stretch (-50 dBFS, below the relative gate) and a louder sine of another frequency,
    different on each channel."""
    rng = np.random.default_rng(7)
    t = np.arange(3 * RATE) / RATE
    sine = 10 ** (-23 / 20) * np.sin(2 * np.pi * 1000 * t)
    noise = 10 ** (-30 / 20) * rng.uniform(-1, 1, size=(2, 3 * RATE)) * np.sqrt(3)
    quiet = 10 ** (-50 / 20) * np.sin(2 * np.pi * 300 * t)
    loud = 10 ** (-16 / 20) * np.sin(2 * np.pi * 2500 * t)
    left = np.concatenate([sine, noise[0], quiet, loud])
    right = np.concatenate([sine, noise[1], quiet, 0.5 * loud])
    return np.stack([left, right]).astype(np.float32)  # (channels, frames)


def manifest():
    return {
        "version": "v1",
        "metadata": {"name": "loudness"},
        "nodes": [{"id": "loud", "node_type": "AudioLoudness", "params": {"interval_ms": 1000}}],
    }


def test_integrated_loudness_matches_pyloudnorm():
    if not runtime.is_available():
        pytest.skip("the Rust extension is not built")
    audio = signal()
    # Chunks of 0.1 s that do not divide the signal evenly at the end.
    chunk = 4801
    items = [AudioBuffer(audio[:, k : k + chunk].T, RATE, 2) for k in range(0, audio.shape[1], chunk)]
    events = runtime.run_manifest(manifest(), items)

    summary = events[-1]
    assert summary["type"] == "loudness_summary"
    assert summary["pts_us"] == audio.shape[1] * 1_000_000 // RATE
    ours = summary["integrated_lufs"]

    theirs = pyln.Meter(RATE).integrated_loudness(audio.T.astype(np.float64))
    assert abs(ours - theirs) <= 0.1, (ours, theirs)

    # One interval event per second (the last one shorter), each stamped at its end.
    intervals = [e for e in events if e["type"] == "loudness"]
    assert [e["pts_us"] for e in intervals] == [1_000_000 * (k + 1) for k in range(12)]
    assert all(len(e["true_peak_dbtp"]) == 2 for e in intervals)


def test_a_constant_sine_is_its_level():
    """EBU Tech 3341 case 1: stereo 1 kHz at -23 dBFS reads -23.0 LUFS here and in
    pyloudnorm."""
    if not runtime.is_available():
        pytest.skip("the Rust extension is not built")
    t = np.arange(20 * RATE) / RATE
    sine = (10 ** (-23 / 20) * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    audio = np.stack([sine, sine])
    events = runtime.run_manifest(manifest(), [AudioBuffer(audio.T, RATE, 2)])
    ours = events[-1]["integrated_lufs"]
    theirs = pyln.Meter(RATE).integrated_loudness(audio.T.astype(np.float64))
    assert abs(ours - -23.0) <= 0.1, ours
    assert abs(ours - theirs) <= 0.1, (ours, theirs)
