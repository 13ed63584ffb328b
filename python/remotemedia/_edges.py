"""The values at the edge of the pipeline data model that both executors refuse alike.

The Rust core cannot carry integers beyond 64 bits, dicts with non-``str`` keys or sets;
the pure-Python executor could, which would make the same pipeline give an answer in
one executor and an error in the other. Items entering a pipeline are checked here with
the core's own wording, so ``use_rust=False`` refuses them with the same message.
"""

from __future__ import annotations

import json
from typing import Any, Optional, Tuple, Type

_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1
_PREVIEW_CHARS = 60
_SUPPORTED = "None, bool, int, float, str, bytes, list, tuple, dict with str keys, numpy arrays"


def _preview(value: Any) -> str:
    try:
        text = repr(value)
    except Exception:  # a broken __repr__ must not hide the real problem
        text = "<unrepresentable>"
    return text if len(text) <= _PREVIEW_CHARS else text[:_PREVIEW_CHARS] + "…"


def _type_name(value: Any) -> str:
    ty = type(value)
    module = getattr(ty, "__module__", "builtins")
    return ty.__qualname__ if module == "builtins" else f"{module}.{ty.__qualname__}"


def problem(value: Any) -> Optional[Tuple[Type[Exception], str]]:
    """The exception type and message (with the path inside ``value``) for a value the
    core refuses at the edges of its data model; None when there is none."""
    found = _walk(value, 0)
    if found is None:
        return None
    exc, message, path = found
    return exc, (f"{message} (at ${path})" if path else message)


def _walk(value: Any, depth: int) -> Optional[Tuple[Type[Exception], str, str]]:
    if depth > 32:
        # Not walked deeper (a value may contain itself); past the core's nesting
        # limit the Rust core refuses the item and the Python executor passes it on.
        return None
    if isinstance(value, bool) or value is None or isinstance(value, (float, str, bytes)):
        return None
    if isinstance(value, int):
        if _I64_MIN <= value <= _I64_MAX:
            return None
        return OverflowError, f"integer {_preview(value)} does not fit a signed 64-bit int", ""
    if isinstance(value, (set, frozenset)):
        return (
            TypeError,
            f"cannot convert {_preview(value)} of type {_type_name(value)} to pipeline data; "
            f"supported: {_SUPPORTED}",
            "",
        )
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            inner = _walk(item, depth + 1)
            if inner is not None:
                return inner[0], inner[1], f"[{i}]{inner[2]}"
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return (
                    TypeError,
                    f"dict key {_preview(key)} of type {_type_name(key)} is not a str; "
                    "pipeline maps need str keys",
                    "",
                )
            inner = _walk(item, depth + 1)
            if inner is not None:
                return inner[0], inner[1], f"[{json.dumps(key, ensure_ascii=False)}]{inner[2]}"
        return None
    return None
