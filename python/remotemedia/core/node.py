"""The :class:`Node` base class: one processing step of a pipeline."""

from __future__ import annotations

import copy
import logging
from abc import ABC, abstractmethod
from typing import Any, Dict, Optional, Tuple

__all__ = ["Node"]


class Node(ABC):
    """Base class of every processing node.

    Subclasses implement :meth:`process`, which may be a plain function, an ``async def``,
    a generator or an async generator:

    - a plain or async ``process`` returns one output per item, or ``None`` to emit
      nothing for that item;
    - a generator or async generator yields any number of outputs (``None`` values are
      skipped).

    Optional hooks: ``async initialize()`` and ``async cleanup()`` run once around a
    pipeline run (plain functions work too), and ``flush()`` (plain or async) returns
    what is left at the end of the stream. State kept on ``self`` persists across items.

    ``capabilities`` (a dict in the manifest's capability form, e.g.
    ``{"gpu": {"type": "cuda"}, "memory_gb": 4}``) and ``host`` (``"name:port"``) are
    optional and end up in the node's manifest entry.
    """

    #: What the node needs to run, in the manifest's capability form.
    capabilities: Optional[Dict[str, Any]] = None
    #: Executor to run on, as ``"name:port"``.
    host: Optional[str] = None

    def __init__(self, name: Optional[str] = None, **kwargs: Any) -> None:
        """Creates a node named ``name`` (default: the class name) with config ``kwargs``."""
        self.name: str = name or self.__class__.__name__
        self.config: Dict[str, Any] = dict(kwargs)
        self._is_initialized = False
        self.logger = logging.getLogger(f"remotemedia.nodes.{self.__class__.__name__}")

    @abstractmethod
    def process(self, data: Any) -> Any:
        """Processes one item; see the class docs for the forms it may take."""

    async def initialize(self) -> None:
        """Prepares the node; called once before the first item."""
        self._is_initialized = True

    async def cleanup(self) -> None:
        """Releases what :meth:`initialize` acquired; called once at the end, always."""
        self._is_initialized = False

    @property
    def is_initialized(self) -> bool:
        """Whether :meth:`initialize` ran and :meth:`cleanup` has not yet."""
        return self._is_initialized

    def get_config(self) -> Dict[str, Any]:
        """The node's name, class and config."""
        return {
            "name": self.name,
            "class": self.__class__.__name__,
            "config": dict(self.config),
        }

    def get_capabilities(self) -> Optional[Dict[str, Any]]:
        """Capability requirements (default: the ``capabilities`` attribute)."""
        caps = self.capabilities
        return copy.deepcopy(caps) if caps else None

    def to_manifest(self, include_capabilities: bool = True) -> Dict[str, Any]:
        """The node as a manifest v1 node entry.

        ``id`` is the node's name (a pipeline replaces it with ``f"{name}_{index}"``),
        ``node_type`` the class name and ``params`` the config.
        """
        manifest: Dict[str, Any] = {
            "id": self.name,
            "node_type": self._manifest_node_type(),
            "params": self._extract_params(),
        }
        if include_capabilities:
            caps = self.get_capabilities()
            if caps:
                manifest["capabilities"] = caps
        if self.host:
            manifest["host"] = self.host
        return manifest

    def _manifest_node_type(self) -> str:
        """The ``node_type`` written by :meth:`to_manifest`."""
        return self.__class__.__name__

    def _extract_params(self) -> Dict[str, Any]:
        """The ``params`` written by :meth:`to_manifest` (default: a copy of the config)."""
        return copy.deepcopy(self.config)

    def _rust_native(self) -> Optional[Tuple[str, Dict[str, Any]]]:
        """``(node_type, params)`` of the built-in Rust node that replaces this node when
        a pipeline runs in the Rust core, or ``None`` to call this object from Rust.

        Only the SDK's built-in node classes return a value, and only for their exact
        class: a subclass may override ``process`` and so always runs as Python.
        """
        return None

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(name={self.name!r})"
