#!/usr/bin/env python3
"""Speech benchmarks: the whole VAD pipeline of `remotemedia run` against the same steps
in Python, plus the speech crate's model-level figures, side by side in one run.

    python benchmark_speech.py --cli target/release/remotemedia [--quick] [--json FILE]
                               [--markdown FILE] [--workdir DIR] [--examples DIR]

What it measures:

* **Whole pipeline** over a 10-minute file (1 minute with ``--quick``): espeak-ng
  speech with silences of 0.3–2 s between sentences, made 48 kHz stereo 16-bit WAV by
  sox. Decode → mono → 16 kHz → Silero VAD segments → one 16-bit WAV per utterance,
  by ``remotemedia run`` (``AudioChannels`` → ``AudioResample`` high →
  ``VoiceActivity`` → ``MediaWriter`` with ``{index}``) and by Python: soundfile +
  numpy mean + soxr HQ + the same model through onnxruntime (1 intra-op and 1 inter-op
  thread, 512-sample windows with the state and 64 samples of context carried over, as
  the ``silero-vad`` package does) + the same segmentation rules + soundfile. Each side
  is a process of its own, timed from start to exit (model loading included), with its
  peak RSS; medians of repeated runs. The utterances each side found are compared.
* **Model level** (``vad_speed`` and ``vad_memory``, the speech crate's examples, run
  with ``--json`` from ``--examples DIR``, by default ``examples/`` next to ``--cli``:
  build them with ``cargo build --release -p remotemedia-speech --examples``): µs per
  512-sample window ours against Python onnxruntime, 64 streams batched against
  unbatched, memory per additional stream.

Needs espeak-ng and sox (programs), numpy, soundfile, soxr and onnxruntime (``pip
install numpy soundfile soxr onnxruntime``) and the model (``pip install --no-deps
silero-vad``) for the interpreter running this script; what is missing is reported as
"not measured" with the reason. ``--python-pipeline IN OUTDIR`` runs the Python side
alone (what the benchmark times).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional

RATE_IN = 48_000
RATE_OUT = 16_000
HERE = Path(__file__).resolve().parent

# VAD rules of both sides (the node's defaults, with min_silence_ms 300).
THRESHOLD = 0.5
NEG_THRESHOLD = 0.35
MIN_SPEECH_MS = 250
MIN_SILENCE_MS = 300
PAD_MS = 30

PIPELINE = f"""version: v1
metadata: {{ name: speech-pipeline }}
nodes:
  - {{ id: mono, node_type: AudioChannels, params: {{ channels: 1 }} }}
  - {{ id: resample, node_type: AudioResample, params: {{ target_rate: 16000, quality: high }} }}
  - {{ id: vad, node_type: VoiceActivity, params: {{ output: segments, threshold: {THRESHOLD}, neg_threshold: {NEG_THRESHOLD}, min_speech_ms: {MIN_SPEECH_MS}, min_silence_ms: {MIN_SILENCE_MS}, speech_pad_ms: {PAD_MS} }} }}
  - {{ id: write, node_type: MediaWriter, params: {{ path: "utterance-{{index:04}}.wav" }} }}
connections:
  - {{ from: mono, to: resample }}
  - {{ from: resample, to: vad }}
  - {{ from: vad, to: write }}
