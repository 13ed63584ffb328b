"""Arithmetic with Python's rules, identical to the Rust ``Calculator`` node.

Two input forms:

- a number, combined with the node's ``operand`` by its ``operation``;
- a dict ``{"operation": op, "args": [a, b]}``, emitted back with ``"result"`` added.

int with int stays int (except ``divide``, always a float), a float on either side
gives a float. Results must fit a signed 64-bit int, and division by zero is an error:
both raise :class:`~remotemedia.core.exceptions.NodeError` (kind ``"arithmetic"``)
rather than producing a big int or an error value, exactly as the Rust node does.
"""

from __future__ import annotations

import decimal
import math
import numbers
from typing import Any, Dict, List, Optional, Tuple, Union

from ..core.exceptions import ConfigurationError, NodeError
from ..core.node import Node

__all__ = ["OPERATIONS", "CalculatorNode"]

#: Supported operations, in the documented order.
OPERATIONS: Tuple[str, ...] = ("add", "subtract", "multiply", "divide", "power", "modulo")

_I64_MIN = -(2**63)
_I64_MAX = 2**63 - 1

Number = Union[int, float]


def _arith(message: str) -> NodeError:
    return NodeError(message, kind="arithmetic")


def _fmt(v: float) -> str:
    """A float as Rust prints it (no exponent, no trailing ``.0``)."""
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    s = repr(v)
    if "e" in s or "E" in s:
        s = format(decimal.Decimal(s), "f")
    if s.endswith(".0"):
        s = s[:-2]
    return s


def _type_name(v: Any) -> str:
    """The pipeline's name for a value's type (as in the Rust node's messages)."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, numbers.Integral):
        return "int"
    if isinstance(v, numbers.Real):
        return "float"
    if isinstance(v, str):
        return "text"
    if isinstance(v, (bytes, bytearray, memoryview)):
        return "bytes"
    if isinstance(v, (list, tuple)):
        return "list"
    if isinstance(v, dict):
        return "map"
    if type(v).__name__ == "ndarray":
        return "tensor"
    return type(v).__name__


def _number(v: Any) -> Optional[Number]:
    if isinstance(v, bool):
        return None
    if type(v) is int or type(v) is float:
        return v
    if isinstance(v, numbers.Integral):
        return int(v)
    if isinstance(v, numbers.Real):
        return float(v)
    return None


def _fmod(x: float, y: float) -> float:
    """C's ``fmod`` (Rust's ``%``), without Python's exception for infinite ``x``."""
    if math.isnan(x) or math.isnan(y) or math.isinf(x):
        return math.nan
    return math.fmod(x, y)


def _overflow(op: str, x: Any, y: Any) -> NodeError:
    return _arith(f"integer overflow: {op} of {x} and {y} does not fit a signed 64-bit int")


def _apply_int(op: str, x: int, y: int) -> Number:
    if op == "add":
        r = x + y
    elif op == "subtract":
        r = x - y
    elif op == "multiply":
        r = x * y
    elif op == "divide":
        if y == 0:
            raise _arith("division by zero")
        return float(x) / float(y)
    elif op == "modulo":
        if y == 0:
            raise _arith("integer modulo by zero")
        r = x % y
    else:  # power
        if y < 0:
            if x == 0:
                raise _arith("0 cannot be raised to a negative power")
            return _apply_float(op, float(x), float(y))
        if abs(x) >= 2 and y >= 64:
            raise _overflow(op, x, y)
        r = x**y
    if not _I64_MIN <= r <= _I64_MAX:
        raise _overflow(op, x, y)
    return r


def _apply_float(op: str, x: float, y: float) -> float:
    if op == "add":
        return x + y
    if op == "subtract":
        return x - y
    if op == "multiply":
        return x * y
    if op == "divide":
        if y == 0.0:
            raise _arith("float division by zero")
        return x / y
    if op == "modulo":
        if y == 0.0:
            raise _arith("float modulo by zero")
        r = _fmod(x, y)
        if r != 0.0 and ((r < 0.0) != (y < 0.0)):
            return r + y
        if r == 0.0:
            return math.copysign(0.0, y)
        return r
    # power
    if x == 0.0 and y < 0.0:
        raise _arith("0.0 cannot be raised to a negative power")
    if x < 0.0 and math.isfinite(y) and y != math.floor(y):
        raise _arith(
            f"{_fmt(x)} ** {_fmt(y)} is a complex number; Calculator works with real numbers"
        )
    try:
        result: float = x**y
    except OverflowError:
        raise _arith(f"float overflow: {_fmt(x)} ** {_fmt(y)} is out of range") from None
    return result


