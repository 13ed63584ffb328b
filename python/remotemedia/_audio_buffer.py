"""``AudioBuffer``: the one Python shape of audio in remotemedia.

The SDK and every Python node host (embedded CPython, worker processes, RustPython)
use this same file, so a node written against it runs anywhere, with or without numpy.
It needs nothing but the standard library; the runtime's hosts execute it as the module
``_remotemedia_audio`` and this file registers itself under that name too, so one
interpreter has one ``AudioBuffer`` class whichever loaded it first.
"""

import sys

#: Most channels an audio buffer may have (the runtime keeps the count in 16 bits).
MAX_CHANNELS = 65535


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _ndarray_type():
    np = sys.modules.get("numpy")
    return getattr(np, "ndarray", None) if np is not None else None


def _check_meta(sample_rate, channels, pts_us):
    if not _is_int(sample_rate):
        raise TypeError("AudioBuffer sample_rate must be an int, not " + type(sample_rate).__name__)
    if not 0 < sample_rate < 2**32:
        raise ValueError("AudioBuffer sample_rate must be a positive number of Hz, got %d" % sample_rate)
    if not _is_int(channels):
        raise TypeError("AudioBuffer channels must be an int, not " + type(channels).__name__)
    if not 1 <= channels <= MAX_CHANNELS:
        raise ValueError("AudioBuffer channels must be 1..%d, got %d" % (MAX_CHANNELS, channels))
    if not _is_int(pts_us):
        raise TypeError("AudioBuffer pts_us must be an int (microseconds), not " + type(pts_us).__name__)
    if not -(2**63) <= pts_us < 2**63:
        raise OverflowError("AudioBuffer pts_us does not fit a signed 64-bit int")


def _check_samples(samples, channels):
    ndarray = _ndarray_type()
    if ndarray is not None and isinstance(samples, ndarray):
        return _check_ndarray(samples, channels)
    return _as_float_view(samples, channels)


def _check_ndarray(samples, channels):
    if samples.dtype.kind != "f" or samples.dtype.itemsize != 4:
        raise TypeError(
            "AudioBuffer samples must be float32, got a numpy array of dtype "
            + str(samples.dtype)
            + " (convert with samples.astype(numpy.float32))"
        )
    if samples.ndim == 1:
        if samples.shape[0] % channels:
            raise ValueError(
                "AudioBuffer: %d interleaved samples cannot be split into %d channels"
                % (samples.shape[0], channels)
            )
    elif samples.ndim == 2:
        if samples.shape[1] != channels:
            raise ValueError(
                "AudioBuffer samples of shape %r hold %d channels (shape is (frames, "
                "channels)) but channels=%d; pass channels=%d"
                % (tuple(samples.shape), samples.shape[1], channels, samples.shape[1])
            )
    else:
        raise ValueError(
            "AudioBuffer samples must be interleaved (1-D) or shaped (frames, channels), "
            "got %d dimensions" % samples.ndim
        )
    return samples


def _as_float_view(samples, channels):
    """A read-only, flat float32 memoryview over a buffer (copying only a list)."""
    if isinstance(samples, (list, tuple)):
        import array

        try:
            samples = array.array("f", samples)
        except TypeError:
            raise TypeError("AudioBuffer samples given as a list must be numbers") from None
    try:
        view = memoryview(samples)
    except TypeError:
        raise TypeError(
            "AudioBuffer samples must be a float32 numpy array, a buffer of float32 "
            "(memoryview, array.array('f'), bytes) or a list of numbers, not "
            + type(samples).__name__
        ) from None
    if view.format in ("B", "b", "c"):
        if view.nbytes % 4:
            raise ValueError(
                "AudioBuffer samples given as bytes must be float32 values: %d bytes is "
                "not a multiple of 4" % view.nbytes
            )
        view = view.cast("B").cast("f")
    elif view.format != "f" or view.itemsize != 4:
        raise TypeError(
            "AudioBuffer samples must be float32, got a buffer of format %r" % view.format
        )
    elif view.ndim != 1:
        view = view.cast("B").cast("f")
    if len(view) % channels:
        raise ValueError(
            "AudioBuffer: %d interleaved samples cannot be split into %d channels"
            % (len(view), channels)
        )
    return view.toreadonly() if not view.readonly else view