"""

SENTENCES = [
    ("The quick brown fox jumps over the lazy dog.", 0.3),
    ("Please call Stella and ask her to bring these things with her from the store.", 1.2),
    ("Six spoons of fresh snow peas, five thick slabs of blue cheese.", 0.5),
    ("We also need a small plastic snake and a big toy frog for the kids.", 2.0),
    ("She can scoop these things into three red bags.", 0.8),
    ("And we will go meet her Wednesday at the train station.", 0.4),
    ("When the sunlight strikes raindrops in the air, they act as a prism.", 1.5),
    ("The rainbow is a division of white light into many beautiful colors.", 0.6),
]


def model_path() -> Optional[str]:
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        return None
    p = os.path.join(list(spec.submodule_search_locations)[0], "data", "silero_vad.onnx")
    return p if os.path.isfile(p) else None


def missing_requirements() -> Optional[str]:
    missing = [m for m in ("numpy", "soundfile", "soxr", "onnxruntime") if importlib.util.find_spec(m) is None]
    tools = [t for t in ("espeak-ng", "sox") if shutil.which(t) is None]
    parts = []
    if missing:
        parts.append("missing Python packages " + ", ".join(missing))
    if tools:
        parts.append("missing programs " + ", ".join(tools))
    if model_path() is None:
        parts.append("the silero-vad package (the model) is not installed")
    return "not measured: " + "; ".join(parts) if parts else None


def run_checked(cmd: List[str], **kw: Any) -> subprocess.CompletedProcess:
    out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({out.returncode}): {out.stderr.strip()[-500:]}")
    return out


def make_fixture(work: Path, minutes: float) -> Path:
    """espeak-ng's sentences and silences (about 50 s), repeated and cut to exactly
    `minutes`, as 48 kHz stereo 16-bit WAV."""
    ssml = "<speak>" + " ".join(f'{s} <break time="{int(gap * 1000)}ms"/>' for s, gap in SENTENCES) + "</speak>"
    one = work / "sentences.wav"
    run_checked(["espeak-ng", "-m", "-w", str(one), ssml])
    seconds = float(run_checked(["soxi", "-D", str(one)]).stdout.strip())
    repeats = math.ceil(minutes * 60 / seconds)
    out = work / "speech-48k-stereo.wav"
    run_checked(["sox", *[str(one)] * repeats, "-b", "16", str(out), "rate", "-v", str(RATE_IN), "channels", "2", "trim", "0", f"{minutes * 60:g}"])
    one.unlink()
    return out


def python_pipeline(src: str, outdir: str) -> int:
    """The Python side: returns the number of utterances written."""
    import numpy as np
    import onnxruntime
    import soundfile as sf
    import soxr

    x, rate = sf.read(src, dtype="float32")
    mono = x.mean(axis=1, dtype=np.float32) if x.ndim == 2 else x
    y = soxr.resample(mono, rate, RATE_OUT, quality="HQ").astype(np.float32)

    opts = onnxruntime.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(model_path(), sess_options=opts, providers=["CPUExecutionProvider"])
    window, context_size = 512, 64
    state = np.zeros((2, 1, 128), dtype=np.float32)
    context = np.zeros((1, context_size), dtype=np.float32)
    sr = np.array(RATE_OUT, dtype=np.int64)

    ms = lambda v: int(v * RATE_OUT / 1000)  # noqa: E731
    min_speech, min_silence, pad = ms(MIN_SPEECH_MS), ms(MIN_SILENCE_MS), ms(PAD_MS)
    segments = []
    state_kind, start, quiet_since, last_end = "silence", 0, None, 0
    n = len(y)
    for pos in range(0, n, window):
        chunk = y[pos : pos + window]
        if len(chunk) < window:
            chunk = np.concatenate([chunk, np.zeros(window - len(chunk), dtype=np.float32)])
        inp = np.concatenate([context, chunk[np.newaxis, :]], axis=1)
        out, state = session.run(None, {"input": inp, "state": state, "sr": sr})
        context = inp[:, -context_size:]
        p = float(out[0, 0])
        frm, to = pos, pos + window
        # The rules of the node's segmenter.
        if state_kind in ("silence", "candidate"):
            if state_kind == "candidate" and p >= NEG_THRESHOLD:
                s = start
            elif state_kind == "silence" and p >= THRESHOLD:
                s = frm
            else:
                state_kind = "silence"
                continue
            if to - s >= min_speech:
                state_kind, start, quiet_since = "speech", max(s - pad, last_end), None
            else:
                state_kind, start = "candidate", s
        else:
            if p >= THRESHOLD:
                quiet_since = None
            elif p < NEG_THRESHOLD and quiet_since is None:
                quiet_since = frm
            if quiet_since is not None and to - quiet_since >= max(min_silence, pad):
                end = quiet_since + pad
                segments.append((start, end))
                last_end, state_kind = end, "silence"
    if state_kind == "speech":
        end = n if quiet_since is None else min(n, quiet_since + pad)
        segments.append((start, end))
    for k, (a, b) in enumerate(segments):
        sf.write(os.path.join(outdir, f"utterance-{k:04d}.wav"), y[a : min(b, n)], RATE_OUT, subtype="PCM_16")
    return len(segments)


def timed(cmd: List[str], cwd: Path, runs: int) -> Dict[str, Any]:
    """Median wall time and peak RSS of `cmd` over `runs` runs (by peak_rss.py)."""
    walls, peaks = [], []
    for _ in range(runs):
        for f in cwd.glob("utterance-*.wav"):
            f.unlink()
        res = subprocess.run([sys.executable, str(HERE / "peak_rss.py"), "--", *cmd], cwd=cwd, capture_output=True, text=True)
        r = json.loads(res.stdout.strip().splitlines()[-1]) if res.stdout.strip() else {}
        if res.returncode != 0 or r.get("exit_code") != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed: {res.stderr.strip()[-500:]}")
        walls.append(r["seconds"])
        peaks.append(r["peak_rss_bytes"])
    return {
        "median_s": statistics.median(walls),
        "min_s": min(walls),
        "runs": runs,
        "peak_rss_bytes": max(peaks),
        "utterances": len(list(cwd.glob("utterance-*.wav"))),
    }


def utterance_spans(d: Path) -> List[int]:
    import soundfile as sf

    return [sf.info(str(f)).frames for f in sorted(d.glob("utterance-*.wav"))]


def whole_pipeline(cli: str, work: Path, minutes: float, runs: int) -> Dict[str, Any]:
    src = make_fixture(work, minutes)
    import soundfile as sf

    info = sf.info(str(src))
    out: Dict[str, Any] = {"input": f"{info.duration / 60:.1f} min ({info.duration:.0f} s), {info.samplerate} Hz, {info.channels} ch, 16-bit WAV (espeak-ng speech with silences)"}
    manifest = work / "pipeline.yaml"
    manifest.write_text(PIPELINE)
    ours_dir, py_dir = work / "ours", work / "python"
    ours_dir.mkdir()
    py_dir.mkdir()
    out["remotemedia"] = timed([cli, "run", str(manifest), "--input", str(src), "--no-progress"], ours_dir, runs)
    out["python"] = timed([sys.executable, str(Path(__file__).resolve()), "--python-pipeline", str(src), str(py_dir)], py_dir, runs)
    a, b = utterance_spans(ours_dir), utterance_spans(py_dir)
    out["utterances_equal_length"] = sum(1 for x, y in zip(a, b) if x == y)
    out["speedup"] = out["python"]["median_s"] / out["remotemedia"]["median_s"]
    shutil.rmtree(ours_dir)
    shutil.rmtree(py_dir)
    src.unlink()
    return out


def example(examples: Optional[Path], name: str, env: Dict[str, str]) -> Dict[str, Any]:
    if examples is None or not (examples / name).is_file():
        return {"status": f"not measured: no {name} binary (cargo build --release -p remotemedia-speech --examples; pass --examples target/release/examples)"}
    res = subprocess.run([str(examples / name), "--json"], capture_output=True, text=True, env=env)
    if res.returncode != 0:
        return {"status": f"not measured: {name} failed: {res.stderr.strip()[-300:]}"}
    return json.loads(res.stdout.strip().splitlines()[-1])


def markdown(r: Dict[str, Any]) -> str:
    lines: List[str] = []
    wp = r.get("whole_pipeline", {})
    if "status" in wp:
        lines += [f"Whole pipeline: {wp['status']}", ""]
    elif wp:
        o, p = wp["remotemedia"], wp["python"]
        lines += [
            f"Input: {wp['input']} → mono → 16 kHz → Silero VAD segments → one WAV per utterance. "
            f"Each side a process of its own, timed start to exit (model loading included), median of {o['runs']} runs.",
            "",
            "| | wall time | peak RSS | utterances |",
            "|---|---:|---:|---:|",
            f"| `remotemedia run` (AudioChannels → AudioResample high → VoiceActivity → MediaWriter) | {o['median_s']:.2f} s | {o['peak_rss_bytes'] / 2**20:.1f} MiB | {o['utterances']} |",
            f"| Python: soundfile + numpy + soxr HQ + onnxruntime (1 thread) + soundfile | {p['median_s']:.2f} s | {p['peak_rss_bytes'] / 2**20:.1f} MiB | {p['utterances']} |",
            "",
            f"remotemedia is {wp['speedup']:.2f}× faster (target ≥ 1.5×); {wp['utterances_equal_length']} of the utterances have the same length on both sides.",
            "",
        ]
    sp = r.get("vad_speed", {})
    if "status" in sp:
        lines += [f"Model speed: {sp['status']}", ""]
    elif sp:
        u = sp["us_per_window"]
        w = sp["windows_per_s"]
        ort_call = u.get("remotemedia_model_onnxruntime")
        ort_w = sp.get("onnxruntime_windows_per_s")
        lines += [
            f"One stream, µs per {sp['window_samples']}-sample window: model call {u['remotemedia_model']:.1f} (the Rust runtime), whole node {u['remotemedia_node']:.1f}, "
            + (f"the same call on ONNX Runtime in the same process {ort_call:.1f}; " if ort_call else "")
            + f"Python onnxruntime {sp.get('python_onnxruntime_version', '?')} {u['python_onnxruntime']:.1f}: ours {sp['speedup_vs_python']:.2f}× faster (target ≥ 1.3×; "
            f"max probability difference {sp['max_probability_difference']:.1e}).",
            "",
            f"{sp['streams']} streams, one thread, windows per second: Rust runtime {w['unbatched']:.0f} one call per stream, {w['batched']:.0f} batched ({sp['batched_speedup']:.2f}×)"
            + (
                f"; ONNX Runtime {ort_w['unbatched']:.0f} one call per stream, {ort_w['batched']:.0f} batched ({sp['onnxruntime_batched_speedup']:.2f}×). "
                f"The Rust runtime batched does {sp['batched_vs_onnxruntime_unbatched']:.2f}× the windows of ONNX Runtime called per stream (target ≥ 2×); "
                "batching gains less in Rust because a call there has no fixed cost to share, only the weights' loads."
                if ort_w
                else "."
            ),
            "",
        ]
    mem = r.get("vad_memory", {})
    if "status" in mem:
        lines += [f"Memory per stream: {mem['status']}", ""]
    elif mem:
        lines += [
            f"Memory per additional stream: {mem['bytes_per_additional_stream'] / 1024:.1f} KiB sharing the model ({mem['streams']} streams), "
            f"{mem['bytes_per_stream_with_own_session'] / 2**20:.1f} MiB with a session per stream.",
            "",
        ]
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["--python-pipeline"]:
        if len(argv) != 3:
            sys.exit("usage: benchmark_speech.py --python-pipeline IN.wav OUTDIR")
        python_pipeline(argv[1], argv[2])
        return 0
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cli", required=True, help="the remotemedia binary (release build)")
    ap.add_argument("--quick", action="store_true", help="a 1-minute file, fewer runs")
    ap.add_argument("--json", metavar="FILE")
    ap.add_argument("--markdown", metavar="FILE")
    ap.add_argument("--workdir", metavar="DIR")
    ap.add_argument("--examples", metavar="DIR", help="where vad_speed and vad_memory are (default: examples/ next to --cli)")
    args = ap.parse_args(argv)
    cli = str(Path(args.cli).resolve())
    examples = Path(args.examples) if args.examples else Path(cli).parent / "examples"
    # The speech crate finds the model through this interpreter, like the Python side.
    env = dict(os.environ)
    env.setdefault("REMOTEMEDIA_VAD_PYTHON", sys.executable)
    os.environ.update(env)
    result: Dict[str, Any] = {}
    missing = missing_requirements()
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        work = Path(tmp)
        minutes, runs = (1.0, 3) if args.quick else (10.0, 3)
        parts = [
            ("whole_pipeline", lambda: {"status": missing} if missing else whole_pipeline(cli, work, minutes, runs)),
            ("vad_speed", lambda: example(examples, "vad_speed", env)),
            ("vad_memory", lambda: example(examples, "vad_memory", env)),
        ]
        for key, fn in parts:
            try:
                result[key] = fn()
            except Exception as e:  # one failed part leaves the others measured
                result[key] = {"status": f"not measured: {e}"}
            print(key, json.dumps(result[key]), flush=True)
    text = json.dumps(result, indent=2)
    if args.json:
        Path(args.json).write_text(text + "\n")
    if args.markdown:
        Path(args.markdown).write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
