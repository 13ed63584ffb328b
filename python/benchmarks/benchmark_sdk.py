#!/usr/bin/env python3
"""The ``pipeline_execution`` cases through the installed ``remotemedia`` Python SDK.

Two paths, each timed like ``benchmark_simple.py`` (warm-up, then the median of single
iterations; inputs built before and results released after the timing):

* ``run_manifest``: the extension's ``run_manifest(manifest_text, items)``. Every call
  also parses and validates the manifest and converts the items from and to Python
  objects, work the pure-Python baseline and the Rust benchmark do outside the timing;
* ``Pipeline.run``: ``Pipeline([...nodes]).run(items)`` awaited on an event loop that
  is created once; each iteration builds the ``Pipeline`` object;
* ``use_rust``: the simple chain of built-in node classes through ``Pipeline.run`` with
  ``use_rust=True`` (Rust core, conversion across the boundary included) and
  ``use_rust=False`` (the SDK's pure-Python executor), N = 100 and 10,000;
* ``small_runs``: the per-request runs a service makes, side by side in this process:
  the plain Python loop of ``benchmark_simple.py`` (its three node objects built from
  the validated manifest each iteration, then the lifecycle and every item through
  them), one ``Pipeline`` object run again and again through ``run_until_complete``
  (what a synchronous caller pays, the event loop's own cost included), the same
  awaited inside a running event loop (what an asyncio service pays), and a new
  ``Pipeline`` object per run.

When ``remotemedia`` cannot be imported (or has no compiled extension) nothing is
measured and the JSON says why.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import benchmark_simple as base

NOT_INSTALLED = "not measured: SDK not installed"


def load_sdk() -> Tuple[Optional[Any], Optional[Any], str]:
    """The ``remotemedia`` package and its extension, or why they are unusable."""
    try:
        import remotemedia  # noqa: PLC0415
    except ImportError:
        return None, None, NOT_INSTALLED
    try:
        from remotemedia import _remotemedia  # noqa: PLC0415
    except ImportError:
        return remotemedia, None, "not measured: SDK installed without its compiled extension"
    return remotemedia, _remotemedia, "ok"


def manifest_cases(ext: Any) -> List[Tuple[str, Callable[[Any], Any], Callable[[], Any], int]]:
    simple = base.chain_manifest(3)
    complex_ = base.chain_manifest(10)
    fan = base.fan_manifest()

    def run(text: str) -> Callable[[List[Any]], List[Any]]:
        def go(items: List[Any]) -> List[Any]:
            report = ext.run_manifest(text, items)
            if report.get("error"):
                raise RuntimeError(report["error"])
            return report["outputs"]

        return go

    def ints(n: int) -> Callable[[], List[int]]:
        return lambda: list(range(n))

    checks = [
        (run(simple)(list(range(100))), [i + 1 for i in range(100)]),
        (run(complex_)(list(range(100))), [i + 5 for i in range(100)]),
        (run(fan)(list(range(10))), [{"b": i + 1, "c": i * 2} for i in range(10)]),
    ]
    for got, want in checks:
        if got != want:
            raise RuntimeError(f"unexpected outputs from run_manifest: {got[:3]!r}…")
    return [
        ("simple_100", run(simple), ints(100), 100),
        ("complex_100", run(complex_), ints(100), 100),
        ("scaling/10", run(simple), ints(10), 10),
        ("scaling/100", run(simple), ints(100), 100),
        ("scaling/1000", run(simple), ints(1000), 1000),
        ("fan_out_fan_in_1000", run(fan), ints(1000), 1000),
    ]


def pipeline_cases(rm: Any) -> List[Tuple[str, Callable[[Any], Any], Callable[[], Any], int]]:
    loop = asyncio.new_event_loop()

    def chain(length: int) -> List[Any]:
        return [
            rm.PassThroughNode() if i % 2 == 0 else rm.CalculatorNode(operation="add", operand=1)
            for i in range(length)
        ]

    def run(length: int) -> Callable[[List[Any]], List[Any]]:
        def go(items: List[Any]) -> List[Any]:
            return loop.run_until_complete(rm.Pipeline(chain(length)).run(items))

        return go

    if run(3)(list(range(100))) != [i + 1 for i in range(100)]:
        raise RuntimeError("unexpected outputs from Pipeline.run")
    return [
        ("simple_100", run(3), lambda: list(range(100)), 100),
        ("complex_100", run(10), lambda: list(range(100)), 100),
        ("scaling/1000", run(3), lambda: list(range(1000)), 1000),
    ]


def use_rust_cases(rm: Any) -> List[Tuple[str, Callable[[Any], Any], Callable[[], Any], int]]:
    """``await Pipeline(simple chain).run(list(range(N)))`` with ``use_rust`` on and off."""
    loop = asyncio.new_event_loop()

    def run(use_rust: bool) -> Callable[[List[Any]], List[Any]]:
        def go(items: List[Any]) -> List[Any]:
            nodes = [rm.PassThroughNode(), rm.CalculatorNode(operation="add", operand=1), rm.PassThroughNode()]
            return loop.run_until_complete(rm.Pipeline(nodes).run(items, use_rust=use_rust))

        return go

    for use_rust in (True, False):
        if run(use_rust)(list(range(100))) != [i + 1 for i in range(100)]:
            raise RuntimeError(f"unexpected outputs from Pipeline.run(use_rust={use_rust})")
    cases = []
    for n in USE_RUST_SIZES:
        for use_rust in (True, False):
            cases.append((f"simple_{n}/use_rust={use_rust}", run(use_rust), (lambda n=n: list(range(n))), n))
    return cases


USE_RUST_SIZES = (100, 10_000)


def small_run_cases(rm: Any) -> List[Tuple[str, Callable[[Any], Any], Callable[[], Any], int]]:
    """Small runs of the simple chain (100 items) against the plain Python loop."""
    loop = asyncio.new_event_loop()
    simple = base.Validated(base.chain_manifest(3))

    def nodes() -> List[Any]:
        return [rm.PassThroughNode(), rm.CalculatorNode(operation="add", operand=1), rm.PassThroughNode()]

    reused = rm.Pipeline(nodes())

    def plain_loop(items: List[Any]) -> List[Any]:
        return base.run(simple, items)

    def run_reused(items: List[Any]) -> List[Any]:
        return loop.run_until_complete(reused.run(items))

    def run_new(items: List[Any]) -> List[Any]:
        return loop.run_until_complete(rm.Pipeline(nodes()).run(items))

    def awaited_in_loop(items: List[Any]) -> List[Any]:
        # One await inside a running loop, timed by the coroutine itself (the loop's
        # hand-off into and out of the coroutine stays outside, as in a service).
        async def go() -> Tuple[int, List[Any]]:
            t0 = time.perf_counter_ns()
            out = await reused.run(items)
            return time.perf_counter_ns() - t0, out

        return loop.run_until_complete(go())

    want = [i + 1 for i in range(100)]
    for fn in (plain_loop, run_reused, run_new):
        if fn(list(range(100))) != want:
            raise RuntimeError(f"unexpected outputs from {fn.__name__}")
    if awaited_in_loop(list(range(100)))[1] != want:
        raise RuntimeError("unexpected outputs from an awaited Pipeline.run")
    return [
        ("simple_100/plain_python_loop", plain_loop, lambda: list(range(100)), 100),
        ("simple_100/Pipeline.run_reused", run_reused, lambda: list(range(100)), 100),
        ("simple_100/await_in_running_loop", awaited_in_loop, lambda: list(range(100)), 100),
        ("simple_100/Pipeline.run_new_object", run_new, lambda: list(range(100)), 100),
    ]


def measure_self_timed(fn: Callable[[Any], Tuple[int, Any]], setup: Callable[[], Any], warm: float,
                       meas: float, min_samples: int) -> Dict[str, Any]:
    """Like ``base.measure`` for a function that times itself (returns ``(ns, out)``)."""
    end = time.perf_counter() + warm
    while time.perf_counter() < end:
        fn(setup())
    samples: List[int] = []
    end = time.perf_counter() + meas
    while len(samples) < min_samples or time.perf_counter() < end:
        ns, out = fn(setup())
        samples.append(ns)
        del out
    return {
        "median_ns": statistics.median(samples),
        "mean_ns": statistics.fmean(samples),
        "min_ns": min(samples),
        "samples": len(samples),
    }


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", metavar="FILE", help="write results as JSON")
    parser.add_argument("--quick", action="store_true", help="short run")
    args = parser.parse_args(argv)

    rm, ext, status = load_sdk()
    doc: Dict[str, Any] = {"status": status, "groups": {}}
    if ext is not None:
        doc["version"] = getattr(rm, "__version__", None)
        warm, meas, min_samples = (0.3, 1.5, 200) if args.quick else (1.0, 5.0, 1000)
        groups = [
            ("run_manifest", lambda: manifest_cases(ext)),
            ("Pipeline.run", lambda: pipeline_cases(rm)),
            ("use_rust", lambda: use_rust_cases(rm)),
            ("small_runs", lambda: small_run_cases(rm)),
        ]
        for group, make in groups:
            try:
                cases = make()
            except Exception as e:  # an SDK in flux: report, do not fail the run
                doc["groups"][group] = {"status": f"not measured: {type(e).__name__}: {e}"}
                continue
            results: Dict[str, Any] = {}
            for name, fn, setup, items in cases:
                try:
                    if name.endswith("/await_in_running_loop"):
                        r = measure_self_timed(fn, setup, warm, meas, min_samples)
                    else:
                        r = base.measure(fn, setup, warm, meas, min_samples, max_samples=1_000_000)
                except Exception as e:
                    results[name] = {"status": f"not measured: {type(e).__name__}: {e}"}
                    continue
                r["items"] = items
                results[name] = r
                print(f"{group + ' ' + name:<36} {base.fmt_ns(r['median_ns']):>12} {r['samples']:>8}", flush=True)
            doc["groups"][group] = {"status": "ok", "cases": results}
    else:
        print(status)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=2)
            f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
