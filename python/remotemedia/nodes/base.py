"""Basic utility nodes: :class:`PassThroughNode` and :class:`BufferNode`."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from ..core.exceptions import ConfigurationError
from ..core.node import Node

__all__ = ["BufferNode", "PassThroughNode"]


class PassThroughNode(Node):
    """Emits every item unchanged. Runs as the Rust ``PassThrough`` node."""

    def process(self, data: Any) -> Any:
        """Returns ``data``."""
        return data

    def _rust_native(self) -> Optional[Tuple[str, Dict[str, Any]]]:
        return ("PassThrough", {}) if type(self) is PassThroughNode else None


class BufferNode(Node):
    """Collects items into lists of ``buffer_size``; what is left is emitted at the end
    of the stream. Runs as Python in both executors."""

    def __init__(self, buffer_size: int = 10, **kwargs: Any) -> None:
        """Creates a buffer emitting lists of ``buffer_size`` items (at least 1)."""
        if isinstance(buffer_size, bool) or not isinstance(buffer_size, int) or buffer_size < 1:
            raise ConfigurationError(f"buffer_size must be a positive int, got {buffer_size!r}")
        super().__init__(**kwargs)
        self.buffer_size = buffer_size
        self.config["buffer_size"] = buffer_size
        self.buffer: List[Any] = []

    async def initialize(self) -> None:
        """Starts with an empty buffer."""
        self.buffer = []
        await super().initialize()

    def process(self, data: Any) -> Optional[List[Any]]:
        """Adds ``data``; returns the full buffer when it reaches ``buffer_size``."""
        self.buffer.append(data)
        if len(self.buffer) >= self.buffer_size:
            full, self.buffer = self.buffer, []
            return full
        return None

    def flush(self) -> Optional[List[Any]]:
        """The items still buffered (None if there are none)."""
        if not self.buffer:
            return None
        rest, self.buffer = self.buffer, []
        return rest
