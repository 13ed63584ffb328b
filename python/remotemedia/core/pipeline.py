"""The :class:`Pipeline`: an ordered chain of nodes, run in the Rust core or in Python."""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
from collections import OrderedDict
import logging
import re
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from typing import (
    Any,
    AsyncIterable,
    AsyncIterator,
    Dict,
    Iterable,
    Iterator,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    Union,
)

from .. import _edges, _host, runtime
from .exceptions import ConfigurationError, InvalidInputError, NodeError, PipelineError
from .node import Node

__all__ = ["Pipeline"]

logger = logging.getLogger("remotemedia.pipeline")

_PREVIEW_CHARS = 120
_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
# Runs of native nodes over at most this many items run on the event loop thread:
# they finish faster than a hand-off to a worker thread (see `Pipeline._run_rust`).
_INLINE_MAX_ITEMS = 1024

_SCALARS = (str, int, float, bool, type(None))


def _snapshot(value: Any) -> Any:
    """``value`` as it is now, unaffected by later changes in place: scalars as they
    are, flat tuples and dicts of scalars copied shallowly, anything else deep-copied."""
    if isinstance(value, _SCALARS):
        return value
    if type(value) is tuple:
        return tuple(_snapshot(v) for v in value)
    if type(value) is dict and all(isinstance(v, _SCALARS) for v in value.values()):
        return dict(value)
    return copy.deepcopy(value)
#: Validated native-only manifests by text, shared by every Pipeline object (a service
#: that builds the same small pipeline per request validates it once), most recent last.
_PREPARED: "OrderedDict[str, Any]" = OrderedDict()
_PREPARED_MAX = 64
#: Items of a plain iterable sent to a streaming session at once.
_STREAM_BATCH = 256

Stream = Union[AsyncIterable[Any], Iterable[Any]]


def _preview(item: Any) -> str:
    try:
        text = json.dumps(item, default=repr, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError):
        text = repr(item)
    if len(text) > _PREVIEW_CHARS:
        text = text[:_PREVIEW_CHARS] + "…"
    return text


def _check_input(index: int, item: Any) -> None:
    """Refuses an input item the Rust core would refuse, with its words (both executors
    give the same outcome at the edges of the data model)."""
    found = _edges.problem(item)
    if found is not None:
        exc, message = found
        raise InvalidInputError(
            f"input item {index} cannot enter the pipeline: {message}", index=index
        ) from exc(message)


def _checked_iterable(stream: Any) -> Iterable[Any]:
    try:
        iter(stream)
    except TypeError as e:
        raise PipelineError(
            f"process() needs an iterable or async iterable of items, got {type(stream).__name__}"
        ) from e
    return stream


async def _aiter(stream: Optional[Stream]) -> AsyncIterator[Any]:
    if stream is None:
        return
    if hasattr(stream, "__aiter__"):
        async for item in stream:
            yield item
    else:
        for item in _checked_iterable(stream):
            yield item


class _Stage:
    """A node with its id and output rule, as the Python executor sees it."""

    __slots__ = ("node", "node_id", "node_type", "forwards_none")

    def __init__(self, node: Node, index: int) -> None:
        self.node = node
        self.node_id = f"{node.name}_{index}"
        self.node_type = type(node).__name__
        self.forwards_none = node._rust_native() is not None

    def error(self, phase: str, exc: BaseException, item: Any = None, has_item: bool = False) -> NodeError:
        kind, message, tb = _host.describe_error(exc)
        return NodeError(
            message,
            node_id=self.node_id,
            node_type=self.node_type,
            kind=kind,
            phase=phase,
            traceback=tb,
            input_preview=_preview(item) if has_item else None,
        )


