"""remotemedia node driver: loads a user's node class and drives it.

One file shared by every host (embedded CPython, the worker processes, embedded
RustPython), so that they behave the same. It is executed as the module
``_remotemedia_driver``; the host calls ``setup`` once, then ``load`` per node and the
methods of the returned ``Driver``.

The node class follows the SDK's ``Node`` shape and needs nothing from remotemedia:
``process(data)`` (plain, ``async``, generator or async generator), optional
``initialize()``, ``cleanup()`` (plain or ``async``) and ``flush()`` (or ``finish()``)
returning what is left at the end of the stream.

Output rules (as in the SDK): a plain or ``async`` ``process`` returning ``None`` emits
nothing, any other value is one output; a generator or async generator emits every
value it yields except ``None``.
"""

import sys
import types

_GEN = types.GeneratorType
_CORO = types.CoroutineType
_AGEN = types.AsyncGeneratorType

#: ``process`` kinds.
PLAIN, GEN, ASYNC, AGEN = 0, 1, 2, 3

_CPYTHON = sys.implementation.name == "cpython"
_FILE = "<remotemedia driver>"


class _State:
    """Interpreter-wide state of the driver."""

    #: Id of the node whose code is running (for print and logging attribution).
    current = ""
    #: ``callable(levelno, logger_name, node_id, message)`` receiving log records.
    log_sink = None
    #: ``callable(text)`` writing to the runtime's stderr.
    err_write = None
    #: The stream that replaces ``sys.stdout`` while node code runs.
    stream = None
    inline_count = 0


_state = _State()


class NodeStream:
    """``sys.stdout`` while node code runs: whole lines go to stderr as ``[node] line``."""

    encoding = "utf-8"
    errors = "strict"

    def __init__(self):
        self._buf = ""

    def write(self, s):
        if not isinstance(s, str):
            raise TypeError("write() argument must be str, not " + type(s).__name__)
        if "\n" in s:
            parts = (self._buf + s).split("\n")
            self._buf = parts.pop()
            node = _state.current or "?"
            _state.err_write("".join(["[%s] %s\n" % (node, p) for p in parts]))
        else:
            self._buf += s
        return len(s)

    def flush(self):
        if self._buf:
            text, self._buf = self._buf, ""
            _state.err_write("[%s] %s\n" % (_state.current or "?", text))

    def isatty(self):
        return False

    def writable(self):
        return True

    def readable(self):
        return False


