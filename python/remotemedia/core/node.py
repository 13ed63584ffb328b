"""The :class:`Node` base class: one processing step of a pipeline."""

from __future__ import annotations

import copy
import functools
import importlib
import inspect
import json
import logging
import sys
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

from .exceptions import ConfigurationError

__all__ = ["Node"]


class Node(ABC):
    """Base class of every processing node.

    Subclasses implement :meth:`process`, which may be a plain function, an ``async def``,
    a generator or an async generator:

    - a plain or async ``process`` returns one output per item, or ``None`` to emit
      nothing for that item;
    - a generator or async generator yields any number of outputs (``None`` values are
      skipped).

    Optional hooks: ``async initialize()`` and ``async cleanup()`` run once around a
    pipeline run (plain functions work too), and ``flush()`` (plain or async) returns
    what is left at the end of the stream. State kept on ``self`` persists across items.

    ``capabilities`` (a dict in the manifest's capability form, e.g.
    ``{"gpu": {"type": "cuda"}, "memory_gb": 4}``) and ``host`` (``"name:port"``) are
    optional and end up in the node's manifest entry.
    """

    #: What the node needs to run, in the manifest's capability form.
    capabilities: Optional[Dict[str, Any]] = None
    #: Executor to run on, as ``"name:port"``.
    host: Optional[str] = None
    #: Whether the pure-Python executor can run this node (False for nodes only the
    #: Rust core implements).
    _runs_in_python: bool = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is not None and not hasattr(init, "__remotemedia_recorded__"):

            @functools.wraps(init)
            def recorded(self: Any, *args: Any, **kw: Any) -> None:
                _record_init(self, args, kw)
                init(self, *args, **kw)

            recorded.__remotemedia_recorded__ = True  # type: ignore[attr-defined]
            cls.__init__ = recorded  # type: ignore[method-assign]

    def __init__(self, name: Optional[str] = None, **kwargs: Any) -> None:
        """Creates a node named ``name`` (default: the class name) with config ``kwargs``."""
        _record_init(self, (), kwargs if name is None else {"name": name, **kwargs})
        self.name: str = name or self.__class__.__name__
        self.config: Dict[str, Any] = dict(kwargs)
        self._is_initialized = False
        self.logger = logging.getLogger(f"remotemedia.nodes.{self.__class__.__name__}")

    @abstractmethod
    def process(self, data: Any) -> Any:
        """Processes one item; see the class docs for the forms it may take."""

    async def initialize(self) -> None:
        """Prepares the node; called once before the first item."""
        self._is_initialized = True

    async def cleanup(self) -> None:
        """Releases what :meth:`initialize` acquired; called once at the end, always."""
        self._is_initialized = False

    @property
    def is_initialized(self) -> bool:
        """Whether :meth:`initialize` ran and :meth:`cleanup` has not yet."""
        return self._is_initialized

    def get_config(self) -> Dict[str, Any]:
        """The node's name, class and config."""
        return {
            "name": self.name,
            "class": self.__class__.__name__,
            "config": dict(self.config),
        }

    def get_capabilities(self) -> Optional[Dict[str, Any]]:
        """Capability requirements (default: the ``capabilities`` attribute)."""
        caps = self.capabilities
        return copy.deepcopy(caps) if caps else None

    def to_manifest(self, include_capabilities: bool = True) -> Dict[str, Any]:
        """The node as a manifest v1 node entry.

        ``id`` is the node's name (a pipeline replaces it with ``f"{name}_{index}"``),
        ``node_type`` the class name and ``params`` the config.
        :meth:`Pipeline.serialize` writes nodes the runtime does not have natively as
        ``PythonNode`` references instead (see :meth:`serialized`).
        """
        manifest: Dict[str, Any] = {
            "id": self.name,
            "node_type": self._manifest_node_type(),
            "params": self._extract_params(),
        }
        if include_capabilities:
            caps = self.get_capabilities()
            if caps:
                manifest["capabilities"] = caps
        if self.host:
            manifest["host"] = self.host
        return manifest

    def serialized(self, include_capabilities: bool = True) -> Dict[str, Any]:
        """The node's entry in :meth:`Pipeline.serialize`'s manifest, which
        ``remotemedia run`` runs as it is.

        A node the runtime has natively (the SDK's built-in classes, or a class that
        overrides ``to_manifest`` or ``_manifest_node_type``) is its
        :meth:`to_manifest`. Any other class is written as a ``PythonNode`` naming its
        ``module`` and ``class``, with ``init`` the arguments its constructor was
        called with and ``python_path`` the directory its module was imported from, so
        that the runtime imports and builds the same class. A class the runtime could
        not import (defined in ``__main__`` or inside a function), or constructor
        arguments that are not JSON, raise :class:`ConfigurationError`.
        """
        entry = self.to_manifest(include_capabilities)
        if type(self).to_manifest is Node.to_manifest and not self._is_native():
            entry["node_type"] = "PythonNode"
            entry["params"] = self._python_reference()
        return entry

    def _manifest_node_type(self) -> str:
        """The ``node_type`` written by :meth:`to_manifest`."""
        return self.__class__.__name__

    def _is_native(self) -> bool:
        """Whether the runtime has this node natively (the SDK's built-in classes, or a
        class that says which node type it is by overriding ``_manifest_node_type``)."""
        cls = type(self)
        return self._rust_native() is not None or cls._manifest_node_type is not Node._manifest_node_type

    def _python_reference(self) -> Dict[str, Any]:
        """``PythonNode`` params that make the runtime import and build this class."""
        cls = type(self)
        where = f"node `{self.name}` ({cls.__name__})"
        module_name, qualname = cls.__module__, cls.__qualname__
        if module_name == "__main__" or "<locals>" in qualname:
            place = "in __main__" if module_name == "__main__" else "inside a function"
            raise ConfigurationError(
                f"{where} cannot be written as a PythonNode: its class is defined {place}, "
                "so the runtime cannot import it; define it at the top level of a module"
            )
        try:
            found: Any = importlib.import_module(module_name)
            for part in qualname.split("."):
                found = getattr(found, part)
        except (ImportError, AttributeError) as e:
            raise ConfigurationError(
                f"{where} cannot be written as a PythonNode: `{module_name}:{qualname}` "
                f"does not import ({e})"
            ) from e
        if found is not cls:
            raise ConfigurationError(
                f"{where} cannot be written as a PythonNode: `{module_name}:{qualname}` "
                "names another class"
            )
        params: Dict[str, Any] = {
            "module": module_name,
            "class": qualname,
            "init": self._init_arguments(where),
        }
        root = _import_root(sys.modules[module_name], module_name)
        if root is not None:
            params["python_path"] = [root]
        return params

    def _init_arguments(self, where: str) -> Dict[str, Any]:
        """The constructor's arguments by name, as recorded when the node was made."""
        args, kwargs = getattr(self, "_remotemedia_init", ((), {}))
        init = getattr(type(self).__init__, "__wrapped__", type(self).__init__)
        signature = inspect.signature(init)
        try:
            bound = signature.bind(self, *args, **kwargs)
        except TypeError as e:
            raise ConfigurationError(f"{where}: its constructor arguments cannot be recorded: {e}") from e
        out: Dict[str, Any] = {}
        for pname, value in list(bound.arguments.items())[1:]:
            kind = signature.parameters[pname].kind
            if kind is inspect.Parameter.VAR_POSITIONAL:
                if value:
                    raise ConfigurationError(
                        f"{where}: positional *{pname} arguments cannot be written as `init`"
                    )
                continue
            if kind is inspect.Parameter.VAR_KEYWORD:
                out.update(value)
            else:
                out[pname] = value
        try:
            json.dumps(out, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise ConfigurationError(f"{where}: constructor arguments are not JSON ({e})") from e
        return copy.deepcopy(out)

    def _extract_params(self) -> Dict[str, Any]:
        """The ``params`` written by :meth:`to_manifest` (default: a copy of the config)."""
        return copy.deepcopy(self.config)

    def _rust_native(self) -> Optional[Tuple[str, Dict[str, Any]]]:
        """``(node_type, params)`` of the built-in Rust node that replaces this node when
        a pipeline runs in the Rust core, or ``None`` to call this object from Rust.

        Only the SDK's built-in node classes return a value, and only for their exact
        class: a subclass may override ``process`` and so always runs as Python.
        """
        return None

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(name={self.name!r})"


def _record_init(node: Any, args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> None:
    """Keeps the outermost constructor call's arguments (``to_manifest`` writes them)."""
    if "_remotemedia_init" not in node.__dict__:
        node.__dict__["_remotemedia_init"] = (args, dict(kwargs))


def _import_root(module: Any, name: str) -> Optional[str]:
    """The ``sys.path`` directory the module was imported from, or None when it is not
    a file (built into the interpreter)."""
    file = getattr(module, "__file__", None)
    if not file:
        return None
    path = Path(file).resolve()
    depth = name.count(".") + (1 if path.name == "__init__.py" else 0)
    root = path.parent
    for _ in range(depth):
        root = root.parent
    return str(root)