class AudioBuffer:
    """PCM audio: 32-bit float samples with their rate, channel count and stream time.

    ``AudioBuffer(samples, sample_rate, channels=1, pts_us=0)``

    * ``samples``: a float32 numpy array, interleaved (1-D) or shaped
      ``(frames, channels)``, kept as given (not copied); without numpy, any buffer of
      float32 values (``array.array('f')``, a ``memoryview``, little-endian ``bytes``),
      kept as a read-only ``memoryview`` over it, or a list of numbers (copied).
    * ``sample_rate``: frames per second; ``channels``: interleaved channels;
      ``pts_us``: the stream time of the first frame, in microseconds.

    Audio that comes out of a pipeline or into a ``PythonNode`` is an ``AudioBuffer``
    whose ``samples`` share the runtime's memory read-only: with numpy an array of
    shape ``(frames,)`` for mono and ``(frames, channels)`` otherwise, without numpy a
    flat ``memoryview`` of format ``'f'`` (interleaved). To change audio, make new
    samples and :meth:`with_samples`.
    """

    __slots__ = ("samples", "sample_rate", "channels", "pts_us")

    def __init__(self, samples, sample_rate, channels=1, pts_us=0):
        _check_meta(sample_rate, channels, pts_us)
        self.samples = _check_samples(samples, channels)
        self.sample_rate = sample_rate
        self.channels = channels
        self.pts_us = pts_us

    @property
    def frames(self):
        """Number of frames (samples per channel)."""
        s = self.samples
        size = s.size if hasattr(s, "size") else len(s)
        return size // self.channels

    @property
    def duration_us(self):
        """How long the buffer lasts, in microseconds (rounded down)."""
        return self.frames * 1000000 // self.sample_rate

    @property
    def end_pts_us(self):
        """The stream time just after the last frame."""
        return self.pts_us + self.duration_us

    def with_samples(self, samples, pts_us=None):
        """A buffer of other samples with this one's rate and channels (and time,
        unless ``pts_us`` is given)."""
        return AudioBuffer(
            samples, self.sample_rate, self.channels, self.pts_us if pts_us is None else pts_us
        )

    def __repr__(self):
        return "AudioBuffer(frames=%d, sample_rate=%d, channels=%d, pts_us=%d)" % (
            self.frames,
            self.sample_rate,
            self.channels,
            self.pts_us,
        )

    def __eq__(self, other):
        if not isinstance(other, AudioBuffer):
            return NotImplemented
        if (self.sample_rate, self.channels, self.pts_us) != (
            other.sample_rate,
            other.channels,
            other.pts_us,
        ):
            return False
        return _flat_bytes(self.samples) == _flat_bytes(other.samples)

    __hash__ = None

    def __reduce__(self):
        s = self.samples
        if isinstance(s, memoryview):
            s = s.tobytes()
        return (AudioBuffer, (s, self.sample_rate, self.channels, self.pts_us))


def _flat_bytes(samples):
    if hasattr(samples, "tobytes") and hasattr(samples, "dtype"):
        return samples.astype("<f4", copy=False).tobytes()
    return bytes(samples)


# ------------------------------------------------------------- the hosts' conversions


def _from_runtime(raw, sample_rate, channels, pts_us, np=None):
    """An ``AudioBuffer`` over little-endian float32 bytes the runtime hands a host,
    shared read-only: a numpy array when ``np`` (the numpy module) is given, else a
    ``memoryview``."""
    if np:
        samples = np.frombuffer(raw, dtype="<f4")
        if channels != 1:
            samples = samples.reshape(len(samples) // channels, channels)
    else:
        samples = memoryview(raw).cast("B").cast("f")
        if not samples.readonly:
            samples = samples.toreadonly()
    audio = object.__new__(AudioBuffer)
    audio.samples = samples
    audio.sample_rate = sample_rate
    audio.channels = channels
    audio.pts_us = pts_us
    return audio


def _to_runtime(audio):
    """``(sample_rate, channels, pts_us, data)`` of an ``AudioBuffer``, checked again
    (its attributes may have been reassigned): ``data`` is a contiguous buffer of
    little-endian float32 bytes, the samples themselves when they already are that."""
    _check_meta(audio.sample_rate, audio.channels, audio.pts_us)
    samples = _check_samples(audio.samples, audio.channels)
    ndarray = _ndarray_type()
    if ndarray is not None and isinstance(samples, ndarray):
        samples = sys.modules["numpy"].ascontiguousarray(samples, dtype="<f4")
    elif sys.byteorder != "little":
        import array

        swapped = array.array("f", samples)
        swapped.byteswap()
        samples = swapped
    data = memoryview(samples)
    if data.format != "B" or data.ndim != 1:
        data = data.cast("B")
    return audio.sample_rate, audio.channels, audio.pts_us, data


AudioBuffer.__module__ = "remotemedia"
AudioBuffer.__qualname__ = "AudioBuffer"

if "_remotemedia_audio" not in sys.modules and __name__ in sys.modules:
    sys.modules["_remotemedia_audio"] = sys.modules[__name__]
