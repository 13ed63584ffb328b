"""Core classes: :class:`Pipeline`, :class:`Node` and the exceptions."""

from .exceptions import (
    ConfigurationError,
    InvalidInputError,
    NodeError,
    PipelineError,
    RemoteMediaError,
    PlacementError,
    RuntimeNotAvailableError,
)
from .node import Node
from .pipeline import Pipeline

__all__ = [
    "ConfigurationError",
    "InvalidInputError",
    "Node",
    "NodeError",
    "Pipeline",
    "PipelineError",
    "RemoteMediaError",
    "PlacementError",
    "RuntimeNotAvailableError",
]
