"""Driving one node: lifecycle calls, the four forms of ``process``, output rules.

Shared by both executors so that they behave the same:

- :class:`NodeHost` is what the Rust core calls back (synchronously, from a pipeline
  stage thread) for a Python node: coroutines and async generators run on the event
  loop of the caller of ``Pipeline.run`` (or on a private loop when there is none);
- the ``*_async`` functions serve the pure-Python executor, which awaits directly.

Output rules: a plain or async ``process`` returning ``None`` emits nothing, any other
return value is one output; a generator or async generator emits every value it yields
except ``None``. Nodes that stand in for a Rust built-in (``forwards_none``) emit
``None`` like any other value, as the Rust node does.
"""

from __future__ import annotations

import asyncio
import inspect
import traceback as _traceback
from typing import Any, Awaitable, Callable, List, Optional, Tuple

from .core.exceptions import NodeError

__all__ = ["NodeHost", "describe_error", "outputs_async", "call_async", "flush_async"]


def describe_error(exc: BaseException) -> Tuple[str, str, str]:
    """``(kind, message, traceback)`` reported for an exception raised by a node.

    A :class:`NodeError` raised by the node keeps its kind (default ``"python"``) and
    message; any other exception is kind ``"python"`` with message ``"Type: text"``.
    """
    if isinstance(exc, NodeError) and exc.node_id is None:
        kind = exc.kind or "python"
        message = exc.message
    else:
        kind = "python"
        text = str(exc)
        name = type(exc).__name__
        message = f"{name}: {text}" if text else name
    tb = "".join(_traceback.format_exception(type(exc), exc, exc.__traceback__))
    return kind, message, tb


def _collect_sync(result: Any, forwards_none: bool, run: Callable[[Awaitable[Any]], Any]) -> List[Any]:
    if result is None:
        return [None] if forwards_none else []
    if inspect.isgenerator(result):
        return [x for x in result if x is not None]
    if inspect.isawaitable(result):
        value = run(result)
        if value is None:
            return [None] if forwards_none else []
        return [value]
    if inspect.isasyncgen(result):
        return list(run(_drain_async_gen(result)))
    return [result]


async def _drain_async_gen(gen: Any) -> List[Any]:
    return [x async for x in gen if x is not None]


async def outputs_async(result: Any, forwards_none: bool = False) -> List[Any]:
    """The outputs of one ``process`` (or ``flush``) call, awaiting as needed."""
    if result is None:
        return [None] if forwards_none else []
    if inspect.isgenerator(result):
        return [x for x in result if x is not None]
    if inspect.isawaitable(result):
        value = await result
        if value is None:
            return [None] if forwards_none else []
        return [value]
    if inspect.isasyncgen(result):
        return await _drain_async_gen(result)
    return [result]


async def call_async(fn: Callable[[], Any]) -> Any:
    """Calls a lifecycle hook that may be plain or async."""
    result = fn()
    if inspect.isawaitable(result):
        result = await result
    return result


async def flush_async(node: Any, forwards_none: bool = False) -> List[Any]:
    """The outputs of the node's ``flush`` hook (none if it has no such hook)."""
    flush = getattr(node, "flush", None)
    if flush is None or not callable(flush):
        return []
    return await outputs_async(flush(), forwards_none)


class NodeHost:
    """Drives a Python node on behalf of the Rust core (the ``PythonCallback`` host).

    ``loop`` is the event loop that runs the node's coroutines; it must be running in
    another thread while the core calls this host. Without one, the host runs them on
    a private loop of its own. With ``manage_lifecycle=False`` the node's ``initialize``
    and ``cleanup`` are left to the caller (the pipeline was initialized already).
    """

    __slots__ = (
        "node",
        "loop",
        "manage_lifecycle",
        "forwards_none",
        "batched",
        "_private_loop",
        "_process",
    )

    def __init__(
        self,
        node: Any,
        *,
        loop: Optional[asyncio.AbstractEventLoop] = None,
        manage_lifecycle: bool = True,
        forwards_none: bool = False,
    ) -> None:
        self.node = node
        self.loop = loop
        self.manage_lifecycle = manage_lifecycle
        self.forwards_none = forwards_none
        self._private_loop: Optional[asyncio.AbstractEventLoop] = None
        self._process = node.process
        #: True for ``async def`` / async generator nodes: the core then hands over
        #: whole batches (:meth:`process_many`), one trip to the event loop each.
        self.batched = inspect.iscoroutinefunction(node.process) or inspect.isasyncgenfunction(
            node.process
        )

    def _run(self, awaitable: Awaitable[Any]) -> Any:
        loop = self.loop
        if loop is None:
            if self._private_loop is None:
                self._private_loop = asyncio.new_event_loop()
            return self._private_loop.run_until_complete(awaitable)
        if loop.is_closed() or not loop.is_running():
            _close(awaitable)
            raise RuntimeError(
                "the event loop that started this pipeline run is no longer running, so the "
                "node's coroutine cannot run"
            )
        try:
            current: Optional[asyncio.AbstractEventLoop] = asyncio.get_running_loop()
        except RuntimeError:
            current = None
        if current is loop:
            _close(awaitable)
            raise RuntimeError(
                "a Python node's coroutine cannot run on the event loop thread that is "
                "blocked waiting for the pipeline; use `await Pipeline.run(...)`"
            )
        return asyncio.run_coroutine_threadsafe(_as_coroutine(awaitable), loop).result()

    def initialize(self) -> None:
        """Runs the node's ``initialize`` (when this host manages the lifecycle)."""
        if self.manage_lifecycle:
            result = self.node.initialize()
            if inspect.isawaitable(result):
                self._run(result)

    def process(self, item: Any) -> List[Any]:
        """The node's outputs for one item."""
        return _collect_sync(self._process(item), self.forwards_none, self._run)

    def process_many(self, items: List[Any]) -> Tuple[List[List[Any]], Optional[BaseException]]:
        """The outputs of each item in turn, in one call.

        Returns the output lists of the items processed successfully and the exception
        raised by the next item (``None`` if every item succeeded).
        """
        return self._run(self._process_many(items))  # type: ignore[no-any-return]

    async def _process_many(self, items: List[Any]) -> Tuple[List[List[Any]], Optional[BaseException]]:
        results: List[List[Any]] = []
        process, forwards_none = self._process, self.forwards_none
        for item in items:
            try:
                results.append(await outputs_async(process(item), forwards_none))
            except Exception as exc:
                return results, exc
        return results, None

    def flush(self) -> List[Any]:
        """The node's outputs at the end of the stream (from its ``flush`` hook)."""
        flush = getattr(self.node, "flush", None)
        if flush is None or not callable(flush):
            return []
        return _collect_sync(flush(), self.forwards_none, self._run)

    def cleanup(self) -> None:
        """Runs the node's ``cleanup`` (when this host manages the lifecycle)."""
        try:
            if self.manage_lifecycle:
                result = self.node.cleanup()
                if inspect.isawaitable(result):
                    self._run(result)
        finally:
            if self._private_loop is not None:
                self._private_loop.close()
                self._private_loop = None

    def describe_error(self, exc: BaseException) -> Tuple[str, str, str]:
        """See :func:`describe_error`."""
        return describe_error(exc)

    def __repr__(self) -> str:
        return f"NodeHost({self.node!r})"


async def _as_coroutine(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


def _close(awaitable: Awaitable[Any]) -> None:
    """Closes a coroutine that will never run (avoids "never awaited" warnings)."""
    close = getattr(awaitable, "close", None)
    if callable(close):
        close()
