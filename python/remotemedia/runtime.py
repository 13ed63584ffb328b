"""The Rust core, in-process: availability, manifest validation and runs.

``Pipeline.run(use_rust=True)`` goes through this module. It can also validate or run a
manifest (JSON/YAML text or a dict) of built-in node types directly::

    from remotemedia import runtime
    runtime.validate_manifest(text)            # raises ConfigurationError
    outputs = runtime.run_manifest(text, [1, 2, 3])
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any, Dict, Iterable, List, Mapping, NoReturn, Optional, Sequence, Tuple, Union

from .core.exceptions import (
    ConfigurationError,
    InvalidInputError,
    NodeError,
    PipelineError,
    PlacementError,
    RuntimeNotAvailableError,
)

_ext: Any
_IMPORT_ERROR: Optional[ImportError]
try:
    from . import _remotemedia as _ext
except ImportError as _e:  # the extension is not built or does not load
    _ext = None
    _IMPORT_ERROR = _e
else:
    _IMPORT_ERROR = None

__all__ = [
    "BUILD_INSTRUCTIONS",
    "extension",
    "is_available",
    "node_types",
    "run_manifest",
    "validate_manifest",
]

logger = logging.getLogger("remotemedia.runtime")

#: How to get the extension, quoted by :class:`RuntimeNotAvailableError`.
BUILD_INSTRUCTIONS = (
    "Build and install it from the repository root with `pip install .` (this needs a Rust "
    "toolchain), or with `maturin develop` inside a virtualenv while developing. "
    "To run without it, call `Pipeline.run(..., use_rust=False)`."
)

Manifest = Union[str, Mapping[str, Any]]

_NODE_PATH = re.compile(r"^nodes\[(\d+)\]")


def is_available() -> bool:
    """Whether the Rust extension can be used."""
    return _ext is not None


def extension() -> Any:
    """The extension module; raises :class:`RuntimeNotAvailableError` if it cannot load."""
    if _ext is None:
        raise RuntimeNotAvailableError(
            "The remotemedia Rust extension (remotemedia._remotemedia) cannot be imported"
            f" ({_IMPORT_ERROR}). {BUILD_INSTRUCTIONS}"
        ) from _IMPORT_ERROR
    return _ext


def node_types() -> List[str]:
    """Names of the node types built into the Rust core."""
    return list(extension().node_types())


def _manifest_text(manifest: Manifest) -> str:
    if isinstance(manifest, str):
        return manifest
    try:
        return json.dumps(manifest, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise ConfigurationError(f"manifest is not JSON-serializable: {e}") from e


def _node_ids(text: str) -> List[Optional[str]]:
    try:
        doc = json.loads(text)
    except ValueError:
        return []
    nodes = doc.get("nodes") if isinstance(doc, dict) else None
    if not isinstance(nodes, list):
        return []
    return [n.get("id") if isinstance(n, dict) else None for n in nodes]


def _configuration_error(
    errors: List[Dict[str, Any]],
    text: str,
    public_ids: Optional[Mapping[str, str]] = None,
) -> ConfigurationError:
    """A :class:`ConfigurationError` listing every problem, naming the node of each."""
    ids = _node_ids(text)
    lines = []
    detailed = []
    for e in errors:
        path, message = str(e.get("path", "$")), str(e.get("message", ""))
        node_id = None
        m = _NODE_PATH.match(path)
        if m and int(m.group(1)) < len(ids):
            node_id = ids[int(m.group(1))]
            if public_ids and node_id is not None and node_id in public_ids:
                node_id = public_ids[node_id]
        line = f"{path}: {message}"
        if node_id and node_id not in message:
            line += f" (node `{node_id}`)"
        lines.append(line)
        detailed.append({"path": path, "message": message, "node_id": node_id})
    return ConfigurationError("invalid manifest:\n" + "\n".join(lines), errors=detailed)


def validate_manifest(manifest: Manifest) -> None:
    """Checks a manifest against the Rust core's node types; raises
    :class:`ConfigurationError` listing every problem."""
    text = _manifest_text(manifest)
    errors = extension().validate_manifest(text)
    if errors:
        raise _configuration_error(list(errors), text)


def placement_options(
    executors: Optional[Sequence[str]] = None,
    policy: Optional[str] = None,
    config: Optional[str] = None,
    token_file: Optional[str] = None,
    executor_ca: Optional[str] = None,
    dns_server: Optional[str] = None,
) -> Dict[str, Any]:
    """The keyword arguments of the extension's ``run_manifest`` that say where nodes
    may run (the CLI's ``--executor``, ``--policy``, ``--config``, ``--token-file``,
    ``--executor-ca``, ``--dns-server``)."""
    if (
        executors is None
        and policy is None
        and config is None
        and token_file is None
        and executor_ca is None
        and dns_server is None
    ):
        return {}
    if isinstance(executors, str):
        raise ConfigurationError(
            f"executors must be a list of NAME=HOST:PORT strings, not the string {executors!r}"
        )
    options: Dict[str, Any] = {
        "executors": list(executors) if executors is not None else None,
        "policy": policy,
        "config": None if config is None else str(config),
        "token_file": None if token_file is None else str(token_file),
        "executor_ca": None if executor_ca is None else str(executor_ca),
        "dns_server": dns_server,
    }
    return {k: v for k, v in options.items() if v is not None}


def run_manifest(
    manifest: Manifest,
    inputs: Iterable[Any] = (),
    *,
    executors: Optional[Sequence[str]] = None,
    policy: Optional[str] = None,
    config: Optional[str] = None,
    token_file: Optional[str] = None,
    executor_ca: Optional[str] = None,
    dns_server: Optional[str] = None,
) -> List[Any]:
    """Runs a manifest over ``inputs`` as ``remotemedia run`` does; returns every output.

    Any manifest the CLI runs runs here: every node type it has (``PythonNode``
    included), and the same placement: nodes' ``host`` and ``capabilities``, executors
    from ``executors`` (``NAME=HOST:PORT``, ``NAME=https://HOST:PORT``,
    ``dns+srv://…``, ``dns://…``), ``REMOTEMEDIA_EXECUTORS`` and ``remotemedia.toml``
    (or ``config``), chosen among by ``policy`` (``greedy``, ``balanced``, ``latency``,
    ``cost``). Remote stages fail over like the CLI's.

    Raises :class:`ConfigurationError` for an invalid manifest or executor
    configuration, :class:`PlacementError` when a node has no place (the CLI's
    message), and :class:`NodeError` when a node fails.
    """
    text = _manifest_text(manifest)
    options = placement_options(executors, policy, config, token_file, executor_ca, dns_server)
    report = extension().run_manifest(text, list(inputs), None, None, **options)
    return outputs_or_raise(report, text)


def outputs_or_raise(
    report: Mapping[str, Any],
    manifest_text: str,
    nodes: Optional[Mapping[str, Tuple[str, str]]] = None,
) -> List[Any]:
    """The outputs of a run report, or the exception it describes.

    ``nodes`` maps the ids used in the manifest to the ``(node_id, node_type)`` to report
    (the SDK's names for them).
    """
    for w in report.get("warnings") or ():
        logger.warning("%s", w)
    for e in report.get("cleanup_errors") or ():
        logger.warning("cleanup failed: %s", _node_error(e, nodes))
    error = report.get("error")
    if error is not None:
        raise_failure(error, manifest_text, nodes)
    return list(report["outputs"])


def _node_error(error: Mapping[str, Any], nodes: Optional[Mapping[str, Tuple[str, str]]]) -> NodeError:
    node_id, node_type = error.get("node_id"), error.get("node_type")
    if nodes and isinstance(node_id, str) and node_id in nodes:
        node_id, node_type = nodes[node_id]
    return NodeError(
        str(error.get("message", "")),
        node_id=node_id,
        node_type=node_type,
        kind=error.get("kind"),
        phase=error.get("phase", "process"),
        traceback=error.get("traceback"),
        input_preview=error.get("input_preview"),
        attempts=int(error.get("attempts") or 1),
    )


def raise_failure(
    error: Mapping[str, Any],
    manifest_text: str,
    nodes: Optional[Mapping[str, Tuple[str, str]]] = None,
) -> NoReturn:
    """Raises the exception described by the ``error`` of a run report."""
    kind = error.get("type")
    if kind == "manifest":
        public = {k: v[0] for k, v in nodes.items()} if nodes else None
        raise _configuration_error(list(error.get("errors") or ()), manifest_text, public)
    if kind == "input":
        cause = error.get("cause")
        raise InvalidInputError(str(error.get("message", "")), index=error.get("index")) from (
            cause if isinstance(cause, BaseException) else None
        )
    if kind == "node":
        exc = _node_error(error, nodes)
        cause = error.get("cause")
        if isinstance(cause, BaseException):
            raise exc from cause
        raise exc
    if kind == "build":
        node_id, node_type = error.get("node_id"), error.get("node_type")
        if nodes and isinstance(node_id, str) and node_id in nodes:
            node_id, node_type = nodes[node_id]
        raise ConfigurationError(
            f"cannot build node `{node_id}` ({node_type}): {error.get('message')}",
            errors=[{"path": "$", "message": str(error.get("message")), "node_id": node_id}],
        )
    if kind == "placement":
        raise PlacementError(str(error.get("message")))
    if kind == "config":
        message = str(error.get("message"))
        raise ConfigurationError(message, errors=[{"path": "$", "message": message, "node_id": None}])
    raise PipelineError(str(error.get("message", "pipeline run failed")))