def setup(log_sink, err_write, level):
    """Installs the log forwarding (root logger at ``level``) and the print capture."""
    _state.log_sink = log_sink
    _state.err_write = err_write
    _state.stream = NodeStream()
    import logging

    class _Forward(logging.Handler):
        def emit(self, record):
            try:
                msg = self.format(record)
            except Exception:
                msg = str(getattr(record, "msg", ""))
            try:
                _state.log_sink(record.levelno, record.name, _state.current, msg)
            except Exception:
                pass

    handler = _Forward()
    handler.setFormatter(logging.Formatter("%(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(level)


def _attribute(node):
    """Starts attributing output to ``node``; returns what ``_restore`` puts back."""
    state = _state
    saved = (state.current, sys.stdout)
    state.current = node
    if state.stream is not None:
        sys.stdout = state.stream
    return saved


def _restore(saved):
    """Ends what ``_attribute`` started: flushes a partial line, restores stdout."""
    stream = _state.stream
    if stream is not None:
        if stream._buf:
            try:
                stream.flush()
            except Exception:
                pass
        sys.stdout = saved[1]
    _state.current = saved[0]


class _Capture:
    """Context of one call into node code: attribution and the print capture."""

    __slots__ = ("node", "saved")

    def __init__(self, node):
        self.node = node

    def __enter__(self):
        self.saved = _attribute(self.node)
        return self

    def __exit__(self, *exc):
        _restore(self.saved)
        return False


class LoadError(Exception):
    """The node cannot be loaded; ``stage`` is ``import``, ``class`` or ``construct``."""

    def __init__(self, stage, message, cause):
        Exception.__init__(self, message)
        self.stage = stage
        self.message = message
        self.cause = cause


def _kind(fn):
    try:
        import inspect

        if inspect.isasyncgenfunction(fn):
            return AGEN
        if inspect.iscoroutinefunction(fn):
            return ASYNC
        if inspect.isgeneratorfunction(fn):
            return GEN
        return PLAIN
    except ImportError:
        code = getattr(getattr(fn, "__func__", fn), "__code__", None)
        flags = getattr(code, "co_flags", 0)
        if flags & 0x200:
            return AGEN
        if flags & 0x80:
            return ASYNC
        if flags & 0x20:
            return GEN
        return PLAIN


def load(node_id, module, source, class_name, kwargs, python_path):
    """Imports the module (or runs ``source``), finds the class and instantiates it."""
    for p in reversed(list(python_path)):
        if p not in sys.path:
            sys.path.insert(0, p)
    label = "<PythonNode %s>" % node_id
    with _Capture(node_id):
        if source is not None:
            _state.inline_count += 1
            name = "_remotemedia_inline_%d" % _state.inline_count
            mod = types.ModuleType(name)
            mod.__file__ = label
            try:
                code = compile(source, label, "exec")
            except SyntaxError as e:
                raise LoadError("import", "syntax error in `source`: " + _describe_text(e), e)
            sys.modules[name] = mod
            try:
                exec(code, mod.__dict__)
            except BaseException as e:
                del sys.modules[name]
                raise LoadError("import", "running `source` failed: " + _describe_text(e), e)
            where = "`source`"
        else:
            import importlib

            try:
                mod = importlib.import_module(module)
            except BaseException as e:
                raise LoadError(
                    "import", "cannot import module `%s`: %s" % (module, _describe_text(e)), e
                )
            where = "module `%s`" % module
        cls = getattr(mod, class_name, None)
        if cls is None or not isinstance(cls, type):
            found = sorted(
                n for n, v in vars(mod).items() if isinstance(v, type) and not n.startswith("_")
                and getattr(v, "__module__", None) == mod.__name__
            )
            hint = ("; it defines " + ", ".join("`%s`" % n for n in found)) if found else ""
            what = "no class" if cls is None else "`%s` is not a class in" % class_name
            if cls is None:
                msg = "%s `%s` in %s%s" % (what, class_name, where, hint)
            else:
                msg = "%s %s%s" % (what, where, hint)
            raise LoadError("class", msg, None)
        try:
            obj = cls(**kwargs)
        except BaseException as e:
            raise LoadError(
                "construct", "constructing `%s` failed: %s" % (class_name, _describe_text(e)), e
            )
        process = getattr(obj, "process", None)
        if process is None or not callable(process):
            raise LoadError("class", "class `%s` has no `process` method" % class_name, None)
    return Driver(node_id, obj, process)


async def _aoutputs(r):
    if r is None:
        return []
    if isinstance(r, _AGEN):
        return [x async for x in r if x is not None]
    if isinstance(r, _GEN):
        return [x for x in r if x is not None]
    if hasattr(r, "__await__"):
        v = await r
        return [] if v is None else [v]
    return [r]


def _step(aw):
    """Runs an awaitable to completion without an event loop (for hosts without one)."""
    it = aw.__await__()
    try:
        while True:
            y = it.send(None)
            if y is not None:
                raise RuntimeError("this awaitable needs an event loop, which is unavailable")
    except StopIteration as e:
        return e.value


class Driver:
    """Drives one node instance."""

    def __init__(self, node_id, obj, process):
        self.node_id = node_id
        self.obj = obj
        self.process = process
        self.kind = _kind(process)
        self._loop = None
        self._loop_failed = False

    # -- awaitables ---------------------------------------------------------------------

    def _run(self, aw):
        if self._loop is None and not self._loop_failed:
            try:
                import asyncio

                self._loop = asyncio.new_event_loop()
            except Exception:
                self._loop_failed = True
        if self._loop is None:
            return _step(aw)
        return self._loop.run_until_complete(aw)

    def _call_hook(self, name):
        fn = getattr(self.obj, name, None)
        if fn is None or not callable(fn):
            return None
        r = fn()
        if r is not None and hasattr(r, "__await__"):
            r = self._run(r)
        return r

    # -- lifecycle ----------------------------------------------------------------------

    def initialize(self):
        with _Capture(self.node_id):
            self._call_hook("initialize")

    def cleanup(self):
        try:
            with _Capture(self.node_id):
                self._call_hook("cleanup")
        finally:
            if self._loop is not None:
                try:
                    self._loop.close()
                except Exception:
                    pass
                self._loop = None

    def flush(self):
        """Outputs at the end of the stream (``flush`` or ``finish`` hook), as a list."""
        with _Capture(self.node_id):
            fn = getattr(self.obj, "flush", None)
            if fn is None or not callable(fn):
                fn = getattr(self.obj, "finish", None)
            if fn is None or not callable(fn):
                return []
            return self.expand(fn())

    def expand(self, r):
        """The outputs of one raw result (``None``, a value, generator, awaitable…)."""
        if r is None:
            return []
        if isinstance(r, _GEN):
            return [x for x in r if x is not None]
        if isinstance(r, _AGEN) or hasattr(r, "__await__"):
            return self._run(_aoutputs(r))
        return [r]

    # -- items --------------------------------------------------------------------------

    def batch(self, items):
        """Processes ``items`` in order, stopping at the first exception.

        Returns ``(results, nested, exc)``: ``results`` has one entry per item processed
        successfully, ``exc`` is the exception of the next item (or ``None``). With
        ``nested`` false an entry is ``process``'s raw return value (to pass through
        ``expand`` unless it is a plain value or ``None``); with ``nested`` true it is
        the list of the item's outputs.
        """
        out = []
        # `_Capture` without the object and method calls: this runs per node and batch.
        saved = _attribute(self.node_id)
        kind = self.kind
        try:
            if kind == PLAIN:
                if _CPYTHON:
                    # list.extend keeps the results appended before an exception.
                    out.extend(map(self.process, items))
                else:
                    append, process = out.append, self.process
                    for item in items:
                        append(process(item))
                return out, False, None
            if kind == GEN:
                process = self.process
                for item in items:
                    out.append([x for x in process(item) if x is not None])
                return out, True, None
            self._run(self._abatch(items, out))
            return out, True, None
        except BaseException as e:
            return out, kind != PLAIN, e
        finally:
            _restore(saved)

    async def _abatch(self, items, out):
        process = self.process
        for item in items:
            out.append(await _aoutputs(process(item)))


def _type_name(t):
    module = getattr(t, "__module__", "builtins")
    name = getattr(t, "__qualname__", None) or t.__name__
    if module in ("builtins", "__main__", None) or module.startswith("_remotemedia_inline_"):
        return name
    return module + "." + name


def _describe_text(exc):
    text = str(exc)
    name = _type_name(type(exc))
    return name + ": " + text if text else name


def _internal(frame):
    """Whether a frame is the runtime's (the driver or the worker), not node code."""
    return frame.f_code.co_filename == _FILE or frame.f_globals.get("_REMOTEMEDIA_INTERNAL", False)


def describe(exc):
    """``(kind, message, traceback)`` of an exception raised by node code.

    The SDK's ``NodeError`` keeps its kind and message; any other exception is kind
    ``python`` with message ``Type: text``. Driver frames are left out of the traceback.
    """
    kind = "python"
    message = None
    if type(exc).__name__ == "NodeError" and getattr(exc, "node_id", None) is None:
        k = getattr(exc, "kind", None)
        m = getattr(exc, "message", None)
        if isinstance(k, str) and k:
            kind = k
        if isinstance(m, str):
            message = m
    if isinstance(exc, LoadError):
        message = exc.message
        cause = exc.cause
        tb_text = describe(cause)[2] if cause is not None else ""
        return "python", message, tb_text
    if message is None:
        message = _describe_text(exc)
    try:
        import traceback

        tb = exc.__traceback__
        while tb is not None and _internal(tb.tb_frame):
            tb = tb.tb_next
        tb_text = "".join(traceback.format_exception(type(exc), exc, tb))
    except Exception:
        tb_text = message + "\n"
    return kind, message, tb_text


def is_compat_error(exc):
    """Whether a load failure may be this host's limitation (another host may succeed)."""
    cause = exc.cause if isinstance(exc, LoadError) else exc
    return isinstance(cause, (ImportError, NotImplementedError, SyntaxError))
