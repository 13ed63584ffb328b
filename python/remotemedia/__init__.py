"""remotemedia: media/AI pipelines in Python, executed by a Rust core.

Build a :class:`Pipeline` of :class:`Node` objects and ``await pipeline.run(data)``.
Built-in nodes run as native Rust nodes; your own ``Node`` subclasses run as Python
called back from Rust. ``use_rust=False`` runs everything in Python instead.
"""

from .core.exceptions import (
    ConfigurationError,
    InvalidInputError,
    NodeError,
    PipelineError,
    RemoteMediaError,
    PlacementError,
    RuntimeNotAvailableError,
)
from .core.node import Node
from .core.pipeline import Pipeline
from .nodes import (
    BufferNode,
    CalculatorNode,
    DataSinkNode,
    DataSourceNode,
    EchoNode,
    FilterNode,
    PassThroughNode,
    ZipNode,
)
from .runtime import is_available as is_rust_runtime_available


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("remotemedia")
    except Exception:  # not installed (running from a source tree)
        return "0.0.0"


__version__ = _version()

__all__ = [
    "BufferNode",
    "CalculatorNode",
    "ConfigurationError",
    "InvalidInputError",
    "DataSinkNode",
    "DataSourceNode",
    "EchoNode",
    "FilterNode",
    "Node",
    "NodeError",
    "PassThroughNode",
    "ZipNode",
    "Pipeline",
    "PipelineError",
    "RemoteMediaError",
    "PlacementError",
    "RuntimeNotAvailableError",
    "__version__",
    "is_rust_runtime_available",
]
