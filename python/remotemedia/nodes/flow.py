"""Flow nodes: :class:`FilterNode`, :class:`ZipNode` and :class:`EchoNode`, the SDK
classes of the Rust ``Filter``, ``Zip`` and ``Echo`` node types.

Under ``use_rust=True`` they run as those native nodes; the pure-Python executor runs
their ``process`` with the same rules.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Any, Deque, Dict, Iterator, List, Optional, Tuple

from ..core.exceptions import ConfigurationError, NodeError
from ..core.node import Node

__all__ = ["EchoNode", "FilterNode", "ZipNode"]

logger = logging.getLogger("remotemedia.nodes.flow")

#: The comparisons a :class:`FilterNode` takes, exactly one of them.
COMPARISONS = ("gt", "gte", "lt", "lte", "eq", "ne")


def _number(v: Any) -> Optional[float]:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v)


def _kind(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "text"
    if isinstance(v, (list, tuple)):
        return "list"
    if isinstance(v, dict):
        return "map"
    return type(v).__name__


class FilterNode(Node):
    """Keeps the items that satisfy exactly one comparison (``gt``, ``gte``, ``lt``,
    ``lte``: numbers; ``eq``, ``ne``: any value), of the item or, with ``field``, of
    that key of map items. Runs as the Rust ``Filter`` node."""

    def __init__(self, field: Optional[str] = None, name: Optional[str] = None, **comparison: Any) -> None:
        """``FilterNode(gt=10)``, ``FilterNode(eq="yes", field="answer")``; raises
        :class:`ConfigurationError` unless exactly one comparison is given."""
        unknown = sorted(set(comparison) - set(COMPARISONS))
        if unknown:
            raise ConfigurationError(
                f"FilterNode: unknown param(s) {', '.join(unknown)}; expected one of {', '.join(COMPARISONS)} and field"
            )
        if len(comparison) != 1:
            raise ConfigurationError(
                f"FilterNode needs exactly one of {', '.join(COMPARISONS)}, got {len(comparison)}"
            )
        (self.comparison, self.value), = comparison.items()
        if self.comparison in ("gt", "gte", "lt", "lte") and _number(self.value) is None:
            raise ConfigurationError(f"FilterNode: `{self.comparison}` needs a number, got {self.value!r}")
        if field is not None and not isinstance(field, str):
            raise ConfigurationError(f"FilterNode: `field` must be a string, got {field!r}")
        super().__init__(name=name)
        self.field = field
        self.config.update(comparison)
        if field is not None:
            self.config["field"] = field

    def keep(self, data: Any) -> bool:
        """Whether ``data`` passes (raises :class:`NodeError` for an item it cannot judge)."""
        subject = data
        if self.field is not None:
            if not isinstance(data, dict) or self.field not in data:
                raise NodeError(
                    f"expected a map with field `{self.field}`, got {_kind(data)}", kind="invalid_input"
                )
            subject = data[self.field]
        if self.comparison in ("eq", "ne"):
            a, b = _number(subject), _number(self.value)
            same = a == b if a is not None and b is not None else subject == self.value
            return same if self.comparison == "eq" else not same
        a = _number(subject)
        if a is None:
            raise NodeError(f"cannot order {_kind(subject)} against a number", kind="invalid_input")
        b = float(self.value)
        return {"gt": a > b, "gte": a >= b, "lt": a < b, "lte": a <= b}[self.comparison]

    def process(self, data: Any) -> Iterator[Any]:
        """``data`` when it passes, else nothing (a generator: a kept ``None`` is an
        output too)."""
        if self.keep(data):
            yield data

    def _rust_native(self) -> Optional[Tuple[str, Dict[str, Any]]]:
        return ("Filter", dict(self.config)) if type(self) is FilterNode else None


class EchoNode(Node):
    """Wraps each item as ``{"node": <node id>, "count": n, "data": item}``, ``n``
    counting from 1. Runs as the Rust ``Echo`` node."""

    #: The pipeline sets :attr:`node_id` before a run.
    _wants_node_id = True

    def __init__(self, name: Optional[str] = None) -> None:
        super().__init__(name=name)
        self.count = 0
        #: The id the pipeline gives this node (set by the pipeline before a run).
        self.node_id: Optional[str] = None

    async def initialize(self) -> None:
        self._start_run()
        await super().initialize()

    def _start_run(self) -> None:
        self.count = 0

    def process(self, data: Any) -> Any:
        self.count += 1
        return {"node": self.node_id or self.name, "count": self.count, "data": data}

    def _rust_native(self) -> Optional[Tuple[str, Dict[str, Any]]]:
        return ("Echo", {}) if type(self) is EchoNode else None


#: Unpaired items one input of a :class:`ZipNode` may hold unless told otherwise.
DEFAULT_MAX_PENDING = 10_000


class ZipNode(Node):
    """Waits until every input has an item, then emits one map keyed by upstream node
    id. ``strict`` makes unpaired items left at the end an error (else they are
    dropped with a warning); an input holds at most ``max_pending`` unpaired items.
    Runs as the Rust ``Zip`` node; needs a graph (``Pipeline.connect``) with several
    inputs."""

    #: The pipeline sets :attr:`inputs` before a run and calls :meth:`process_from`.
    _wants_inputs = True

    def __init__(self, strict: bool = True, max_pending: int = DEFAULT_MAX_PENDING, name: Optional[str] = None) -> None:
        if not isinstance(strict, bool):
            raise ConfigurationError(f"ZipNode: `strict` must be a bool, got {strict!r}")
        if isinstance(max_pending, bool) or not isinstance(max_pending, int) or max_pending < 1:
            raise ConfigurationError(f"ZipNode: `max_pending` must be a positive int, got {max_pending!r}")
        super().__init__(name=name)
        self.strict, self.max_pending = strict, max_pending
        self.config.update(strict=strict, max_pending=max_pending)
        #: Upstream node ids in input order (set by the pipeline before a run).
        self.inputs: List[str] = []
        self._queues: Dict[str, Deque[Any]] = {}

    async def initialize(self) -> None:
        self._start_run()
        await super().initialize()

    def _start_run(self) -> None:
        self._queues = {i: deque() for i in self.inputs}

    def process(self, data: Any) -> Any:
        raise NodeError("ZipNode pairs items of several inputs; connect it in a graph", kind="config")

    def process_from(self, source: str, data: Any) -> List[Any]:
        """Takes ``data`` from upstream node ``source``; the rounds now complete."""
        queues = self._queues
        queue = queues.setdefault(source, deque())
        queue.append(data)
        if len(queue) > self.max_pending:
            queue.pop()
            waiting = [i for i in self.inputs if not queues.get(i)]
            raise NodeError(
                f"input `{source}` has {self.max_pending} items waiting for an item from "
                f"{', '.join(f'`{w}`' for w in waiting)} (max_pending); an input that drops items "
                "leaves the others unpaired",
                kind="resource",
            )
        out = []
        while all(queues.get(i) for i in self.inputs):
            out.append({i: queues[i].popleft() for i in self.inputs})
        return out

    def flush(self) -> Iterator[Any]:
        """Emits nothing more (a generator of no outputs); unpaired items left are an
        error when ``strict``."""
        left = [(i, len(q)) for i, q in self._queues.items() if q]
        self._queues = {i: deque() for i in self.inputs}
        if left:
            text = ", ".join(f"`{i}` has {n} unpaired item(s)" for i, n in left)
            if self.strict:
                raise NodeError(f"end of stream with unpaired items: {text}", kind="invalid_input")
            logger.warning("end of stream with unpaired items dropped: %s", text)
        yield from ()

    def _rust_native(self) -> Optional[Tuple[str, Dict[str, Any]]]:
        return ("Zip", dict(self.config)) if type(self) is ZipNode else None
