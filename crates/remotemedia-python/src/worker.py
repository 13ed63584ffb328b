"""remotemedia worker process: runs one Python node for the ``process`` host.

Started as ``python -c <this file> <driver source> <progress> <log level> <audio
source>``, where ``<progress>`` is ``fd:N`` (an inherited descriptor) or a file path and
``<audio source>`` defines ``AudioBuffer`` (loaded as the module ``_remotemedia_audio``). Frames on the
original stdin/stdout (``u32 length, u8 kind, payload``), values in the wire format of
``wire.rs``. Before each item the worker writes the item's 1-based index into the
progress file (shared memory), so that the parent can tell which item a crashed or
killed worker was on. Node code sees stdin as /dev/null and its stdout goes to stderr.

The worker belongs to its parent: it ignores SIGINT (the parent ends it) and exits at
once when the parent's end of the stdin pipe closes, even in the middle of a call.
"""

import os
import signal
import struct
import sys
import threading
import types

#: Marks this module's frames as the runtime's: tracebacks of node errors leave them out.
_REMOTEMEDIA_INTERNAL = True
_U32 = struct.Struct("<I")
_I64 = struct.Struct("<q")
_F64 = struct.Struct("<d")
_TAG_I64 = struct.Struct("<Bq")
_TAG_F64 = struct.Struct("<Bd")
_TAG_U32 = struct.Struct("<BI")
_MIN, _MAX = -(2**63), 2**63 - 1
_np = None
#: The ``_remotemedia_audio`` module (set by ``main``).
_audio = None
_SUPPORTED = (
    "supported: None, bool, int, float, str, bytes, list, tuple, dict with str keys, "
    "numpy arrays"
)
_DTYPES = (
    "uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "int64",
    "float16", "float32", "float64", "bool",
)


def _numpy():
    global _np
    if _np is None:
        try:
            import numpy

            _np = numpy
        except ImportError:
            _np = False
    return _np


def _loaded_numpy():
    if _np is None and "numpy" in sys.modules:
        return _numpy()
    return _np


class ConvertError(Exception):
    def __init__(self, message):
        Exception.__init__(self, message)
        self.message = message
        self.path = ""

    def text(self):
        return self.message + (" (at $%s)" % self.path if self.path else "")


def _preview(v):
    try:
        r = repr(v)
    except Exception:
        r = "<unrepresentable>"
    return r if len(r) <= 60 else r[:60] + "\u2026"


def _tname(v):
    t = type(v)
    m = getattr(t, "__module__", "builtins")
    return t.__qualname__ if m == "builtins" else m + "." + t.__qualname__


# ------------------------------------------------------------------------- encoding


MAX_DEPTH = 32


def enc(v, out, depth=0):
    t = type(v)
    if t is int:
        if _MIN <= v <= _MAX:
            out += _TAG_I64.pack(3, v)
            return
        raise ConvertError("integer %s does not fit a signed 64-bit int" % _preview(v))
    if t is float:
        out += _TAG_F64.pack(4, v)
        return
    if t is str:
        b = v.encode("utf-8", "strict")
        out += _TAG_U32.pack(5, len(b))
        out += b
        return
    if v is None:
        out.append(0)
        return
    if t is bool:
        out.append(2 if v else 1)
        return
    if t is list or t is tuple:
        if t is tuple and len(v) in (2, 3) and _enc_audio_tuple(v, out):
            return
        _check_depth(depth)
        out += _TAG_U32.pack(7 if t is list else 11, len(v))
        for i, x in enumerate(v):
            try:
                enc(x, out, depth + 1)
            except ConvertError as e:
                e.path = "[%d]%s" % (i, e.path)
                raise
        return
    if t is dict:
        _enc_dict(v, out, depth)
        return
    if t is bytes:
        out += _TAG_U32.pack(6, len(v))
        out += v
        return
    if isinstance(v, _audio.AudioBuffer):
        _enc_audio_buffer(v, out)
        return
    np = _loaded_numpy()
    if np:
        if isinstance(v, np.ndarray):
            _enc_tensor(np, v, out)
            return
        if isinstance(v, np.generic):
            item = v.item()
            if item is not v:
                enc(item, out, depth + 1)
                return
    if isinstance(v, bool):
        out.append(2 if v else 1)
    elif isinstance(v, int):
        enc(int(v), out, depth)
    elif isinstance(v, float):
        out += _TAG_F64.pack(4, float(v))
    elif isinstance(v, str):
        enc(str(v), out, depth)
    elif isinstance(v, (bytes, bytearray, memoryview)):
        b = bytes(v)
        out += _TAG_U32.pack(6, len(b))
        out += b
    elif isinstance(v, tuple) and len(v) == 2 and _enc_audio_tuple(v, out):
        return
    elif isinstance(v, list):
        enc(list(v), out, depth)
    elif isinstance(v, tuple):
        enc(tuple(v), out, depth)
    elif isinstance(v, dict):
        _enc_dict(dict(v), out, depth)
    else:
        raise ConvertError(
            "cannot convert %s of type %s to pipeline data; %s" % (_preview(v), _tname(v), _SUPPORTED)
        )


