"""A client of remotemedia live sessions (``remotemedia serve --pipelines DIR``).

::

    from remotemedia.client import connect

    async with connect("ws://127.0.0.1:50051", "vad", sample_rate=16000) as s:
        await s.send(chunk)          # an AudioBuffer, a numpy array (float or int16), or PCM bytes
        await s.end()                # no more input: the last outputs, then the summary
        async for out in s:          # Output objects, as they arrive
            print(out.type, out.sink, out.item, out.pts_us)
    print(s.summary)

Sending and receiving may run in separate tasks (send while iterating). The protocol is
the server's WebSocket API: a ``start`` message, binary PCM frames in the format it
announced (``f32le`` by default), ``item``, ``flush`` (barge-in), ``end`` and ``ping``.
Needs the ``websockets`` package (``pip install remotemedia[client]``).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Optional

__all__ = ["connect", "Session", "Output", "SessionError"]

_FORMATS = ("s16le", "f32le", "u8", "mulaw", "alaw")


class SessionError(Exception):
    """The server closed the session with an error (a node failed, a limit was hit)."""

    def __init__(self, message: str, kind: str = "", node_id: Optional[str] = None):
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.node_id = node_id


@dataclass
class Output:
    """One message from the server.

    ``type`` is ``output`` (``item`` is the JSON item), ``audio`` (``audio`` holds the
    samples: a float32 numpy array when numpy is installed, else the s16le bytes),
    ``flushed``, ``pong``, or ``error`` (a bad message the session survived).
    """

    type: str
    sink: Optional[str] = None
    item: Any = None
    pts_us: Optional[int] = None
    audio: Any = None
    sample_rate: Optional[int] = None
    channels: Optional[int] = None
    message: Optional[str] = None
    kind: Optional[str] = None
    raw: dict = field(default_factory=dict)

    @property
    def buffer(self) -> Any:
        """An ``audio`` output as a ``remotemedia.AudioBuffer`` (samples, rate, channels
        and time), with or without numpy; ``None`` for other outputs."""
        if self.type != "audio" or self.audio is None:
            return None
        from . import AudioBuffer

        samples = self.audio
        if isinstance(samples, (bytes, bytearray, memoryview)):  # s16le, numpy missing
            import array

            pcm = array.array("h")
            pcm.frombytes(bytes(samples))
            if sys.byteorder != "little":
                pcm.byteswap()
            samples = array.array("f", [v / 32768.0 for v in pcm])
        return AudioBuffer(samples, self.sample_rate or 1, self.channels or 1, self.pts_us or 0)


def _session_url(url: str, pipeline: str) -> str:
    if "://" not in url:
        url = "ws://" + url
    url = url.replace("http://", "ws://", 1).replace("https://", "wss://", 1)
    if "/v1/sessions/" in url:
        return url
    return url.rstrip("/") + "/v1/sessions/" + pipeline


def _to_bytes(chunk: Any, fmt: str) -> bytes:
    """PCM bytes of `chunk` in `fmt`: bytes pass through; numpy arrays and sequences
    of floats are converted (int16 arrays are scaled by 1/32768 first)."""
    if isinstance(chunk, (bytes, bytearray, memoryview)):
        return bytes(chunk)
    if isinstance(chunk, tuple) and len(chunk) == 2:  # a (samples, rate) pair
        chunk = chunk[0]
    try:
        import numpy as np
    except ImportError:  # plain sequences of floats
        np = None
    if np is not None:
        a = np.asarray(chunk)
        if a.dtype == np.int16:
            a = a.astype(np.float32) / 32768.0
        a = np.ascontiguousarray(a, dtype=np.float32).reshape(-1)
        if fmt == "f32le":
            return a.astype("<f4").tobytes()
        if fmt == "s16le":
            return np.clip(np.round(a * 32768.0), -32768, 32767).astype("<i2").tobytes()
        raise ValueError(f"send() converts arrays to f32le or s16le only; this session is {fmt}: send bytes")
    import array

    values = [float(x) for x in chunk]
    if fmt == "f32le":
        out = array.array("f", values)
    elif fmt == "s16le":
        out = array.array("h", [max(-32768, min(32767, round(x * 32768.0))) for x in values])
    else:
        raise ValueError(f"send() converts samples to f32le or s16le only; this session is {fmt}: send bytes")
    if sys.byteorder != "little":
        out.byteswap()
    return out.tobytes()


class Session:
    """An open session; use :func:`connect`."""

    def __init__(self, url: str, pipeline: str, *, sample_rate: Optional[int], channels: int,
                 format: str, params: Optional[dict], token: Optional[str], ssl: Any = None):
        if format not in _FORMATS:
            raise ValueError(f"format must be one of {', '.join(_FORMATS)}, not {format!r}")
        self.url = _session_url(url, pipeline)
        self.sample_rate = sample_rate
        self.channels = channels
        self.format = format
        self.params = params
        self.token = token
        self.ssl = ssl
        self.id: Optional[str] = None
        self.summary: Optional[dict] = None
        self._ws = None
        self._audio_header: Optional[dict] = None
        self._error: Optional[SessionError] = None

    async def __aenter__(self) -> "Session":
        try:
            from websockets.asyncio.client import connect as ws_connect
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise ImportError("remotemedia.client needs the websockets package: pip install websockets") from e
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else None
        extra = {"ssl": self.ssl} if self.ssl is not None else {}
        self._ws = await ws_connect(self.url, additional_headers=headers, max_size=None, **extra)
        start: dict = {"type": "start"}
        if self.sample_rate is not None:
            start["input"] = {"format": self.format, "sample_rate": self.sample_rate, "channels": self.channels}
        if self.params:
            start["params"] = self.params
        from websockets.exceptions import ConnectionClosed

        try:
            await self._ws.send(json.dumps(start))
        except ConnectionClosed:
            pass  # refused at once (unknown pipeline, too many sessions): read why
        try:
            first = json.loads(await self._ws.recv())
        except ConnectionClosed as e:
            raise SessionError(f"the server closed the session at once ({e})", "closed") from None
        if first.get("type") != "ready":
            await self._ws.close()
            raise SessionError(first.get("message", str(first)), first.get("kind", ""), first.get("node_id"))
        self.id = first.get("session")
        return self

    async def __aexit__(self, *exc) -> None:
        if self._ws is not None:
            await self._ws.close()

    async def send(self, chunk: Any) -> None:
        """Sends audio: an ``AudioBuffer`` (of the session's rate and channels), a numpy
        array (float, or int16), a sequence of floats, a ``(samples, rate)`` pair, or
        bytes already in the session's format."""
        if self.sample_rate is None:
            raise ValueError("this session announced no audio input: connect(..., sample_rate=...) to send audio")
        from . import AudioBuffer

        if isinstance(chunk, AudioBuffer):
            if (chunk.sample_rate, chunk.channels) != (self.sample_rate, self.channels):
                raise ValueError(
                    f"this session takes {self.sample_rate} Hz, {self.channels} channel(s); the "
                    f"AudioBuffer is {chunk.sample_rate} Hz, {chunk.channels} channel(s): put "
                    "AudioResample / AudioChannels in the pipeline or connect() with its format"
                )
            chunk = chunk.samples
        await self._ws.send(_to_bytes(chunk, self.format))

    async def send_item(self, item: Any) -> None:
        """Sends one item in the JSON form (numbers, text, lists, maps, ``$audio``…)."""
        await self._ws.send(json.dumps({"type": "item", "item": item}))

    async def flush(self) -> None:
        """Barge-in: the server drops what is queued and resets the nodes; a ``flushed``
        output follows."""
        await self._ws.send(json.dumps({"type": "flush"}))

    async def ping(self) -> None:
        """A ``pong`` output follows."""
        await self._ws.send(json.dumps({"type": "ping"}))

    async def end(self) -> None:
        """No more input: the remaining outputs follow, then the summary ends the
        iteration."""
        await self._ws.send(json.dumps({"type": "end"}))

    def __aiter__(self) -> AsyncIterator[Output]:
        return self._outputs()

    async def _outputs(self) -> AsyncIterator[Output]:
        from websockets.exceptions import ConnectionClosed

        while True:
            try:
                frame = await self._ws.recv()
            except ConnectionClosed:
                if self._error is not None:
                    raise self._error from None
                if self.summary is None:
                    raise SessionError("the connection closed before the session's summary", "closed")
                return
            if isinstance(frame, bytes):
                header, self._audio_header = self._audio_header, None
                if header is None:
                    continue
                audio: Any = frame
                try:
                    import numpy as np

                    audio = np.frombuffer(frame, dtype="<i2").astype(np.float32) / 32768.0
                except ImportError:
                    pass
                yield Output(type="audio", sink=header.get("sink"), pts_us=header.get("pts_us"), audio=audio,
                             sample_rate=header.get("sample_rate"), channels=header.get("channels"), raw=header)
                continue
            msg = json.loads(frame)
            kind = msg.get("type")
            if kind == "audio":
                self._audio_header = msg
            elif kind == "summary":
                self.summary = msg.get("metrics")
                return
            elif kind == "error":
                # Kept: if the connection closes next, the iteration raises it.
                self._error = SessionError(msg.get("message", ""), msg.get("kind", ""), msg.get("node_id"))
                yield Output(type="error", message=msg.get("message"), kind=msg.get("kind"), raw=msg)
            else:
                yield Output(type=kind or "", sink=msg.get("sink"), item=msg.get("item"), pts_us=msg.get("pts_us"),
                             raw=msg)


def connect(url: str, pipeline: str, *, sample_rate: Optional[int] = 16000, channels: int = 1,
            format: str = "f32le", params: Optional[dict] = None, token: Optional[str] = None,
            ssl: Any = None) -> Session:
    """Opens a session of ``pipeline`` on the server at ``url`` (``ws://HOST:PORT`` or
    ``HOST:PORT``); use as ``async with``. ``sample_rate``/``channels``/``format``
    describe the audio :meth:`Session.send` sends (``sample_rate=None``: items only);
    ``params`` sets the params the pipeline declares overridable (``{"vad.threshold":
    0.6}``); ``token`` is the server's bearer token; ``ssl`` an ``ssl.SSLContext`` for
    ``wss://`` servers whose certificate the system does not trust."""
    return Session(url, pipeline, sample_rate=sample_rate, channels=channels, format=format, params=params,
                   token=token, ssl=ssl)
