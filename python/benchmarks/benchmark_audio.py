#!/usr/bin/env python3
"""Audio benchmarks of the `remotemedia` CLI against its peers, side by side in one run.

    python benchmark_audio.py --cli target/release/remotemedia [--quick] [--json FILE]
                              [--markdown FILE] [--workdir DIR]

What it measures (equal work on every side, medians of repeated runs):

* **File pipeline**: a 10-minute 48 kHz stereo 16-bit WAV → mono → 16 kHz → 16-bit
  WAV, by ``remotemedia run`` (``AudioChannels`` → ``AudioResample`` at ``high``), by
  ``sox -D in.wav -r 16000 -c 1 out.wav`` (sox's default ``rate`` quality, high; ``-D``:
  no dither, as the others do not dither; the plain command, which dithers, is timed
  too) and by Python (soundfile + numpy mean + soxr HQ + soundfile). Each is a process
  of its own, timed start to exit, the contenders taking turns. Wall time, ratios, and
  the quality each reaches on a 1 kHz sine (SNR against the analytic sine).
* **Live pacing**: ``remotemedia run --realtime`` over a 10 s file through a 4-node
  chain that holds no audio back (AudioChannels → AudioGain → AudioLimiter →
  AudioLevel per chunk); the latency each output adds beyond the pacing (p50 / p99).
* **Memory**: peak RSS of ``remotemedia run`` on a 1-minute and a 1-hour file (same
  pipeline), medians of 3 runs taking turns: streaming means the two stay close.

Needs numpy, soundfile and soxr (``pip install numpy soundfile soxr``) and the ``sox``
program; what is missing is reported as "not measured" with the reason.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

RATE_IN = 48_000
RATE_OUT = 16_000

PIPELINE = """version: v1
metadata: { name: downmix-resample }
nodes:
  - { id: mono, node_type: AudioChannels, params: { channels: 1 } }
  - { id: resample, node_type: AudioResample, params: { target_rate: 16000, quality: high } }
connections: [ { from: mono, to: resample } ]
"""

# Nodes that hold no audio back, so that what is measured is the runtime's own delay
# (a resampler's filter delay is a property of the filter: see BENCHMARKS.md's
# resampling section).
LIVE = """version: v1
metadata: { name: live-chain }
nodes:
  - { id: mono, node_type: AudioChannels, params: { channels: 1 } }
  - { id: gain, node_type: AudioGain, params: { db: -3 } }
  - { id: limit, node_type: AudioLimiter, params: { threshold_db: -1 } }
  - { id: level, node_type: AudioLevel }
connections:
  - { from: mono, to: gain }
  - { from: gain, to: limit }
  - { from: limit, to: level }
