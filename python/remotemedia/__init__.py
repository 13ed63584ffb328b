"""remotemedia: media/AI pipelines in Python, executed by a Rust core.

Build a :class:`Pipeline` of :class:`Node` objects and ``await pipeline.run(data)``.
Built-in nodes run as native Rust nodes; your own ``Node`` subclasses run as Python
called back from Rust. ``use_rust=False`` runs everything in Python instead.
"""

import sys as _sys
from typing import TYPE_CHECKING

from . import _audio_buffer

if TYPE_CHECKING:
    from ._audio_buffer import AudioBuffer as AudioBuffer
else:
    #: PCM audio, the one shape audio has in Python (``remotemedia._audio_buffer``).
    #: Taken from ``_remotemedia_audio`` so that it is the class the runtime's hosts
    #: use even when one of them loaded it before this package.
    AudioBuffer = _sys.modules["_remotemedia_audio"].AudioBuffer

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
    "AudioBuffer",
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
