"""Other Python threads (and the event loop) keep running while Rust stages execute."""

import asyncio
import json
import threading
import time

from _util import run
from remotemedia import CalculatorNode, Pipeline, runtime

NODES = 1000
ITEMS = 400_000


def _long_manifest():
    nodes = [
        {"id": f"add{i}", "node_type": "Calculator", "params": {"operation": "add", "operand": 1}}
        for i in range(NODES)
    ]
    return {
        "version": "v1",
        "metadata": {"name": "long"},
        "nodes": nodes,
        "connections": [{"from": f"add{i}", "to": f"add{i + 1}"} for i in range(NODES - 1)],
    }


def _max_gap(ticks, start, end):
    points = [start] + [t for t in ticks if start <= t <= end] + [end]
    return max(b - a for a, b in zip(points, points[1:]))


def test_other_threads_run_during_a_long_rust_stage():
    ext = runtime.extension()
    text = json.dumps(_long_manifest())
    items = list(range(ITEMS))
    ticks = []
    stop = threading.Event()

    def ticker():
        while not stop.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.001)

    thread = threading.Thread(target=ticker)
    thread.start()
    try:
        time.sleep(0.02)
        start = time.perf_counter()
        report = ext.run_manifest(text, items)  # blocks this thread, not the ticker
        end = time.perf_counter()
    finally:
        stop.set()
        thread.join()
    assert report["error"] is None
    assert report["outputs"][:2] == [NODES, NODES + 1]
    rust_seconds = report["metrics"]["wall_time_us"] / 1e6
    assert rust_seconds > 0.1, "the Rust stage should take a noticeable time"
    # Had the GIL been held, the ticker would stall for the whole Rust stage.
    assert _max_gap(ticks, start, end) < rust_seconds / 2
    assert sum(1 for t in ticks if start <= t <= end) > rust_seconds / 0.02


def test_event_loop_stays_responsive_during_run():
    p = Pipeline([CalculatorNode(operation="add", operand=1) for _ in range(NODES)])

    async def go():
        ticks = []
        done = asyncio.Event()

        async def ticker():
            while not done.is_set():
                ticks.append(time.perf_counter())
                await asyncio.sleep(0.001)

        task = asyncio.create_task(ticker())
        start = time.perf_counter()
        out = await p.run(list(range(ITEMS)))
        end = time.perf_counter()
        done.set()
        await task
        return out, ticks, start, end

    out, ticks, start, end = run(go())
    assert out[:2] == [NODES, NODES + 1]
    assert _max_gap(ticks, start, end) < (end - start) / 2