"""


def need_python_peers() -> Optional[str]:
    missing = []
    for mod in ("numpy", "soundfile", "soxr"):
        try:
            __import__(mod)
        except ImportError:
            missing.append(mod)
    if missing:
        return "not measured: missing Python packages " + ", ".join(missing)
    return None


def write_wav(path: Path, seconds: float, rate: int, channels: int, kind: str = "music") -> None:
    """A deterministic test file: a 1 kHz sine (kind="sine") or sines plus noise."""
    import numpy as np
    import soundfile as sf

    frames = int(seconds * rate)
    block = rate * 10  # write in blocks: a one-hour file never sits in memory here either
    rng = np.random.default_rng(7)
    with sf.SoundFile(str(path), "w", samplerate=rate, channels=channels, subtype="PCM_16") as f:
        for start in range(0, frames, block):
            n = min(block, frames - start)
            t = (start + np.arange(n)) / rate
            if kind == "sine":
                x = 0.5 * np.sin(2 * np.pi * 1000.0 * t)
            else:
                x = 0.3 * np.sin(2 * np.pi * 440.0 * t) + 0.2 * np.sin(2 * np.pi * 3100.0 * t)
                x = x + 0.02 * rng.standard_normal(n)
            data = np.repeat(x[:, None], channels, axis=1)
            if channels > 1:
                data[:, 1] *= 0.8
            f.write(data.astype(np.float32))


def median_time(fn: Callable[[], None], runs: int) -> Dict[str, float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return {"median_s": statistics.median(times), "runs": runs, "min_s": min(times)}


def run_checked(cmd: List[str]) -> None:
    out = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({out.returncode}): {out.stderr.strip()[-500:]}")


def sine_snr_db(path: Path) -> float:
    """SNR of a 16 kHz mono file against the analytic 1 kHz sine at the best-fitting
    amplitude and phase (least squares), edges (50 ms) excluded."""
    import numpy as np
    import soundfile as sf

    y, rate = sf.read(str(path), dtype="float64")
    if y.ndim > 1:
        y = y.mean(axis=1)
    edge = rate // 20
    y = y[edge:-edge]
    t = (edge + np.arange(len(y))) / rate
    basis = np.stack([np.sin(2 * np.pi * 1000 * t), np.cos(2 * np.pi * 1000 * t)], axis=1)
    coef, *_ = np.linalg.lstsq(basis, y, rcond=None)
    err = y - basis @ coef
    return float(10 * np.log10(np.sum((basis @ coef) ** 2) / max(np.sum(err**2), 1e-30)))


def python_pipeline(src: Path, dst: Path) -> None:
    import numpy as np
    import soundfile as sf
    import soxr

    x, rate = sf.read(str(src), dtype="float32")
    mono = x.mean(axis=1, dtype=np.float32)
    y = soxr.resample(mono, rate, RATE_OUT, quality="HQ")
    sf.write(str(dst), y, RATE_OUT, subtype="PCM_16")


def file_commands(cli: str, manifest: Path, src: Path, work: Path, tag: str) -> Dict[str, List[str]]:
    """The competing commands, each a process of its own reading `src` and writing a
    16-bit mono 16 kHz WAV. sox gets `-D` (no dither: the others do not dither) beside the
    plain command, which dithers when it reduces the bit depth."""
    cmds = {
        "remotemedia": [cli, "run", str(manifest), "--input", str(src), "--output", str(work / f"{tag}ours.wav"), "--no-progress"],
        "python": [sys.executable, __file__, "--python-pipeline", str(src), str(work / f"{tag}py.wav")],
    }
    if shutil.which("sox"):
        cmds["sox"] = ["sox", "-D", str(src), "-r", str(RATE_OUT), "-c", "1", str(work / f"{tag}sox.wav")]
        cmds["sox_dither"] = ["sox", str(src), "-r", str(RATE_OUT), "-c", "1", str(work / f"{tag}soxd.wav")]
    return cmds


def file_pipeline(cli: str, work: Path, minutes: float, runs: int) -> Dict[str, Any]:
    src = work / "in.wav"
    write_wav(src, minutes * 60, RATE_IN, 2)
    manifest = work / "pipeline.yaml"
    manifest.write_text(PIPELINE)
    out: Dict[str, Any] = {"input": f"{minutes:g} min, {RATE_IN} Hz stereo, 16-bit WAV"}
    cmds = file_commands(cli, manifest, src, work, "")
    # The contenders take turns, run after run, so that a change in the machine's load
    # falls on all of them alike.
    times: Dict[str, List[float]] = {k: [] for k in cmds}
    for _ in range(runs):
        for key, cmd in cmds.items():
            start = time.perf_counter()
            run_checked(cmd)
            times[key].append(time.perf_counter() - start)
    for key, t in times.items():
        out[key] = {"median_s": statistics.median(t), "runs": runs, "min_s": min(t)}
    if "sox" not in cmds:
        out["sox"] = {"status": "not measured: sox is not installed"}
    # Quality of each on a sine through the same commands.
    sine = work / "sine.wav"
    write_wav(sine, 10, RATE_IN, 2, kind="sine")
    quality = {}
    names = {"remotemedia": "q_ours.wav", "python": "q_py.wav", "sox": "q_sox.wav", "sox_dither": "q_soxd.wav"}
    for key, cmd in file_commands(cli, manifest, sine, work, "q_").items():
        run_checked(cmd)
        quality[key] = sine_snr_db(work / names[key])
    out["sine_snr_db"] = quality
    for f in ("ours.wav", "sox.wav", "soxd.wav", "py.wav", "in.wav"):
        (work / f).unlink(missing_ok=True)
    return out


def live_latency(cli: str, work: Path, seconds: float) -> Dict[str, Any]:
    src = work / "live.wav"
    write_wav(src, seconds, RATE_IN, 2)
    manifest = work / "live.yaml"
    manifest.write_text(LIVE)
    metrics = work / "live-metrics.json"
    start = time.perf_counter()
    run_checked([cli, "run", str(manifest), "--input", str(src), "--realtime", "--metrics", str(metrics), "--output", os.devnull, "--no-progress"])
    wall = time.perf_counter() - start
    m = json.loads(metrics.read_text())
    return {"input_s": seconds, "wall_s": wall, "latency_us": m["realtime_latency_us"]}


def memory(cli: str, work: Path, quick: bool) -> Dict[str, Any]:
    """Peak RSS of the same command on a short and a long file.

    A process's peak RSS also counts the pages of the binary it touched, which the
    kernel maps more or fewer of at a time depending on what the page cache holds; one
    run of each can therefore differ by a few MiB for reasons unrelated to the file's
    length. So both files are written first, the command runs once untimed (to settle
    the page cache), then the two take turns and the median of each is reported.
    """
    manifest = work / "pipeline.yaml"
    manifest.write_text(PIPELINE)
    here = Path(__file__).resolve().parent
    sizes = (60.0, 600.0 if quick else 3600.0)
    files = {}
    for seconds in sizes:
        files[seconds] = work / f"mem-{seconds:g}.wav"
        write_wav(files[seconds], seconds, RATE_IN, 2)

    def once(src: Path) -> Dict[str, Any]:
        res = subprocess.run(
            [sys.executable, str(here / "peak_rss.py"), "--", cli, "run", str(manifest), "--input", str(src), "--output", str(work / "mem-out.wav"), "--no-progress"],
            capture_output=True,
            text=True,
        )
        (work / "mem-out.wav").unlink(missing_ok=True)
        if res.returncode != 0:
            return {"status": f"not measured: {res.stderr.strip()[-300:]}"}
        return json.loads(res.stdout.strip().splitlines()[-1])

    once(files[sizes[0]])
    runs: Dict[float, List[Dict[str, Any]]] = {s: [] for s in sizes}
    for _ in range(3):
        for seconds in sizes:
            runs[seconds].append(once(files[seconds]))
    out: Dict[str, Any] = {}
    for seconds in sizes:
        label = f"{seconds / 60:g} min"
        failed = [r for r in runs[seconds] if "status" in r]
        if failed:
            out[label] = failed[0]
        else:
            out[label] = {
                "seconds_of_audio": seconds,
                "peak_rss_bytes": statistics.median(r["peak_rss_bytes"] for r in runs[seconds]),
                "wall_s": statistics.median(r["seconds"] for r in runs[seconds]),
                "runs_peak_rss_bytes": [r["peak_rss_bytes"] for r in runs[seconds]],
            }
        files[seconds].unlink(missing_ok=True)
    return out


def markdown(r: Dict[str, Any]) -> str:
    lines = []
    fp = r.get("file_pipeline", {})
    if "status" in fp:
        lines += [f"File pipeline: {fp['status']}", ""]
    else:
        lines += [
            f"Input: {fp['input']} → mono 16 kHz 16-bit WAV. Medians of {fp['remotemedia']['runs']} runs; "
            "quality: SNR of a 1 kHz sine through the same steps, against the analytic sine.",
            "",
            "| | wall time | remotemedia is | 1 kHz sine SNR |",
            "|---|---:|---:|---:|",
        ]
        ours = fp["remotemedia"]["median_s"]
        q = fp.get("sine_snr_db", {})
        for key, label in (("remotemedia", "`remotemedia run` (AudioChannels → AudioResample high)"), ("sox", "`sox -D in.wav -r 16000 -c 1 out.wav`"), ("sox_dither", "`sox in.wav -r 16000 -c 1 out.wav` (dithers)"), ("python", "Python: soundfile + numpy + soxr HQ")):
            v = fp.get(key, {})
            if "median_s" not in v:
                lines.append(f"| {label} | {v.get('status', 'not measured')} | | |")
                continue
            ratio = "—" if key == "remotemedia" else f"{v['median_s'] / ours:.2f}× faster"
            snr = f"{q[key]:.1f} dB" if key in q else ""
            lines.append(f"| {label} | {v['median_s']:.3f} s | {ratio} | {snr} |")
        lines.append("")
    live = r.get("live", {})
    if "status" in live:
        lines += [f"Live pacing: {live['status']}", ""]
    elif live:
        lat = live.get("latency_us") or {}
        lines += [
            f"`--realtime` over a {live['input_s']:g} s file through 4 nodes (AudioChannels → AudioGain → AudioLimiter → AudioLevel per 20 ms chunk): "
            f"wall {live['wall_s']:.2f} s; added latency per output beyond the pacing "
            f"p50 {lat.get('p50', 'n/a')} µs, p99 {lat.get('p99', 'n/a')} µs, max {lat.get('max', 'n/a')} µs "
            f"over {lat.get('items', 0)} outputs (target p99 ≤ 1000 µs).",
            "",
        ]
    mem = r.get("memory", {})
    if mem:
        lines += ["| peak RSS of `remotemedia run` (same pipeline) | audio | peak RSS |", "|---|---:|---:|"]
        for label, v in mem.items():
            if "peak_rss_bytes" in v:
                lines.append(f"| {label} file | {v['seconds_of_audio']:g} s | {v['peak_rss_bytes'] / 2**20:.1f} MiB |")
            else:
                lines.append(f"| {label} file | | {v.get('status')} |")
        vals = [v["peak_rss_bytes"] for v in mem.values() if "peak_rss_bytes" in v]
        if len(vals) == 2:
            lines += ["", f"The long file's peak is {100 * (vals[1] / vals[0] - 1):+.1f}% of the short one's (target within 10%)."]
        lines.append("")
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cli", help="the remotemedia binary (release build)")
    ap.add_argument("--quick", action="store_true", help="shorter files, fewer runs")
    ap.add_argument("--json", metavar="FILE")
    ap.add_argument("--markdown", metavar="FILE")
    ap.add_argument("--workdir", metavar="DIR")
    ap.add_argument("--python-pipeline", nargs=2, metavar=("IN", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.python_pipeline:
        python_pipeline(Path(args.python_pipeline[0]), Path(args.python_pipeline[1]))
        return 0
    if not args.cli:
        ap.error("--cli is required")
    result: Dict[str, Any] = {}
    missing = need_python_peers()
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        work = Path(tmp)
        if missing:
            result["file_pipeline"] = {"status": missing}
            result["live"] = {"status": missing}
        else:
            minutes, runs = (1.0, 3) if args.quick else (10.0, 5)
            for key, fn in (
                ("file_pipeline", lambda: file_pipeline(args.cli, work, minutes, runs)),
                ("live", lambda: live_latency(args.cli, work, 3.0 if args.quick else 10.0)),
                ("memory", lambda: memory(args.cli, work, args.quick)),
            ):
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