def apply(op: str, a: Any, b: Any) -> Number:
    """Applies operation ``op`` to two numbers with the Rust ``Calculator``'s rules."""
    x, y = _number(a), _number(b)
    if x is None or y is None:
        bad = b if x is not None else a
        raise NodeError(f"{op} needs numbers, got {_type_name(bad)}", kind="invalid_input")
    if isinstance(x, int) and isinstance(y, int):
        return _apply_int(op, x, y)
    return _apply_float(op, float(x), float(y))


class CalculatorNode(Node):
    """Arithmetic node; see the module docs. Runs as the Rust ``Calculator`` node.

    ``operation`` (one of :data:`OPERATIONS`) and ``operand`` (a number) are given
    together or not at all; without them the node only accepts the dict form.
    """

    def __init__(
        self,
        operation: Optional[str] = None,
        operand: Optional[Number] = None,
        name: Optional[str] = None,
        **kwargs: Any,
    ) -> None:
        """Creates a calculator; raises :class:`ConfigurationError` for bad params."""
        if (operation is None) != (operand is None):
            raise ConfigurationError(
                "CalculatorNode needs both `operation` and `operand`, or neither"
            )
        if operation is not None and operation not in OPERATIONS:
            raise ConfigurationError(
                f"unknown operation {operation!r}; expected one of {', '.join(OPERATIONS)}"
            )
        if operand is not None:
            if isinstance(operand, bool) or not isinstance(operand, (int, float)):
                raise ConfigurationError(f"operand must be a number, got {operand!r}")
            if isinstance(operand, float) and not math.isfinite(operand):
                raise ConfigurationError(f"operand must be finite, got {operand!r}")
            if isinstance(operand, int) and not _I64_MIN <= operand <= _I64_MAX:
                raise ConfigurationError(f"operand {operand} does not fit a signed 64-bit int")
        super().__init__(name=name, **kwargs)
        self.operation = operation
        self.operand = operand
        if operation is not None:
            self.config["operation"] = operation
            self.config["operand"] = operand

    def get_supported_operations(self) -> List[str]:
        """The operation names this node accepts."""
        return list(OPERATIONS)

    def process(self, data: Any) -> Any:
        """Computes the result for a number or an ``{"operation", "args"}`` dict."""
        if _number(data) is not None:
            if self.operation is None:
                raise NodeError(
                    "received a number but this Calculator has no `operation`/`operand` "
                    'params; configure them or send {"operation": ..., "args": [a, b]}',
                    kind="config",
                )
            return apply(self.operation, data, self.operand)
        if isinstance(data, dict):
            op = data.get("operation")
            if not isinstance(op, str):
                raise NodeError("map input needs a string field `operation`", kind="invalid_input")
            if op not in OPERATIONS:
                raise NodeError(
                    f'unknown operation "{op}"; expected one of {", ".join(OPERATIONS)}',
                    kind="invalid_input",
                )
            args = data.get("args")
            if not isinstance(args, (list, tuple)):
                raise NodeError(
                    "map input needs a list field `args` of two numbers", kind="invalid_input"
                )
            if len(args) != 2:
                raise NodeError(
                    f"`args` must hold exactly two numbers, got {len(args)}", kind="invalid_input"
                )
            out = dict(data)
            out["result"] = apply(op, args[0], args[1])
            return out
        raise NodeError(
            f'Calculator accepts a number or {{"operation", "args"}} map, got {_type_name(data)}',
            kind="invalid_input",
        )

    def _extract_params(self) -> Dict[str, Any]:
        if self.operation is None:
            return {}
        return {"operation": self.operation, "operand": self.operand}

    def _rust_native(self) -> Optional[Tuple[str, Dict[str, Any]]]:
        if type(self) is not CalculatorNode:
            return None
        return ("Calculator", self._extract_params())