class Pipeline:
    """An ordered chain of :class:`Node` objects.

    ``await pipeline.run(data)`` turns the pipeline into a manifest and runs it in the
    Rust core (``use_rust=True``, the default): built-in nodes run as native Rust nodes,
    your own nodes run as Python called back from Rust. ``use_rust=False`` runs the same
    pipeline with the pure-Python executor, with the same results.

    For streaming, initialize the pipeline and iterate :meth:`process` (in the Rust
    core by default, with backpressure; ``use_rust=False`` for the Python executor)::

        async with pipeline.managed_execution():
            async for out in pipeline.process(items):
                ...
    """

    def __init__(
        self,
        nodes: Optional[Iterable[Node]] = None,
        name: Optional[str] = None,
        connections: Optional[Iterable[Tuple[Union[Node, str], Union[Node, str]]]] = None,
    ) -> None:
        """Creates a pipeline named ``name`` (default ``"Pipeline"``) from ``nodes``.

        Without ``connections`` the nodes form a chain, in order. With them (pairs
        ``(from, to)`` of nodes or node names), the pipeline is that graph: fan-out
        (one node feeding several), fan-in (several feeding one, e.g. a
        :class:`~remotemedia.nodes.ZipNode`), several sinks. :meth:`connect` adds
        connections one by one.
        """
        self.name: str = name or "Pipeline"
        self.nodes: List[Node] = []
        self._is_initialized = False
        # Explicit connections (a graph), or None: the nodes in order form a chain.
        self._edges: Optional[List[Tuple[Node, Node]]] = None
        # (fingerprint, manifest text, the extension's validated form, node names) of
        # the last native-only run: reused while the fingerprint stays the same.
        self._prepared: Optional[Tuple[Any, str, Any, Dict[str, Tuple[str, str]]]] = None
        self.logger = logger
        for node in nodes or ():
            self.add_node(node)
        for src, dst in connections or ():
            self.connect(src, dst)

    # ------------------------------------------------------------------ structure

    def add_node(self, node: Node) -> Pipeline:
        """Appends ``node``; returns the pipeline, so calls can be chained."""
        if self._is_initialized:
            raise PipelineError("cannot add nodes to an initialized pipeline")
        if not isinstance(node, Node):
            raise PipelineError(f"expected a Node instance, got {type(node).__name__}")
        self.nodes.append(node)
        return self

    def remove_node(self, node_name: str) -> bool:
        """Removes the first node named ``node_name`` (and its connections); False if
        there is none."""
        if self._is_initialized:
            raise PipelineError("cannot remove nodes from an initialized pipeline")
        for i, node in enumerate(self.nodes):
            if node.name == node_name:
                del self.nodes[i]
                if self._edges is not None:
                    self._edges = [(a, b) for a, b in self._edges if a is not node and b is not node]
                return True
        return False

    def _resolve(self, node: Union[Node, str], role: str) -> Node:
        if isinstance(node, Node):
            if not any(n is node for n in self.nodes):
                self.add_node(node)
            return node
        if isinstance(node, str):
            found = self.get_node(node)
            if found is None:
                names = ", ".join(n.name for n in self.nodes) or "none"
                raise PipelineError(f"connect: no node named {node!r} to connect {role} (nodes: {names})")
            return found
        raise PipelineError(f"connect: expected a Node or a node name {role}, got {type(node).__name__}")

    def connect(self, src: Union[Node, str], dst: Union[Node, str]) -> Pipeline:
        """Sends the outputs of ``src`` to ``dst`` (nodes, added when not yet in the
        pipeline, or names of nodes in it); returns the pipeline, so calls can be
        chained. The first call turns the pipeline from a chain into a graph made of the
        connections given."""
        if self._is_initialized:
            raise PipelineError("cannot connect nodes of an initialized pipeline")
        a, b = self._resolve(src, "from"), self._resolve(dst, "to")
        if a is b:
            raise PipelineError(f"connect: node `{a.name}` cannot feed itself")
        edges = self._edges if self._edges is not None else []
        if not any(x is a and y is b for x, y in edges):
            edges.append((a, b))
        self._edges = edges
        return self

    @property
    def connections(self) -> List[Tuple[Node, Node]]:
        """The ``(from, to)`` pairs: the connections given, or the chain's."""
        if self._edges is None:
            return list(zip(self.nodes, self.nodes[1:]))
        return list(self._edges)

    def _edge_indices(self) -> List[Tuple[int, int]]:
        index = {id(n): i for i, n in enumerate(self.nodes)}
        return [(index[id(a)], index[id(b)]) for a, b in self.connections]

    def get_node(self, node_name: str) -> Optional[Node]:
        """The first node named ``node_name``, or None."""
        for node in self.nodes:
            if node.name == node_name:
                return node
        return None

    def __len__(self) -> int:
        return len(self.nodes)

    def __iter__(self) -> Iterator[Node]:
        return iter(list(self.nodes))

    @property
    def node_count(self) -> int:
        """Number of nodes."""
        return len(self.nodes)

    @property
    def is_initialized(self) -> bool:
        """Whether :meth:`initialize` ran and :meth:`cleanup` has not yet."""
        return self._is_initialized

    def get_config(self) -> Dict[str, Any]:
        """The pipeline's name, state and node configs."""
        return {
            "name": self.name,
            "node_count": len(self.nodes),
            "nodes": [node.get_config() for node in self.nodes],
            "is_initialized": self._is_initialized,
        }

    def node_ids(self) -> List[str]:
        """The nodes' ids in manifests and errors: ``f"{node.name}_{index}"``."""
        return [f"{node.name}_{i}" for i, node in enumerate(self.nodes)]

    def __repr__(self) -> str:
        return f"Pipeline(name={self.name!r}, nodes={[n.name for n in self.nodes]!r})"

    # ------------------------------------------------------------------ lifecycle

    async def initialize(self) -> None:
        """Initializes every node, in order.

        If a node fails, the nodes initialized so far (and the failing one) are cleaned
        up and a :class:`NodeError` with ``phase="initialize"`` is raised.
        """
        if self._is_initialized:
            return
        if not self.nodes:
            raise PipelineError("cannot initialize an empty pipeline")
        for i, node in enumerate(self.nodes):
            try:
                await _host.call_async(node.initialize)
            except Exception as exc:
                error = _Stage(node, i).error("initialize", exc)
                await self._cleanup_nodes(self.nodes[: i + 1])
                raise error from exc
        self._is_initialized = True

    async def cleanup(self) -> None:
        """Cleans up every node (errors are logged, not raised)."""
        try:
            await self._cleanup_nodes(self.nodes)
        finally:
            self._is_initialized = False

    async def _cleanup_nodes(self, nodes: List[Node]) -> None:
        for node in nodes:
            try:
                await _host.call_async(node.cleanup)
            except Exception as exc:  # cleanup of the others must still run
                logger.warning("cleanup of node %r failed: %s", node.name, exc, exc_info=exc)

    @asynccontextmanager
    async def managed_execution(self) -> AsyncIterator[Pipeline]:
        """``async with``: initializes the pipeline on entry and cleans it up on exit."""
        await self.initialize()
        try:
            yield self
        finally:
            await self.cleanup()

    # ------------------------------------------------------------------ streaming

    async def process(
        self,
        stream: Optional[Stream] = None,
        use_rust: bool = True,
        *,
        executors: Optional[Sequence[str]] = None,
        policy: Optional[str] = None,
        config: Optional[str] = None,
        token_file: Optional[str] = None,
        executor_ca: Optional[str] = None,
        dns_server: Optional[str] = None,
    ) -> AsyncIterator[Any]:
        """Streams items through the pipeline, yielding its outputs as they come.

        ``stream`` is an async or plain iterable of items (None: no items). At the end
        of the stream each node's ``flush`` output passes through the nodes after it.
        The pipeline must be initialized. A failing node raises :class:`NodeError`,
        after the outputs produced before it.

        ``use_rust=True`` (the default) runs a streaming session in the Rust core,
        placed like :meth:`run` (``executors``, ``policy``, … as there): items enter as
        ``stream`` yields them and outputs come out as soon as they are produced. The
        core's queues are bounded, so a producer faster than the pipeline waits for it
        (memory stays bounded); the event loop is never blocked (sends and receives
        wait on worker threads), and coroutine nodes run on it. Leaving the loop early
        stops the session. ``use_rust=False`` runs the pure-Python executor, one item
        through every node at a time.
        """
        if not self._is_initialized:
            raise PipelineError(
                "the pipeline must be initialized before processing; use "
                "`async with pipeline.managed_execution():` or `await pipeline.initialize()`"
            )
        placement = runtime.placement_options(
            executors, policy, config, token_file, executor_ca, dns_server
        )
        if use_rust:
            async for out in self._process_rust(stream, placement):
                yield out
        else:
            self._check_python_executor(placement)
            async for out in self._process_python(stream):
                yield out

    def _check_python_executor(self, placement: Mapping[str, Any]) -> None:
        """Refuses what the pure-Python executor cannot do: nodes only the Rust core has,
        and placement on executors."""
        native_only = [f"`{n.name}_{i}` ({type(n).__name__})" for i, n in enumerate(self.nodes)
                       if not n._runs_in_python]
        if native_only:
            raise PipelineError(
                f"use_rust=False runs every node in Python, but {', '.join(native_only)} "
                "run only in the Rust core: run with use_rust=True"
            )
        hosted = [f"`{n.name}_{i}` (host {n.host})" for i, n in enumerate(self.nodes) if n.host]
        if hosted or placement:
            what = "nodes " + ", ".join(hosted) if hosted else "executors were given"
            raise PipelineError(
                f"use_rust=False runs every node in this process, but {what}: "
                "run with use_rust=True to place nodes on executors"
            )

    async def _process_rust(self, stream: Optional[Stream], placement: Mapping[str, Any]) -> AsyncIterator[Any]:
        ext = runtime.extension()
        loop = asyncio.get_running_loop()
        manifest, hosts, names = self._execution_manifest(loop, False, ext.PYTHON_CALLBACK_TYPE)
        text = self._manifest_text(manifest)
        started = await asyncio.to_thread(lambda: ext.start_stream(text, hosts, None, **placement))
        session = started.get("session")
        if session is None:
            runtime.outputs_or_raise(started, text, names)
            raise PipelineError(f"pipeline `{self.name}`: the streaming session did not start")
        for w in session.warnings:
            logger.warning("%s", w)

        async def feed() -> Optional[Mapping[str, Any]]:
            """Sends the stream's items; the error of an item that cannot be sent."""
            try:
                if stream is not None and not hasattr(stream, "__aiter__"):
                    # A plain iterable: in batches, a thread hop for many items.
                    it = iter(_checked_iterable(stream))
                    while True:
                        batch = list(itertools.islice(it, _STREAM_BATCH))
                        if not batch:
                            return None
                        sent = await asyncio.to_thread(session.send, batch)
                        if sent is not None:
                            return sent or None
                async for item in _aiter(stream):
                    sent = await asyncio.to_thread(session.send, [item])
                    if sent is not None:
                        return sent or None
                return None
            finally:
                session.close_input()

        feeder = asyncio.create_task(feed())
        finished = False
        try:
            while True:
                batch = await asyncio.to_thread(session.recv)
                if batch is None:
                    break
                for out in batch:
                    yield out
            input_error = await feeder
            report = await asyncio.to_thread(session.finish)
            finished = True
            for out in report.get("outputs") or ():
                yield out
            if input_error is not None:
                runtime.raise_failure(input_error, text, names)
            runtime.outputs_or_raise({**report, "outputs": []}, text, names)
        finally:
            if not finished:
                # Left early (the consumer stopped, or the producer raised): stop the
                # session and wait for its nodes to clean up.
                session.cancel()
                feeder.cancel()
                try:
                    await feeder
                except (asyncio.CancelledError, Exception):
                    pass
                await asyncio.to_thread(session.finish)

    def _run_ids(self) -> List[str]:
        """The ids the nodes have in execution manifests (what Echo and Zip report)."""
        return [f"{_ID_UNSAFE.sub('_', n.name)}_{i}" for i, n in enumerate(self.nodes)]

    def _bind_flow_nodes(self, preds: List[List[int]]) -> None:
        """Tells Echo nodes their id and Zip nodes their inputs, as the core does."""
        ids = self._run_ids()
        for v, node in enumerate(self.nodes):
            if getattr(node, "_wants_node_id", False):
                node.node_id = ids[v]
            if getattr(node, "_wants_inputs", False):
                node.inputs = [ids[u] for u in preds[v]]
            # Native nodes start every run afresh in the core (they are built per run):
            # their Python equivalents do the same.
            start = getattr(node, "_start_run", None)
            if start is not None and node._rust_native() is not None:
                start()

    def _graph(self) -> Tuple[List[List[int]], List[List[int]], List[int]]:
        """Successors, predecessors and a topological order of the nodes; a cycle is a
        :class:`PipelineError` naming its nodes."""
        n = len(self.nodes)
        succ: List[List[int]] = [[] for _ in range(n)]
        preds: List[List[int]] = [[] for _ in range(n)]
        for i, j in self._edge_indices():
            succ[i].append(j)
            preds[j].append(i)
        indegree = [len(p) for p in preds]
        order = [v for v in range(n) if indegree[v] == 0]
        for v in order:
            for w in succ[v]:
                indegree[w] -= 1
                if indegree[w] == 0:
                    order.append(w)
        if len(order) < n:
            cyclic = ", ".join(f"`{self.nodes[v].name}_{v}`" for v in range(n) if indegree[v] > 0)
            raise PipelineError(f"the connections form a cycle through {cyclic}")
        return succ, preds, order

    # ------------------------------------------------------------------ Python executor

    async def _process_python(self, stream: Optional[Stream]) -> AsyncIterator[Any]:
        if self._edges is not None:
            async for out in self._process_graph(stream):
                yield out
            return
        self._bind_flow_nodes([[i - 1] if i else [] for i in range(len(self.nodes))])
        stages = [_Stage(node, i) for i, node in enumerate(self.nodes)]
        index = 0
        async for item in _aiter(stream):
            _check_input(index, item)
            index += 1
            for out in await self._push(stages, 0, [item]):
                yield out
        for i, stage in enumerate(stages):
            try:
                flushed = await _host.flush_async(stage.node, stage.forwards_none)
            except Exception as exc:
                raise stage.error("finish", exc) from exc
            if flushed:
                for out in await self._push(stages, i + 1, flushed):
                    yield out

    async def _process_graph(self, stream: Optional[Stream]) -> AsyncIterator[Any]:
        """The pure-Python executor for a graph: each item goes depth-first from the
        roots through every path; what reaches a sink (a node without successors) is
        yielded. At the end each node, in topological order, flushes into the nodes
        after it."""
        succ, preds, order = self._graph()
        self._bind_flow_nodes(preds)
        stages = [_Stage(node, i) for i, node in enumerate(self.nodes)]
        ids = self._run_ids()
        roots = [v for v in range(len(self.nodes)) if not preds[v]]

        async def call(v: int, src: Optional[int], item: Any) -> List[Any]:
            stage = stages[v]
            try:
                if src is not None and getattr(stage.node, "_wants_inputs", False):
                    return list(stage.node.process_from(ids[src], item))
                return await _host.outputs_async(stage.node.process(item), stage.forwards_none)
            except Exception as exc:
                raise stage.error("process", exc, item, True) from exc

        async def forward(v: int, outs: List[Any]) -> List[Any]:
            if not succ[v]:
                return outs
            reached: List[Any] = []
            for out in outs:
                for w in succ[v]:
                    reached.extend(await forward(w, await call(w, v, out)))
            return reached

        index = 0
        async for item in _aiter(stream):
            _check_input(index, item)
            index += 1
            for r in roots:
                for out in await forward(r, await call(r, None, item)):
                    yield out
        for v in order:
            stage = stages[v]
            try:
                flushed = await _host.flush_async(stage.node, stage.forwards_none)
            except Exception as exc:
                raise stage.error("finish", exc) from exc
            if flushed:
                for out in await forward(v, flushed):
                    yield out

    @staticmethod
    async def _push(stages: List[_Stage], start: int, items: List[Any]) -> List[Any]:
        for stage in stages[start:]:
            if not items:
                break
            process = stage.node.process
            forwards_none = stage.forwards_none
            produced: List[Any] = []
            for item in items:
                try:
                    produced.extend(await _host.outputs_async(process(item), forwards_none))
                except Exception as exc:
                    raise stage.error("process", exc, item, True) from exc
            items = produced
        return items

    async def _run_python(self, items: List[Any]) -> List[Any]:
        # Every item is checked before any node starts, as the Rust core does.
        for index, item in enumerate(items):
            _check_input(index, item)
        owns = not self._is_initialized
        if owns:
            await self.initialize()
        try:
            return [out async for out in self._process_python(items)]
        finally:
            if owns:
                await self.cleanup()

    # ------------------------------------------------------------------ Rust executor

    def _execution_manifest(
        self, loop: Optional[asyncio.AbstractEventLoop], manage_lifecycle: bool, callback_type: str
    ) -> Tuple[Dict[str, Any], Dict[str, Any], Dict[str, Tuple[str, str]]]:
        """The manifest the Rust core runs, the Python node hosts by handle, and the
        SDK's ``(node_id, node_type)`` for each manifest id."""
        nodes: List[Dict[str, Any]] = []
        hosts: Dict[str, Any] = {}
        names: Dict[str, Tuple[str, str]] = {}
        for i, node in enumerate(self.nodes):
            run_id = f"{_ID_UNSAFE.sub('_', node.name)}_{i}"
            names[run_id] = (f"{node.name}_{i}", type(node).__name__)
            native = node._rust_native()
            if native is not None:
                node_type, params = native
            else:
                node_type, params = callback_type, {"handle": run_id}
                hosts[run_id] = _host.NodeHost(node, loop=loop, manage_lifecycle=manage_lifecycle)
            entry: Dict[str, Any] = {"id": run_id, "node_type": node_type}
            if params:
                entry["params"] = params
            caps = node.get_capabilities()
            if caps:
                entry["capabilities"] = caps
            if node.host:
                entry["host"] = node.host
            nodes.append(entry)
        manifest = {
            "version": "v1",
            "metadata": {"name": self.name},
            "nodes": nodes,
            "connections": [
                {"from": nodes[i]["id"], "to": nodes[j]["id"]} for i, j in self._edge_indices()
            ],
        }
        return manifest, hosts, names

    def _manifest_text(self, manifest: Mapping[str, Any]) -> str:
        try:
            return json.dumps(manifest, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise ConfigurationError(f"pipeline `{self.name}` cannot become a manifest: {e}") from e

    def _fingerprint(self) -> Tuple[Any, ...]:
        """Everything the execution manifest of a native-only pipeline is made of —
        each node (by identity) with its name, host, native form and capabilities, and
        the explicit connections, and the pipeline's name — cheap to build and to
        compare."""
        return (
            tuple((n, n.name, n.host, n._rust_native(), n.capabilities) for n in self.nodes),
            None if self._edges is None else tuple(self._edges),
            self.name,
        )

    @staticmethod
    def _frozen(fingerprint: Tuple[Any, ...]) -> Tuple[Any, ...]:
        """A fingerprint to keep: its values deep-copied (nodes and edges kept by
        identity), so that changing a dict in place later is seen as a change."""
        nodes, edges, name = fingerprint
        return (
            tuple(
                (n, node_name, _snapshot(host), _snapshot(native), _snapshot(caps))
                for n, node_name, host, native, caps in nodes
            ),
            edges,
            name,
        )

    async def _run_rust(self, items: List[Any], placement: Mapping[str, Any]) -> List[Any]:
        ext = runtime.extension()
        cached = self._prepared
        fingerprint = self._fingerprint()
        if cached is not None and cached[0] == fingerprint:
            # The same native-only pipeline as last time: its validated manifest is
            # reused, so a small run costs little more than its work.
            text, prepared, names = cached[1], cached[2], cached[3]
        else:
            loop = asyncio.get_running_loop()
            manifest, hosts, names = self._execution_manifest(
                loop, not self._is_initialized, ext.PYTHON_CALLBACK_TYPE
            )
            text = self._manifest_text(manifest)
            if hosts:
                report = await asyncio.to_thread(
                    lambda: ext.run_manifest(text, items, hosts, None, **placement)
                )
                return runtime.outputs_or_raise(report, text, names)
            prepared = _PREPARED.get(text)
            if prepared is None:
                got = ext.prepare_manifest(text)
                prepared = got.get("prepared")
                if prepared is None:
                    return runtime.outputs_or_raise(got, text, names)
                _PREPARED[text] = prepared
                while len(_PREPARED) > _PREPARED_MAX:
                    _PREPARED.popitem(last=False)
            else:
                try:
                    _PREPARED.move_to_end(text)
                except KeyError:  # evicted meanwhile by a run on another thread
                    pass
            self._prepared = (self._frozen(fingerprint), text, prepared, names)
        if len(items) <= _INLINE_MAX_ITEMS and not prepared.needs_placement(**placement):
            # A small input and no executor to ask: the run takes microseconds, less
            # than handing it to a worker thread would, so it runs here (GIL released).
            report = ext.run_prepared(prepared, items)
        else:
            report = await asyncio.to_thread(
                lambda: ext.run_prepared(prepared, items, None, **placement)
            )
        return runtime.outputs_or_raise(report, text, names)

    # ------------------------------------------------------------------ entry points

    async def run(
        self,
        input_data: Any = None,
        use_rust: bool = True,
        *,
        executors: Optional[Sequence[str]] = None,
        policy: Optional[str] = None,
        config: Optional[str] = None,
        token_file: Optional[str] = None,
        executor_ca: Optional[str] = None,
        dns_server: Optional[str] = None,
    ) -> Any:
        """Runs the pipeline to the end of its input and returns the outputs.

        A list in gives the list of outputs. Any other single item gives its output:
        None if the pipeline emitted nothing, the output if there was one, a list if
        there were several. ``input_data=None`` runs with no input items.

        ``use_rust=True`` runs in the Rust core (raising
        :class:`~remotemedia.core.exceptions.RuntimeNotAvailableError` if the extension
        is not built), placed as ``remotemedia run`` places the serialized pipeline:
        nodes' ``host`` and ``capabilities``, ``executors`` (``NAME=HOST:PORT`` …),
        ``REMOTEMEDIA_EXECUTORS``, ``remotemedia.toml`` (or ``config``) and ``policy``;
        a node with no place raises :class:`PlacementError` with the CLI's message.
        ``use_rust=False`` uses the pure-Python executor, which runs every node in this
        process: a node with a ``host``, or ``executors``, is refused there. A pipeline
        that is not initialized is initialized and cleaned up around the run; node
        failures raise :class:`NodeError` and are never retried in the other executor.
        """
        if not self.nodes:
            raise PipelineError("cannot run an empty pipeline")
        placement = runtime.placement_options(
            executors, policy, config, token_file, executor_ca, dns_server
        )
        if not use_rust:
            self._check_python_executor(placement)
        many = isinstance(input_data, list)
        if many:
            items = list(input_data)
        elif input_data is None:
            items = []
        else:
            items = [input_data]
        if use_rust:
            outputs = await self._run_rust(items, placement)
        else:
            outputs = await self._run_python(items)
        if many:
            return outputs
        if not outputs:
            return None
        return outputs[0] if len(outputs) == 1 else outputs

    def serialize(self, include_capabilities: bool = True, description: Optional[str] = None) -> str:
        """The pipeline as manifest v1 JSON, which ``remotemedia run`` runs as it is.

        Node ids are ``f"{node.name}_{index}"``; connections link the nodes in order;
        each node entry comes from :meth:`Node.serialized`: the SDK's built-in nodes as
        their native node types, your own classes as ``PythonNode`` references to them
        (a class defined in ``__main__`` or inside a function cannot be referenced and
        raises :class:`ConfigurationError`).
        """
        metadata: Dict[str, Any] = {
            "name": self.name,
            "created_at": datetime.now(timezone.utc).isoformat().replace("+00:00", "Z"),
        }
        if description:
            metadata["description"] = description
        nodes = []
        for i, node in enumerate(self.nodes):
            node_id = f"{node.name}_{i}"
            try:
                entry = node.serialized(include_capabilities)
            except ConfigurationError as e:
                message = e.message.replace(f"node `{node.name}`", f"node `{node_id}`", 1)
                raise ConfigurationError(
                    message, errors=[{"path": f"nodes[{i}]", "message": message, "node_id": node_id}]
                ) from e
            entry["id"] = node_id
            try:
                json.dumps(entry, allow_nan=False)
            except (TypeError, ValueError) as e:
                raise ConfigurationError(
                    f"node `{entry['id']}` cannot be serialized: {e}",
                    errors=[{"path": f"nodes[{i}]", "message": str(e), "node_id": entry["id"]}],
                ) from e
            nodes.append(entry)
        manifest = {
            "version": "v1",
            "metadata": metadata,
            "nodes": nodes,
            "connections": [
                {"from": nodes[i]["id"], "to": nodes[j]["id"]} for i, j in self._edge_indices()
            ],
        }
        return json.dumps(manifest, indent=2, allow_nan=False)
