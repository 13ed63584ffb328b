"""Streams a WAV in real time to `pipecat_vad_server.py` and prints the speech events.

    python pipecat_probe.py SPEECH.wav [--url ws://127.0.0.1:8765/v1/sessions/vad]
                            [--sessions N] [--rate 16000|48000] [--tail-ms 1500]

Opens N concurrent sessions; each sends the file as 20 ms frames of s16le mono at
`--rate` (the WAV, mono 16-bit, is resampled with soxr when its rate differs; the
server must be started with the same `--sample-rate`), paced on an absolute
schedule from its start, then waits `--tail-ms` for the last events and closes.

The protobuf messages are written and read by hand here (no Pipecat import), as a
client in another language would: each WebSocket binary message is one
`pipecat.Frame`; input audio is `Frame.audio` (field 2) = `AudioRawFrame {audio: 3,
sample_rate: 4, num_channels: 5, pts: 6 (ns)}`; events come back as `Frame.message`
(field 4) = `MessageFrame {data: 1}` holding JSON.

For each event it prints `lat_ms`, the time from sending the frame that contains the
event's `pts_us` to the event's arrival (it includes the VAD's wait for start_secs or
stop_secs), and `proc_ms`, the same from the frame that contains `decided_at_us`
(the audio the VAD had consumed when it decided: the processing delay alone). Ends
with a JSON summary line; exits 1 if a session got no event, an error message or
was closed early by the server. Needs `websockets` (and `soxr`, `numpy` for resampling).
"""

import argparse
import asyncio
import json
import statistics
import sys
import time
import wave

import websockets

FRAME_MS = 20


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field_bytes(num: int, payload: bytes) -> bytes:
    return varint(num << 3 | 2) + varint(len(payload)) + payload


def field_varint(num: int, value: int) -> bytes:
    return varint(num << 3) + varint(value)


def audio_frame(pcm: bytes, rate: int, pts_ns: int) -> bytes:
    """`Frame { audio: AudioRawFrame { audio, sample_rate, num_channels: 1, pts } }`."""
    inner = field_bytes(3, pcm) + field_varint(4, rate) + field_varint(5, 1)
    inner += field_varint(6, pts_ns)
    return field_bytes(2, inner)


def read_varint(buf: bytes, i: int) -> tuple[int, int]:
    n = shift = 0
    while True:
        b = buf[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, i


def fields(buf: bytes):
    i = 0
    while i < len(buf):
        key, i = read_varint(buf, i)
        num, wire = key >> 3, key & 7
        if wire == 0:
            value, i = read_varint(buf, i)
        elif wire == 2:
            n, i = read_varint(buf, i)
            value, i = buf[i : i + n], i + n
        else:
            raise ValueError(f"unexpected wire type {wire} for field {num}")
        yield num, value


def message_json(data: bytes):
    """The JSON of a `Frame.message`, or None for any other frame."""
    for num, value in fields(data):
        if num == 4:
            for n, v in fields(value):
                if n == 1:
                    return json.loads(v.decode())
            return {}
    return None


def load_pcm(path: str, rate: int) -> bytes:
    with wave.open(path, "rb") as w:
        if w.getnchannels() != 1 or w.getsampwidth() != 2:
            sys.exit(f"{path}: needs mono 16-bit PCM (has {w.getnchannels()} channels, "
                     f"{8 * w.getsampwidth()}-bit)")
        src, pcm = w.getframerate(), w.readframes(w.getnframes())
    if src != rate:
        import numpy as np
        import soxr

        x = np.frombuffer(pcm, dtype=np.int16)
        pcm = soxr.resample(x, src, rate, quality="VHQ").astype(np.int16).tobytes()
    return pcm


async def session(idx: int, url: str, pcm: bytes, rate: int, tail_ms: int, results: list):
    step = rate * FRAME_MS // 1000 * 2
    frames = [pcm[i : i + step] for i in range(0, len(pcm), step)]
    sent_at: list[float] = []
    events = []
    errors: list = []
    async with websockets.connect(url, max_size=None) as ws:

        async def receive():
            async for data in ws:
                now = time.monotonic()
                if isinstance(data, str):
                    print(f"[{idx}] unexpected text message: {data!r}", file=sys.stderr)
                    continue
                msg = message_json(data)
                if msg is None:
                    continue
                if msg.get("type") == "error":
                    print(f"[{idx}] server error: {msg.get('message')}", file=sys.stderr,
                          flush=True)
                    errors.append(msg.get("message"))
                    continue
                ev = dict(msg)

                def since(k):
                    ok = k is not None and 0 <= k < len(sent_at)
                    return round((now - sent_at[k]) * 1000, 1) if ok else None

                # The frame holding the event's first sample, and the one holding
                # the last sample consumed at the decision (decided_at is one past it).
                pts, decided = msg.get("pts_us"), msg.get("decided_at_us")
                frame_us = FRAME_MS * 1000
                ev["lat_ms"] = since(pts // frame_us if pts is not None else None)
                ev["proc_ms"] = since((decided - 1) // frame_us if decided else None)
                events.append(ev)
                print(f"[{idx}] {json.dumps(ev)}", flush=True)

        rx = asyncio.create_task(receive())
        t0 = time.monotonic()
        try:
            for k, chunk in enumerate(frames):
                delay = t0 + k * FRAME_MS / 1000 - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                sent_at.append(time.monotonic())
                await ws.send(audio_frame(chunk, rate, k * FRAME_MS * 1_000_000))
            await asyncio.sleep(tail_ms / 1000)
        except websockets.ConnectionClosed as e:
            await asyncio.sleep(0.1)  # let the receiver read what came before the close
            print(f"[{idx}] server closed the session after {len(sent_at)} of {len(frames)} "
                  f"frames: code {e.rcvd.code if e.rcvd else None}", file=sys.stderr)
            errors.append(f"closed after {len(sent_at)} frames")
        rx.cancel()
    results.append((events, errors))


async def main_async(args) -> int:
    pcm = load_pcm(args.wav, args.rate)
    results: list = []
    await asyncio.gather(*(session(i, args.url, pcm, args.rate, args.tail_ms, results)
                           for i in range(args.sessions)))
    summary = {"sessions": args.sessions, "rate": args.rate}
    for kind in ("speech_start", "speech_end"):
        for key in ("lat_ms", "proc_ms"):
            vals = [e[key] for evs, _ in results for e in evs
                    if e["type"] == kind and e[key] is not None]
            if vals:
                summary[f"{kind}_{key}"] = {"n": len(vals),
                                            "median": round(statistics.median(vals), 1),
                                            "max": max(vals)}
    summary["events_per_session"] = [len(evs) for evs, _ in results]
    summary["failed_sessions"] = sum(1 for evs, errs in results if errs or not evs)
    print(json.dumps(summary), flush=True)
    return 1 if summary["failed_sessions"] else 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("wav")
    p.add_argument("--url", default="ws://127.0.0.1:8765/v1/sessions/vad")
    p.add_argument("--sessions", type=int, default=1)
    p.add_argument("--rate", type=int, default=16000, choices=[16000, 48000])
    p.add_argument("--tail-ms", type=int, default=1500)
    return asyncio.run(main_async(p.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
