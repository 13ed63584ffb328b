"""Entry and exit points of a pipeline: :class:`DataSourceNode`, :class:`DataSinkNode`."""

from __future__ import annotations

import inspect
from typing import Any, Awaitable, Callable, Dict, Optional, Tuple

from ..core.node import Node

__all__ = ["DataSinkNode", "DataSourceNode"]


class DataSourceNode(Node):
    """Marks where the pipeline's input enters: emits every input item unchanged.

    Runs as the Rust ``PassThrough`` node and is written as one in manifests.
    """

    def process(self, data: Any) -> Any:
        """Returns ``data``."""
        return data

    def _manifest_node_type(self) -> str:
        return "PassThrough"

    def _rust_native(self) -> Optional[Tuple[str, Dict[str, Any]]]:
        return ("PassThrough", {}) if type(self) is DataSourceNode else None


async def _after(result: Awaitable[Any], data: Any) -> Any:
    await result
    return data


class DataSinkNode(Node):
    """Marks where the pipeline's output leaves: calls ``callback(item)`` (plain or
    async) for every item, then emits the item unchanged.

    Without a callback it runs as the Rust ``PassThrough`` node; with one it runs as
    Python, called back from Rust.
    """

    def __init__(
        self,
        callback: Optional[Callable[[Any], Any]] = None,
        name: Optional[str] = None,
        **kwargs: Any,
    ) -> None:
        """Creates a sink calling ``callback`` with each item."""
        super().__init__(name=name, **kwargs)
        self.callback = callback

    def process(self, data: Any) -> Any:
        """Calls the callback with ``data`` and returns ``data``."""
        if self.callback is not None:
            result = self.callback(data)
            if inspect.isawaitable(result):
                return _after(result, data)
        return data

    def _manifest_node_type(self) -> str:
        return "PassThrough" if self.callback is None else type(self).__name__

    def _rust_native(self) -> Optional[Tuple[str, Dict[str, Any]]]:
        if type(self) is DataSinkNode and self.callback is None:
            return ("PassThrough", {})
        return None
