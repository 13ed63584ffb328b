"""``Pipeline.process`` streams through the Rust core: the same outputs as the
pure-Python executor, outputs as soon as they are produced, backpressure on a fast
producer, errors mapped the same way, and a session that stops when left early."""

import asyncio
import time

import pytest

from _util import run
from remotemedia import CalculatorNode, Node, NodeError, PassThroughNode, Pipeline, PipelineError


class Double(Node):
    def process(self, data):
        return data * 2


class Pairs(Node):
    """An async generator node that holds the last item back until the end."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.held = None

    async def process(self, data):
        if self.held is not None:
            yield [self.held, data]
        self.held = data

    def flush(self):
        return None if self.held is None else [[self.held]]


class Slow(Node):
    def process(self, data):
        time.sleep(0.0002)
        return data


class FailsOn(Node):
    def __init__(self, bad, **kw):
        super().__init__(**kw)
        self.bad = bad

    def process(self, data):
        if data == self.bad:
            raise ValueError(f"bad item {data}")
        return data


async def collect(pipeline, stream, **kw):
    async with pipeline.managed_execution():
        return [out async for out in pipeline.process(stream, **kw)]


async def agen(items, delay=0.0):
    for i in items:
        if delay:
            await asyncio.sleep(delay)
        yield i


def chain():
    return Pipeline([PassThroughNode(), CalculatorNode(operation="add", operand=1), Double(), Pairs()])


@pytest.mark.parametrize("source", ["list", "async"])
def test_both_executors_stream_the_same_outputs(source):
    items = list(range(50))

    def stream():
        return items if source == "list" else agen(items)

    rust = run(collect(chain(), stream()))
    python = run(collect(chain(), stream(), use_rust=False))
    assert rust == python
    assert rust[0] == [2, 4] and len(rust) == 50


def test_outputs_come_out_while_the_input_is_still_open():
    got_first = None

    async def main():
        nonlocal got_first
        got_first = asyncio.Event()

        async def producer():
            yield 1
            # The next item comes only once the first output was received: a
            # pipeline that waited for the end of its input would never end.
            await asyncio.wait_for(got_first.wait(), 20)
            yield 2

        p = Pipeline([CalculatorNode(operation="add", operand=1)])
        outs = []
        async with p.managed_execution():
            async for out in p.process(producer()):
                outs.append(out)
                got_first.set()
        return outs

    assert run(main()) == [2, 3]


@pytest.mark.parametrize("source", ["list", "async"])
def test_a_fast_producer_waits_for_a_slow_pipeline(source):
    n = 10_000 if source == "list" else 1000
    produced = 0
    most_in_flight = 0

    def counted_list():
        nonlocal produced
        for i in range(n):
            produced += 1
            yield i

    async def counted_async():
        nonlocal produced
        for i in range(n):
            produced += 1
            yield i

    async def main():
        nonlocal most_in_flight
        p = Pipeline([Slow(), PassThroughNode()])
        received = 0
        async with p.managed_execution():
            async for _ in p.process(counted_list() if source == "list" else counted_async()):
                received += 1
                most_in_flight = max(most_in_flight, produced - received)
        return received

    assert run(main()) == n
    # Bounded queues (two batches each, before, between and after the stages): an
    # async producer is at most a few items ahead (6 measured); a plain iterable is
    # sent in batches of 256, at most a dozen batches ahead counting every queue, the
    # batch in each stage and the one being handed out (about 1800 measured). Without
    # backpressure the producer would be all 10,000 items ahead.
    bound = 16 if source == "async" else 12 * 256
    assert most_in_flight <= bound, most_in_flight


def test_a_failing_node_raises_after_the_outputs_before_it():
    async def main(use_rust):
        p = Pipeline([CalculatorNode(operation="add", operand=0), FailsOn(3)])
        outs = []
        async with p.managed_execution():
            with pytest.raises(NodeError) as info:
                async for out in p.process(agen(range(10)), use_rust=use_rust):
                    outs.append(out)
        return outs, info.value

    rust_outs, rust_err = run(main(True))
    python_outs, python_err = run(main(False))
    assert rust_outs == python_outs == [0, 1, 2]
    assert rust_err.node_id == python_err.node_id == "FailsOn_1"
    assert rust_err.node_type == python_err.node_type == "FailsOn"
    assert "bad item 3" in str(rust_err)


def test_an_item_that_is_not_data_is_an_input_error():
    async def main():
        p = Pipeline([PassThroughNode()])
        async with p.managed_execution():
            with pytest.raises(NodeError) as info:
                async for _ in p.process(agen([1, object()])):
                    pass
        return info.value

    err = run(main())
    assert err.kind == "invalid_input"
    assert "input item 1" in str(err)


def test_leaving_early_stops_the_session():
    cleaned = []

    class Tracked(Node):
        def process(self, data):
            return data

        def cleanup(self):
            cleaned.append(True)

    async def forever():
        i = 0
        while True:
            yield i
            i += 1
            await asyncio.sleep(0)

    async def main():
        p = Pipeline([Tracked(), CalculatorNode(operation="add", operand=1)])
        async with p.managed_execution():
            seen = []
            async for out in p.process(forever()):
                seen.append(out)
                if len(seen) == 5:
                    break
        return seen

    seen = run(asyncio.wait_for(main(), 30))
    assert seen == [1, 2, 3, 4, 5]
    assert cleaned == [True]


def test_a_producer_exception_reaches_the_consumer():
    async def broken():
        yield 1
        raise RuntimeError("the microphone went away")

    with pytest.raises(RuntimeError, match="microphone went away"):
        run(asyncio.wait_for(collect(Pipeline([PassThroughNode()]), broken()), 30))


def test_process_needs_an_initialized_pipeline_and_an_iterable():
    async def not_initialized():
        async for _ in Pipeline([PassThroughNode()]).process([1]):
            pass

    with pytest.raises(PipelineError, match="must be initialized"):
        run(not_initialized())
    with pytest.raises(PipelineError, match="iterable"):
        run(collect(Pipeline([PassThroughNode()]), 42))


def test_a_reused_pipeline_sees_every_change_between_runs():
    calc = CalculatorNode(operation="add", operand=1)
    p = Pipeline([PassThroughNode(), calc])
    assert run(p.run([1, 2])) == [2, 3]
    assert run(p.run([1, 2])) == [2, 3]  # the kept manifest
    calc.operand = 10
    assert run(p.run([1, 2])) == [11, 12]
    p.add_node(CalculatorNode(operation="multiply", operand=2))
    assert run(p.run([1])) == [22]
    # Another Pipeline object with the same nodes shares the validated manifest and
    # still runs its own values.
    other = Pipeline([PassThroughNode(), CalculatorNode(operation="add", operand=10),
                      CalculatorNode(operation="multiply", operand=2)])
    assert run(other.run([2])) == [24]


def test_placement_warnings_are_told_once_per_stream(caplog, monkeypatch, tmp_path):
    import logging

    monkeypatch.delenv("REMOTEMEDIA_EXECUTORS", raising=False)
    monkeypatch.chdir(tmp_path)
    calc = CalculatorNode(operation="add", operand=1)
    calc.capabilities = {"gpu": {"type": "cuda", "required": False}}

    async def main():
        p = Pipeline([calc])
        async with p.managed_execution():
            return [out async for out in p.process([1, 2])]

    with caplog.at_level(logging.WARNING):
        assert run(main()) == [2, 3]
    told = [r.message for r in caplog.records if "the GPU is optional" in r.message]
    assert len(told) == 1, told


def test_a_prepared_manifest_says_when_a_run_asks_executors_first(monkeypatch, tmp_path):
    from remotemedia import runtime as rt

    monkeypatch.delenv("REMOTEMEDIA_EXECUTORS", raising=False)
    monkeypatch.chdir(tmp_path)
    ext = rt.extension()
    plain = ext.prepare_manifest(Pipeline([PassThroughNode()]).serialize())["prepared"]
    assert plain.needs_placement() is False
    assert plain.needs_placement(executors=["a=127.0.0.1:1"]) is True
    calc = CalculatorNode(operation="add", operand=1)
    calc.capabilities = {"gpu": {"type": "cuda", "required": False}}
    needy = ext.prepare_manifest(Pipeline([calc]).serialize())["prepared"]
    assert needy.needs_placement() is True
    with pytest.raises(TypeError, match="unexpected keyword argument `executor`"):
        plain.needs_placement(executor=["a=127.0.0.1:1"])
