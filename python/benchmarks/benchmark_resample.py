#!/usr/bin/env python3
"""Resampling speed and quality: remotemedia's resampler against python-soxr and
``scipy.signal.resample_poly``.

The same work for every contender: an in-memory ``float32`` array of 10 minutes of
48 kHz mono audio (a sum of sines and noise, deterministic) becomes an in-memory array
at 16 kHz. remotemedia's side is the ``resample_file`` example of
``crates/remotemedia-audio`` (built in release mode): it reads the raw samples from a
file, then times only the array-to-array resampling (making the resampler, allocating
the output, processing and flushing); file reading and writing are outside its timing. python-soxr and ``resample_poly`` are timed around the
call. The contenders take turns, ``RUNS`` rounds; each reports its median wall time and
its median thread CPU time (which other load on the machine does not stretch).

``resample_poly`` runs twice: with its default filter (a short Kaiser window, fast and
far less exact) and with a Kaiser filter designed to the others' quality.

Quality for each: the SNR of a 1 kHz sine (amplitude 0.5, 2 s) against the analytic
sine, the attenuation of a 12 kHz tone (above the new Nyquist frequency; the output's
RMS against the input's) and the gain at 7.2 kHz (0.9 × the new Nyquist frequency: how
far the passband reaches), all without the first and last 200 ms, where the filters
ring on the abrupt start and end. python-soxr runs at each of its levels from LQ up, so
that each of ours can be set beside the one of equal quality.

Needs numpy, scipy and soxr (``pip install numpy scipy soxr``) and cargo to build the
example (or ``--binary`` pointing to a built one). Prints JSON, then a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List

REPO = Path(__file__).resolve().parents[2]
QUALITIES = ["low", "medium", "high", "best"]
EDGE_S = 0.2


def need_modules() -> Any:
    """numpy, scipy.signal and soxr, or exit with a message saying what to install."""
    missing = []
    mods: Dict[str, Any] = {}
    for name in ("numpy", "scipy.signal", "soxr"):
        try:
            mods[name] = __import__(name, fromlist=["_"])
        except ImportError:
            missing.append(name.split(".")[0])
    if missing:
        sys.exit(
            f"benchmark_resample.py needs {', '.join(missing)}: "
            f"pip install {' '.join(missing)} (for example in a venv)"
        )
    return mods["numpy"], mods["scipy.signal"], mods["soxr"]


def find_binary(given: str | None) -> Path:
    """The ``resample_file`` example, built in release mode when not given."""
    if given:
        return Path(given)
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    cmd = ["cargo", "build", "--release", "-q", "-p", "remotemedia-audio", "--example", "resample_file"]
    try:
        subprocess.run(cmd, cwd=REPO, check=True)
    except (OSError, subprocess.CalledProcessError) as e:
        sys.exit(f"cannot build the resample_file example ({' '.join(cmd)}): {e}")
    return target / "release" / "examples" / "resample_file"


def signal(np: Any, rate: int, seconds: float) -> Any:
    """A sum of sines and a little noise, the same on every run."""
    t = np.arange(int(rate * seconds)) / rate
    noise = np.random.default_rng(7).uniform(-0.005, 0.005, t.size)
    x = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 1000 * t)
    x += 0.1 * np.sin(2 * np.pi * 12_000 * t) + noise
    return x.astype(np.float32)


def tone(np: Any, rate: int, freq: float, seconds: float = 2.0) -> Any:
    return (0.5 * np.sin(2 * np.pi * freq * np.arange(int(rate * seconds)) / rate)).astype(np.float32)


def inner(y: Any, rate: int) -> Any:
    edge = int(EDGE_S * rate)
    return y[edge : len(y) - edge]


def snr_db(np: Any, y: Any, rate: int) -> float:
    edge = int(EDGE_S * rate)
    y = np.asarray(y, dtype=np.float64)
    want = 0.5 * np.sin(2 * np.pi * 1000 * np.arange(len(y)) / rate)
    n = min(len(y), len(want)) - edge
    err = y[edge:n] - want[edge:n]
    return float(10 * np.log10(np.sum(want[edge:n] ** 2) / np.sum(err**2)))


def stopband_db(np: Any, x: Any, y: Any, rate_in: int, rate_out: int) -> float:
    rms = lambda v: float(np.sqrt(np.mean(np.asarray(v, dtype=np.float64) ** 2)))  # noqa: E731
    out = rms(inner(y, rate_out))
    return float("inf") if out == 0 else 20 * np.log10(rms(inner(x, rate_in)) / out)


class Ours:
    """The remotemedia resampler through the ``resample_file`` example."""

    def __init__(self, np: Any, binary: Path, rate_in: int, rate_out: int, tmp: Path) -> None:
        self.np, self.binary, self.rate_in, self.rate_out, self.tmp = np, binary, rate_in, rate_out, tmp

    def run(self, x: Any, quality: str, runs: int) -> tuple[Any, List[tuple[float, float]]]:
        src, dst = self.tmp / "in.f32", self.tmp / "out.f32"
        x.astype("<f4").tofile(src)
        cmd = [str(self.binary), str(self.rate_in), str(self.rate_out), "1", quality, str(runs), str(src), str(dst)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        got = json.loads(out)
        return self.np.fromfile(dst, dtype="<f4"), list(zip(got["times_s"], got["cpu_s"]))


def timed(fn: Callable[[], Any]) -> tuple[Any, tuple[float, float]]:
    """The result of ``fn`` and how long it took: wall and thread CPU seconds."""
    start, cpu = time.perf_counter(), time.thread_time()
    y = fn()
    return y, (time.perf_counter() - start, time.thread_time() - cpu)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5, help="timed runs per contender (median reported)")
    ap.add_argument("--minutes", type=float, default=10.0, help="length of the benchmark signal")
    ap.add_argument("--rate-in", type=int, default=48_000)
    ap.add_argument("--rate-out", type=int, default=16_000)
    ap.add_argument("--binary", help="a built resample_file example (default: build it with cargo)")
    ap.add_argument("--json", metavar="FILE", help="also write the JSON result here")
    args = ap.parse_args()
    np, sps, soxr = need_modules()
    binary = find_binary(args.binary)
    rin, rout = args.rate_in, args.rate_out
    from math import gcd

    up, down = rout // gcd(rin, rout), rin // gcd(rin, rout)
    x = signal(np, rin, args.minutes * 60)
    sine, high = tone(np, rin, 1000.0), tone(np, rin, 12_000.0)
    edge_tone = tone(np, rin, 0.9 * rout / 2)

    # The contenders take turns, run after run, so that a change in the machine's load
    # falls on all of them alike.
    runners: Dict[str, Callable[[Any], tuple[Any, tuple[float, float]]]] = {}
    with tempfile.TemporaryDirectory() as d:
        ours = Ours(np, binary, rin, rout, Path(d))
        for q in QUALITIES:
            runners[f"remotemedia {q}"] = lambda v, q=q: (lambda r: (r[0], r[1][0]))(ours.run(v, q, 1))
        for q in ("LQ", "MQ", "HQ", "VHQ"):
            runners[f"soxr {q}"] = lambda v, q=q: timed(lambda: soxr.resample(v, rin, rout, quality=q))
        runners["scipy resample_poly"] = lambda v: timed(lambda: sps.resample_poly(v, up, down))
        # resample_poly with a filter meant for the quality of the others: flat up to
        # 0.9 x the new Nyquist frequency, 100 dB down from 1.1 x on (Kaiser design).
        width = 0.2 / max(up, down)
        taps, beta = sps.kaiserord(100.0, width)
        taps |= 1
        h = sps.firwin(taps, 1.0 / max(up, down), window=("kaiser", beta))
        matched = f"scipy resample_poly, Kaiser {taps} taps"
        runners[matched] = lambda v: timed(lambda: sps.resample_poly(v, up, down, window=h))
        rows: List[Dict[str, Any]] = [{"name": n, "times_s": [], "cpu_s": []} for n in runners]
        for _ in range(args.runs):
            for row in rows:
                wall, cpu = runners[row["name"]](x)[1]
                row["times_s"].append(wall)
                row["cpu_s"].append(cpu)
        for row in rows:
            row["y_sine"] = runners[row["name"]](sine)[0]
            row["y_high"] = runners[row["name"]](high)[0]
            row["y_edge"] = runners[row["name"]](edge_tone)[0]

    report = []
    for r in rows:
        report.append(
            {
                "name": r["name"],
                "median_s": statistics.median(r["times_s"]),
                "median_cpu_s": statistics.median(r["cpu_s"]),
                "times_s": [round(t, 6) for t in r["times_s"]],
                "snr_1khz_db": round(snr_db(np, r["y_sine"], rout), 1),
                "stopband_12khz_db": round(stopband_db(np, high, r["y_high"], rin, rout), 1),
                # A gain, so the attenuation turned around.
                "gain_0_9_nyquist_db": round(-stopband_db(np, edge_tone, r["y_edge"], rin, rout), 2),
            }
        )
    poly = next(r for r in report if r["name"] == "scipy resample_poly")
    poly_s, poly_cpu = poly["median_s"], poly["median_cpu_s"]
    for r in report:
        r["speedup_vs_resample_poly"] = round(poly_s / r["median_s"], 2)
        r["cpu_speedup_vs_resample_poly"] = round(poly_cpu / r["median_cpu_s"], 2)
    meta = {
        "signal": f"{args.minutes:g} min, {rin} Hz mono float32 -> {rout} Hz",
        "runs": args.runs,
        "edges_skipped_s": EDGE_S,
        "numpy": np.__version__,
        "soxr": getattr(soxr, "__version__", "?"),
    }
    text = json.dumps({"meta": meta, "results": report}, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    print()
    print(
        f"| resampler ({meta['signal']}) | median wall | vs resample_poly | median CPU "
        "| vs resample_poly | SNR 1 kHz | 12 kHz attenuation | gain at 0.9 × new Nyquist |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in report:
        print(
            f"| {r['name']} | {r['median_s'] * 1000:.1f} ms | {r['speedup_vs_resample_poly']:.2f}x "
            f"| {r['median_cpu_s'] * 1000:.1f} ms | {r['cpu_speedup_vs_resample_poly']:.2f}x "
            f"| {r['snr_1khz_db']:.1f} dB | {r['stopband_12khz_db']:.1f} dB | {r['gain_0_9_nyquist_db']:+.2f} dB |"
        )


if __name__ == "__main__":
    main()
