"""Type stubs for the compiled extension ``remotemedia._remotemedia``."""

from typing import Any, Dict, Iterable, List, Mapping, Optional, Union

__version__: str
#: Node type under which Python nodes appear in execution manifests.
PYTHON_CALLBACK_TYPE: str

class DataBuffer:
    """Read-only buffer over pipeline memory; the ``base`` of arrays from the core."""

    def __len__(self) -> int: ...

def run_manifest(
    manifest: str,
    inputs: Iterable[Any],
    python_nodes: Optional[Mapping[str, Any]] = None,
    batch_size: Optional[int] = None,
    *,
    executors: Optional[List[str]] = None,
    policy: Optional[str] = None,
    config: Optional[str] = None,
    token_file: Optional[str] = None,
    executor_ca: Optional[str] = None,
    dns_server: Optional[str] = None,
) -> Dict[str, Any]:
    """Validates, places (as ``remotemedia run`` does) and runs a manifest with the GIL
    released.

    Returns ``{"outputs": list, "error": dict | None, "cleanup_errors": list,
    "skipped": list, "metrics": dict | None, "warnings": list[str]}``; failures are
    reported, not raised (``error["type"]``: ``manifest``, ``input``, ``config``,
    ``placement``, ``node``, ``build`` or ``runtime``).
    ``python_nodes`` maps ``PythonCallback`` handles to host objects with
    ``initialize()``, ``process(item) -> list``, ``flush() -> list``, ``cleanup()`` and
    ``describe_error(exc) -> (kind, message, traceback)``.
    """

class StreamSession:
    """A streaming session in the Rust core (from :func:`start_stream`)."""

    warnings: List[str]

    def send(self, items: List[Any]) -> Optional[Union[Dict[str, Any], bool]]:
        """Sends items, waiting (GIL released) while the pipeline is full: ``None`` when
        sent, an input error dict for an item that cannot become pipeline data,
        ``False`` once the session takes no more input."""

    def close_input(self) -> None:
        """Ends the input stream."""

    def recv(self) -> Optional[List[Any]]:
        """The next outputs, waiting (GIL released); ``None`` at the end."""

    def cancel(self) -> None:
        """Stops the session (later node calls fail as cancelled)."""

    def finish(self) -> Dict[str, Any]:
        """Waits for the end; the run report (outputs not yet received, error)."""

def start_stream(
    manifest: str,
    python_nodes: Optional[Mapping[str, Any]] = None,
    batch_size: Optional[int] = None,
    *,
    executors: Optional[List[str]] = None,
    policy: Optional[str] = None,
    config: Optional[str] = None,
    token_file: Optional[str] = None,
    executor_ca: Optional[str] = None,
    dns_server: Optional[str] = None,
) -> Dict[str, Any]:
    """Loads, places and starts a streaming session: ``{"session": StreamSession}``, or
    a run report whose ``error`` says why it cannot start."""

class PreparedManifest:
    """A manifest of native nodes validated once, for :func:`run_prepared`."""

    def needs_placement(self, **placement: Any) -> bool:
        """Whether a run with these placement arguments asks executors first."""

def prepare_manifest(manifest: str) -> Dict[str, Any]:
    """``{"prepared": PreparedManifest}``, or a run report whose ``error`` says why the
    manifest is not valid."""

def run_prepared(
    prepared: PreparedManifest,
    inputs: Iterable[Any],
    batch_size: Optional[int] = None,
    *,
    executors: Optional[List[str]] = None,
    policy: Optional[str] = None,
    config: Optional[str] = None,
    token_file: Optional[str] = None,
    executor_ca: Optional[str] = None,
    dns_server: Optional[str] = None,
) -> Dict[str, Any]:
    """Like :func:`run_manifest` for a prepared manifest; the report's ``metrics`` is
    ``None``."""

def validate_manifest(manifest: str) -> List[Dict[str, str]]:
    """Every problem in a manifest as ``{"path", "message"}`` dicts (empty: valid)."""

def node_types() -> List[str]:
    """Canonical names of the built-in node types."""

def roundtrip(value: Any) -> Any:
    """Converts ``value`` to pipeline data and back, as crossing into the core does."""