def _check_depth(depth):
    # The runtime's one nesting limit (MAX_DEPTH on the Rust side).
    if depth >= MAX_DEPTH:
        raise ConvertError("value is nested deeper than %d levels (or contains itself)" % MAX_DEPTH)


def _enc_dict(v, out, depth):
    if len(v) == 1:
        key = next(iter(v))
        if key in ("$tensor", "$audio") and _enc_tagged(key, v[key], out):
            return
    _check_depth(depth)
    out += _TAG_U32.pack(8, len(v))
    for k, x in v.items():
        if not isinstance(k, str):
            raise ConvertError(
                "dict key %s of type %s is not a str; pipeline maps need str keys"
                % (_preview(k), _tname(k))
            )
        kb = k.encode("utf-8")
        out += _U32.pack(len(kb))
        out += kb
        try:
            enc(x, out, depth + 1)
        except ConvertError as e:
            e.path = "[%r]%s" % (k, e.path)
            raise


def _enc_tensor(np, arr, out):
    name = arr.dtype.name
    if name not in _DTYPES:
        raise ConvertError(
            "numpy arrays of dtype %s have no pipeline equivalent; supported dtypes: %s"
            % (name, ", ".join(_DTYPES))
        )
    data = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<")).tobytes()
    nb = name.encode()
    out.append(10)
    out.append(len(nb))
    out += nb
    out.append(arr.ndim)
    for d in arr.shape:
        out += struct.pack("<Q", d)
    out += _U32.pack(len(data))
    out += data


def _enc_audio_buffer(v, out):
    try:
        rate, channels, pts, data = _audio._to_runtime(v)
    except (TypeError, ValueError, OverflowError) as e:
        raise ConvertError(str(e))
    out += struct.pack("<BIHqI", 9, rate, channels, pts, data.nbytes)
    out += data


def _enc_audio_tuple(v, out):
    """``(1-D float32 array, rate[, pts_us])`` is mono audio; ``False`` for other tuples."""
    np = _loaded_numpy()
    if len(v) == 3:
        arr, rate, pts = v
        if type(pts) is not int or not -(2**63) <= pts < 2**63:
            return False
    else:
        arr, rate = v
        pts = 0
    if not np or not isinstance(arr, np.ndarray) or type(rate) is not int:
        return False
    if arr.dtype.name != "float32" or not 0 < rate < 2**32:
        return False
    if arr.ndim == 2:
        raise ConvertError(
            "a (samples, sample_rate) pair holds mono audio (a 1-D array); for several "
            "channels use remotemedia.AudioBuffer(samples of shape (frames, channels), "
            "sample_rate, channels)"
        )
    if arr.ndim != 1:
        return False
    data = np.ascontiguousarray(arr, dtype="<f4")
    out += struct.pack("<BIHqI", 9, rate, 1, pts, data.nbytes)
    out += memoryview(data).cast("B")
    return True


def _enc_tagged(tag, inner, out):
    if not isinstance(inner, dict):
        raise ConvertError(
            "a dict whose only key is %r is the %s form and needs a dict value" % (tag, tag[1:])
        )
    try:
        if tag == "$tensor":
            shape = [int(d) for d in inner["shape"]]
            name = str(inner["dtype"])
            data = bytes(inner["data"])
            if name not in _DTYPES:
                raise ConvertError("unknown dtype `%s`" % name)
            nb = name.encode()
            out.append(10)
            out.append(len(nb))
            out += nb
            out.append(len(shape))
            for d in shape:
                out += struct.pack("<Q", d)
            out += _U32.pack(len(data))
            out += data
        else:
            data = bytes(inner["samples"])
            pts = inner.get("pts_us")
            pts = 0 if pts is None else int(pts)
            out += struct.pack(
                "<BIHqI", 9, int(inner["sample_rate"]), int(inner["channels"]), pts, len(data)
            )
            out += data
    except KeyError as e:
        raise ConvertError("%s needs a field `%s`" % (tag, e.args[0]))
    return True


