"""Built-in nodes. ``PassThroughNode``, ``CalculatorNode``, ``FilterNode``,
``ZipNode``, ``EchoNode``, ``DataSourceNode`` and a ``DataSinkNode`` without callback
run as native Rust nodes under ``use_rust=True``."""

from .base import BufferNode, PassThroughNode
from .calculator import CalculatorNode
from .flow import EchoNode, FilterNode, ZipNode
from .io_nodes import DataSinkNode, DataSourceNode

__all__ = [
    "BufferNode",
    "CalculatorNode",
    "DataSinkNode",
    "DataSourceNode",
    "EchoNode",
    "FilterNode",
    "PassThroughNode",
    "ZipNode",
]
