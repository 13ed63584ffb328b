"""Exceptions raised by the remotemedia SDK.

Every exception derives from :class:`RemoteMediaError`. A node that fails while a
pipeline runs is reported as a :class:`NodeError` naming the node; the exception the
node's Python code raised (if any) is its ``__cause__``, with its traceback.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

__all__ = [
    "ERROR_KINDS",
    "ConfigurationError",
    "InvalidInputError",
    "NodeError",
    "PipelineError",
    "PlacementError",
    "RemoteMediaError",
    "RuntimeNotAvailableError",
]

#: Values of :attr:`NodeError.kind`, shared with the Rust core.
ERROR_KINDS = (
    "invalid_input",
    "arithmetic",
    "config",
    "initialize",
    "resource",
    "io",
    "timeout",
    "panic",
    "python",
    "crashed",
    "cancelled",
    "other",
)


class RemoteMediaError(Exception):
    """Base class of every remotemedia error."""


class PipelineError(RemoteMediaError):
    """A pipeline was used wrongly (empty, not initialized, changed while initialized, …)."""


class PlacementError(PipelineError):
    """No place for a node: no executor fits (or none is configured), or its remote
    stage cannot be set up. The message is the one ``remotemedia run`` prints for the
    same pipeline, naming each node and every executor considered."""


class ConfigurationError(RemoteMediaError):
    """A node or manifest is misconfigured.

    ``errors`` lists every problem found as dicts with ``path`` (where in the manifest,
    e.g. ``nodes[1].params.operation``), ``message`` and, when the problem is in one node,
    ``node_id``.
    """

    def __init__(self, message: str, *, errors: Optional[List[Dict[str, Any]]] = None) -> None:
        super().__init__(message)
        self.message = message
        self.errors: List[Dict[str, Any]] = list(errors or [])


class RuntimeNotAvailableError(PipelineError, ImportError):
    """The Rust extension (``remotemedia._remotemedia``) cannot be imported."""


class NodeError(RemoteMediaError):
    """A node failed.

    Raise it from a node's ``process`` to report a failure of a specific ``kind``
    (for example ``NodeError("expected a number", kind="invalid_input")``); any other
    exception is reported with kind ``"python"``. When the pipeline reports a failure,
    the attributes say which node failed and how:

    - ``node_id``: the node's id in the pipeline (``f"{node.name}_{index}"``);
    - ``node_type``: the node's class name;
    - ``kind``: one of :data:`ERROR_KINDS`;
    - ``message``: what went wrong (``"ValueError: bad item"`` for a Python exception);
    - ``phase``: ``"initialize"``, ``"process"``, ``"finish"`` or ``"cleanup"``;
    - ``traceback``: the formatted Python traceback, when the node raised;
    - ``input_preview``: a short rendering of the item that failed, when there was one.
    """

    def __init__(
        self,
        message: str = "",
        *,
        node_id: Optional[str] = None,
        node_type: Optional[str] = None,
        kind: Optional[str] = None,
        phase: Optional[str] = None,
        traceback: Optional[str] = None,
        input_preview: Optional[str] = None,
        attempts: int = 1,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.node_id = node_id
        self.node_type = node_type
        self.kind = kind
        self.phase = phase
        self.traceback = traceback
        self.input_preview = input_preview
        self.attempts = attempts

    def __str__(self) -> str:
        if self.node_id is None:
            return self.message
        text = f"node `{self.node_id}` ({self.node_type}) failed"
        if self.phase:
            text += f" in {self.phase}"
        text += f": {self.kind or 'python'}: {self.message}"
        if self.attempts > 1:
            text += f" (after {self.attempts} attempts)"
        if self.input_preview is not None:
            text += f"; input: {self.input_preview}"
        return text

    def __reduce__(self) -> Tuple[Any, ...]:  # keep the keyword attributes when pickled
        return (
            _rebuild_node_error,
            (
                self.message,
                {
                    "node_id": self.node_id,
                    "node_type": self.node_type,
                    "kind": self.kind,
                    "phase": self.phase,
                    "traceback": self.traceback,
                    "input_preview": self.input_preview,
                    "attempts": self.attempts,
                },
            ),
        )


class InvalidInputError(NodeError, PipelineError):
    """An input item cannot enter the pipeline (not pipeline data: an int beyond 64
    bits, a dict with a non-``str`` key, a set, an object of another type).

    Raised alike by both executors, before any node sees the item: ``node_id`` is None
    (no node is to blame), ``kind`` is ``"invalid_input"``, ``index`` the item's
    position in the input and the message names the value's type and where inside it
    the problem is (``$["key"][2]``). The ``TypeError``/``OverflowError`` is its
    ``__cause__``.
    """

    def __init__(self, message: str = "", *, index: Optional[int] = None, **kwargs: Any) -> None:
        kwargs.setdefault("kind", "invalid_input")
        super().__init__(message, **kwargs)
        self.index = index

    def __reduce__(self) -> Tuple[Any, ...]:
        return (InvalidInputError, (self.message,), {"index": self.index, "kind": self.kind})


def _rebuild_node_error(message: str, fields: Dict[str, Any]) -> NodeError:
    return NodeError(message, **fields)