# ------------------------------------------------------------------------- decoding


def dec(b, p):
    t = b[p]
    p += 1
    if t == 3:
        return _I64.unpack_from(b, p)[0], p + 8
    if t == 5:
        n = _U32.unpack_from(b, p)[0]
        p += 4
        return b[p : p + n].decode("utf-8"), p + n
    if t == 4:
        return _F64.unpack_from(b, p)[0], p + 8
    if t == 0:
        return None, p
    if t == 1:
        return False, p
    if t == 2:
        return True, p
    if t == 6:
        n = _U32.unpack_from(b, p)[0]
        p += 4
        return b[p : p + n], p + n
    if t == 7 or t == 11:
        n = _U32.unpack_from(b, p)[0]
        p += 4
        items = []
        for _ in range(n):
            x, p = dec(b, p)
            items.append(x)
        return (items if t == 7 else tuple(items)), p
    if t == 8:
        n = _U32.unpack_from(b, p)[0]
        p += 4
        d = {}
        for _ in range(n):
            kn = _U32.unpack_from(b, p)[0]
            p += 4
            k = b[p : p + kn].decode("utf-8")
            p += kn
            d[k], p = dec(b, p)
        return d, p
    if t == 9:
        rate, channels, pts, n = struct.unpack_from("<IHqI", b, p)
        p += 18
        raw = b[p : p + n]
        p += n
        return _audio._from_runtime(raw, rate, channels, pts, _numpy()), p
    if t == 10:
        nl = b[p]
        name = b[p + 1 : p + 1 + nl].decode()
        p += 1 + nl
        rank = b[p]
        p += 1
        shape = list(struct.unpack_from("<%dQ" % rank, b, p))
        p += 8 * rank
        n = _U32.unpack_from(b, p)[0]
        p += 4
        raw = b[p : p + n]
        p += n
        np = _numpy()
        if np:
            code = {"bool": "|b1", "uint8": "|u1", "int8": "|i1"}.get(name)
            dt = np.dtype(code) if code else np.dtype(name).newbyteorder("<")
            return np.frombuffer(raw, dtype=dt).reshape(shape), p
        return {"$tensor": {"shape": shape, "dtype": name, "data": raw}}, p
    raise ValueError("unknown value tag %d" % t)


# ------------------------------------------------------------------------- protocol


class Worker:
    def __init__(self, drv, inp, out, progress):
        self.drv = drv
        self.inp = inp
        self.out = out
        self.progress = progress
        self.node = None

    def send(self, kind, payload=b""):
        self.out.write(_U32.pack(len(payload) + 1))
        self.out.write(bytes((kind,)))
        self.out.write(payload)

    def log(self, levelno, name, node, message):
        payload = bytearray()
        enc([int(levelno), str(name), str(node or ""), str(message)], payload)
        self.send(ord("G"), payload)

    def error(self, exc, compat=False):
        kind, message, tb = self.drv.describe(exc)
        payload = bytearray()
        enc({"kind": kind, "message": message, "traceback": tb, "compat": compat}, payload)
        self.send(ord("E"), payload)

    def item_result(self, r, outs, body):
        """Encodes one item's outputs (status 0) or its conversion failure (status 1)."""
        mark = len(body)
        try:
            if outs is None:
                if r is None:
                    body += b"\x00\x00\x00\x00\x00"
                    return
                t = type(r)
                if t is int or t is float or t is str or t is dict or t is list or t is bool:
                    body += b"\x00\x01\x00\x00\x00"
                    enc(r, body)
                    return
                outs = self.node.expand(r)
            body.append(0)
            body += _U32.pack(len(outs))
            for o in outs:
                enc(o, body)
        except ConvertError as e:
            del body[mark:]
            self.item_error(body, "python", "TypeError: an output of `process` cannot enter "
                            "the pipeline: " + e.text(), "")
        except BaseException as e:
            del body[mark:]
            kind, message, tb = self.drv.describe(e)
            self.item_error(body, kind, message, tb)

    def item_error(self, body, kind, message, tb):
        body.append(1)
        enc([kind, message, tb], body)

    def batch(self, items):
        node = self.node
        drv = self.drv
        progress = self.progress
        body = bytearray()
        n = 0
        kind = node.kind
        process = node.process
        with drv._Capture(node.node_id):
            for item in items:
                n += 1
                progress[0] = n
                r = outs = None
                try:
                    if kind == drv.PLAIN:
                        r = process(item)
                    elif kind == drv.GEN:
                        outs = [x for x in process(item) if x is not None]
                    else:
                        outs = node._run(drv._aoutputs(process(item)))
                except BaseException as e:
                    k, message, tb = drv.describe(e)
                    self.item_error(body, k, message, tb)
                    break
                self.item_result(r, outs, body)
        progress[0] = 0
        return _U32.pack(n) + body

    def flush(self):
        body = bytearray()
        with self.drv._Capture(self.node.node_id):
            try:
                outs = self.node.flush()
            except BaseException as e:
                k, message, tb = self.drv.describe(e)
                self.item_error(body, k, message, tb)
                return _U32.pack(1) + body
            self.item_result(None, outs, body)
        return _U32.pack(1) + body

    def serve(self):
        read = self.inp.read
        while True:
            head = read(4)
            if len(head) < 4:
                return
            (n,) = _U32.unpack(head)
            frame = read(n)
            kind = frame[0]
            if kind == 80:  # P: process
                count = _U32.unpack_from(frame, 1)[0]
                p = 5
                items = []
                for _ in range(count):
                    x, p = dec(frame, p)
                    items.append(x)
                self.send(66, self.batch(items))  # B
            elif kind == 76:  # L: load
                spec, _ = dec(frame, 1)
                try:
                    self.node = self.drv.load(
                        spec["node_id"], spec["module"], spec["source"], spec["class"],
                        spec["init"], spec["python_path"],
                    )
                    self.send(82)  # R
                except BaseException as e:
                    self.error(e, self.drv.is_compat_error(e))
            elif kind == 73:  # I: initialize
                node_id, _ = dec(frame, 1)
                self.node.node_id = node_id
                try:
                    self.node.initialize()
                    self.send(82)
                except BaseException as e:
                    self.error(e)
            elif kind == 70:  # F: flush
                self.send(66, self.flush())
            elif kind == 67:  # C: cleanup
                try:
                    self.node.cleanup()
                    self.send(82)
                except BaseException as e:
                    self.error(e)
            elif kind == 81:  # Q: quit
                self.out.flush()
                return
            self.out.flush()


def _exit_with_parent(fd):
    """Ends the process when the pipe ``fd`` hangs up: the parent is gone (or closed
    it), so no one will read a result. Runs on a thread of its own, so a node busy in a
    call does not keep the process (and the stderr it shares) alive."""
    try:
        import select

        poll = select.poll()
    except (ImportError, AttributeError):
        return
    # No events asked for: poll still reports hang-up and errors, and never data.
    poll.register(fd, 0)
    while True:
        try:
            if poll.poll():
                os._exit(70)  # no one is left to read the status
        except InterruptedError:
            continue


def _map_progress(spec):
    import mmap

    if spec.startswith("fd:"):
        fd = int(spec[3:])
        try:
            return mmap.mmap(fd, 8)
        finally:
            os.close(fd)
    with open(spec, "r+b") as f:
        return mmap.mmap(f.fileno(), 8)


def main():
    # The parent decides when a worker ends (already ignored from the start where the
    # parent could arrange it).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    rfd = os.dup(0)
    wfd = os.dup(1)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)
    inp = os.fdopen(rfd, "rb", buffering=1 << 16)
    out = os.fdopen(wfd, "wb", buffering=1 << 16)
    threading.Thread(
        target=_exit_with_parent, args=(rfd,), name="remotemedia-parent", daemon=True
    ).start()

    global _audio
    _audio = sys.modules.get("_remotemedia_audio")
    if _audio is None:
        _audio = types.ModuleType("_remotemedia_audio")
        sys.modules["_remotemedia_audio"] = _audio
        exec(compile(sys.argv[4], "<remotemedia audio>", "exec"), _audio.__dict__)

    drv = types.ModuleType("_remotemedia_driver")
    sys.modules["_remotemedia_driver"] = drv
    exec(compile(sys.argv[1], "<remotemedia driver>", "exec"), drv.__dict__)

    progress = memoryview(_map_progress(sys.argv[2])).cast("q")

    worker = Worker(drv, inp, out, progress)

    def err_write(text):
        try:
            os.write(2, text.encode("utf-8", "replace"))
        except OSError:
            pass

    level = int(sys.argv[3]) if len(sys.argv) > 3 else 30
    drv.setup(worker.log, err_write, level)
    worker.serve()


if __name__ == "__main__":
    main()
