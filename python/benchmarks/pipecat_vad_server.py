"""Pipecat's counterpart of a live `VoiceActivity` session, for latency benchmarks.

    python pipecat_vad_server.py [--host 127.0.0.1] [--port 8765]
                                 [--sample-rate 16000|48000] [--soxr-quality VHQ]
                                 [--start-secs 0.25] [--stop-secs 0.3]
                                 [--confidence 0.5] [--min-volume 0.0]

Needs `pip install "pipecat-ai[websocket]==1.14.0" uvicorn` (Pipecat, BSD-2-Clause;
its core install brings soxr, onnxruntime and the Silero VAD model; the `websocket`
extra brings FastAPI).

Serves WebSocket sessions on any path (e.g. `ws://HOST:PORT/v1/sessions/vad`). Each
connection gets its own Pipecat pipeline, run by its own runner, with its own Silero
VAD state:

    FastAPIWebsocketTransport input (ProtobufFrameSerializer)
      -> SOXR stream resampler to 16 kHz (a pass-through at 16000; audio at
         another rate than --sample-rate, or not mono, closes the session)
      -> VADProcessor(SileroVADAnalyzer)
      -> speech events -> OutputTransportMessageUrgentFrame
      -> FastAPIWebsocketTransport output (same WebSocket)

Pipecat's own `SingleClientWebsocketServerTransport` (formerly
`WebsocketServerTransport`) serves one client at a time: it rejects a second
connection while one is open. So this is a FastAPI app (run by uvicorn) that
builds one `FastAPIWebsocketTransport` and one pipeline per connection, all on one
event loop; each Silero analyzer runs the model on its own thread. Since Pipecat
1.x the VAD is the `VADProcessor` stage, no longer a transport parameter, and the
transports do not resample: the pipeline's `audio_in_sample_rate` is the 16 kHz the
analyzer is set up with, and the resampler stage brings the client's rate to it
(at 48 kHz the SOXR VHQ stream holds back some 20-40 ms of audio; `--soxr-quality
QQ` holds back almost none).

Wire format: binary WebSocket messages, each one `pipecat.Frame` of Pipecat's
`frames/frames.proto`. The client sends `Frame.audio` (field 2), an `AudioRawFrame`
with `audio` (3) = s16le mono PCM, `sample_rate` (4) = the rate given here,
`num_channels` (5) = 1 (must be set: Pipecat divides by it), `pts` (6) optional. The server
sends `Frame.message` (field 4), a `MessageFrame` whose `data` (1) is JSON:

    {"type": "speech_start" | "speech_end", "pts_us": N, "decided_at_us": M}

or, before the server closes the session (close code 1007) on audio it cannot take,
`{"type": "error", "message": "..."}`. There is no handshake: audio may be sent
as soon as the WebSocket is open; closing it ends the session.

`pts_us` is the stream time of the event: where the speech (or the silence that
ended it) began, that is the audio the VAD had consumed when it decided, less the
windows it had to wait for (`start_secs` or `stop_secs`, rounded to 32 ms Silero
windows). `decided_at_us` is that consumed position itself. Both count 16 kHz
samples from the first audio received, offset by the first frame's `pts` when the
client sets it (ns in the proto, µs here).

Parameter mapping from `VoiceActivity` (threshold 0.5, min_speech_ms 250,
min_silence_ms 300): `confidence` = threshold; `start_secs` = min speech,
`stop_secs` = min silence, each rounded by Pipecat to whole 512-sample windows
(0.25 s -> 8 windows = 256 ms, 0.3 s -> 9 windows = 288 ms). Pipecat has no
negative threshold (hysteresis) and no padding. `min_volume` is Pipecat's extra
loudness gate (default 0.6 in Pipecat); it is 0 here so that Silero alone decides,
as in `VoiceActivity`.
"""

import argparse
import asyncio
import sys

import uvicorn
from fastapi import FastAPI, WebSocket
from loguru import logger
from pipecat.audio.utils import create_stream_resampler
from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.audio.vad.vad_analyzer import VADParams
from pipecat.frames.frames import (
    Frame,
    InputAudioRawFrame,
    OutputTransportMessageUrgentFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.audio.vad_processor import VADProcessor
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.serializers.protobuf import ProtobufFrameSerializer
from pipecat.transports.websocket.fastapi import (
    FastAPIWebsocketParams,
    FastAPIWebsocketTransport,
)
from pipecat.workers.runner import WorkerRunner

VAD_RATE = 16000


class ResampleTo16k(FrameProcessor):
    """Input audio at the client's rate to 16 kHz with Pipecat's SOXR stream resampler.

    Audio at another rate than the server's, or not mono, is an error that closes the
    session (Pipecat itself would feed it to the VAD as if it were right).
    """

    def __init__(self, rate: int, quality: str, **kwargs):
        super().__init__(**kwargs)
        self._rate = rate
        self._resampler = create_stream_resampler(quality=quality)
        self._failed = False

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        await super().process_frame(frame, direction)
        if not isinstance(frame, InputAudioRawFrame):
            await self.push_frame(frame, direction)
            return
        if self._failed:
            return
        if frame.sample_rate != self._rate or frame.num_channels != 1:
            self._failed = True
            await self.push_error(
                f"input audio is {frame.sample_rate} Hz with {frame.num_channels} channel(s); "
                f"this server takes {self._rate} Hz mono (AudioRawFrame.sample_rate = "
                f"{self._rate}, num_channels = 1)"
            )
            return
        if self._rate == VAD_RATE:
            await self.push_frame(frame, direction)
            return
        audio = await self._resampler.resample(frame.audio, self._rate, VAD_RATE)
        out = InputAudioRawFrame(audio=audio, sample_rate=VAD_RATE, num_channels=1)
        out.pts = frame.pts
        await self.push_frame(out, direction)


class StampedVADProcessor(VADProcessor):
    """Pipecat's VADProcessor, whose speech frames carry the stream time of the event.

    Counts the 16 kHz samples given to the analyzer; when the analyzer decides, the
    samples it has consumed (given less those still buffered for the next window) are
    the decision point, and the event began `start_secs`/`stop_secs` worth of windows
    before it. The time goes into the broadcast frames' `pts` (ns). (Reads the
    analyzer's private counters of Pipecat 1.14. A stop that Pipecat forces after 1 s
    without audio gets the same stamp, which is then only approximate.)
    """

    def __init__(self, *, vad_analyzer: SileroVADAnalyzer, **kwargs):
        super().__init__(vad_analyzer=vad_analyzer, **kwargs)
        self._analyzer = vad_analyzer
        self._samples = 0
        self._origin_ns = None

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        if isinstance(frame, InputAudioRawFrame):
            if self._origin_ns is None:
                self._origin_ns = frame.pts or 0
            self._samples += len(frame.audio) // 2
        await super().process_frame(frame, direction)

    def _stamp(self, frame_cls) -> tuple[int, int]:
        a = self._analyzer
        decided = self._samples - len(a._vad_buffer) // 2
        started = frame_cls is VADUserStartedSpeakingFrame
        wait = a._vad_start_frames if started else a._vad_stop_frames
        began = max(decided - wait * a._vad_frames, 0)
        origin = self._origin_ns or 0
        to_ns = lambda n: origin + n * 1_000_000_000 // VAD_RATE  # noqa: E731
        return to_ns(began), to_ns(decided)

    async def broadcast_frame(self, frame_cls, **kwargs):
        if frame_cls not in (VADUserStartedSpeakingFrame, VADUserStoppedSpeakingFrame):
            await super().broadcast_frame(frame_cls, **kwargs)
            return
        began, decided = self._stamp(frame_cls)
        down, up = frame_cls(**kwargs), frame_cls(**kwargs)
        for f in (down, up):
            f.pts = began
            f.metadata["decided_at_ns"] = decided
        down.broadcast_sibling_id, up.broadcast_sibling_id = up.id, down.id
        await self.push_frame(down)
        await self.push_frame(up, FrameDirection.UPSTREAM)


class SpeechEventsToClient(FrameProcessor):
    """VAD speech frames to a JSON transport message, sent to the client at once.

    Audio stops here (nothing downstream needs it).
    """

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        await super().process_frame(frame, direction)
        if direction == FrameDirection.DOWNSTREAM and isinstance(
            frame, (VADUserStartedSpeakingFrame, VADUserStoppedSpeakingFrame)
        ):
            started = isinstance(frame, VADUserStartedSpeakingFrame)
            kind = "speech_start" if started else "speech_end"
            decided = frame.metadata.get("decided_at_ns")
            message = {
                "type": kind,
                "pts_us": frame.pts // 1000 if frame.pts is not None else None,
                "decided_at_us": decided // 1000 if decided is not None else None,
            }
            await self.push_frame(OutputTransportMessageUrgentFrame(message=message))
        elif isinstance(frame, InputAudioRawFrame):
            pass
        else:
            await self.push_frame(frame, direction)


def build_app(args: argparse.Namespace) -> FastAPI:
    app = FastAPI()
    sessions = {"open": 0}

    @app.websocket("/{path:path}")
    async def session(websocket: WebSocket, path: str):
        await websocket.accept()
        sessions["open"] += 1
        logger.info(f"session /{path} opened ({sessions['open']} open)")
        serializer = ProtobufFrameSerializer()
        transport = FastAPIWebsocketTransport(
            websocket=websocket,
            params=FastAPIWebsocketParams(
                audio_in_enabled=True,
                audio_in_sample_rate=args.sample_rate,
                audio_in_channels=1,
                audio_in_passthrough=True,
                audio_out_enabled=False,
                serializer=serializer,
                allowed_origins=[],
            ),
        )
        # Loading the model takes 30-80 ms: off the event loop, so that sessions
        # already streaming are not held up by one that is opening.
        vad = await asyncio.to_thread(
            SileroVADAnalyzer,
            sample_rate=VAD_RATE,
            params=VADParams(
                confidence=args.confidence,
                start_secs=args.start_secs,
                stop_secs=args.stop_secs,
                min_volume=args.min_volume,
            ),
        )
        stages = [
            transport.input(),
            ResampleTo16k(args.sample_rate, args.soxr_quality),
            StampedVADProcessor(vad_analyzer=vad),
            SpeechEventsToClient(),
            transport.output(),
        ]
        worker = PipelineWorker(
            Pipeline(stages),
            # The rate inside the pipeline, which the VAD analyzer is set up with
            # (Silero takes 8000 or 16000 only); the transport's is the client's.
            params=PipelineParams(audio_in_sample_rate=VAD_RATE),
            enable_rtvi=False,
            enable_turn_tracking=False,
            idle_timeout_secs=None,
        )

        @transport.event_handler("on_client_disconnected")
        async def on_client_disconnected(_transport, _ws):
            await worker.cancel()

        # Pipecat logs a processor's error and carries on; a session that cannot
        # detect speech is closed instead, after telling its client why:
        # {"type": "error", "message": ...}, then close code 1007.
        @worker.event_handler("on_pipeline_error")
        async def on_pipeline_error(_worker, frame):
            logger.error(f"session /{path}: {frame.error}; closing it")
            note = {"type": "error", "message": str(frame.error)}
            try:
                await websocket.send_bytes(
                    await serializer.serialize(OutputTransportMessageUrgentFrame(message=note))
                )
                await websocket.close(code=1007, reason="bad input audio")
            except Exception as e:  # the client may be gone already
                logger.info(f"session /{path}: could not send the error: {e}")
            await worker.cancel()

        try:
            runner = WorkerRunner(handle_sigint=False)
            await runner.add_workers(worker)
            await runner.run()
        finally:
            sessions["open"] -= 1
            logger.info(f"session /{path} closed ({sessions['open']} open)")

    return app


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--sample-rate", type=int, choices=[16000, 48000], default=16000,
                   help="rate of the audio clients send (48000 is resampled to 16000)")
    p.add_argument("--soxr-quality", choices=["VHQ", "HQ", "MQ", "LQ", "QQ"], default="VHQ",
                   help="quality of the SOXR stream resampler (Pipecat's default: VHQ)")
    p.add_argument("--start-secs", type=float, default=0.25, help="VADParams.start_secs")
    p.add_argument("--stop-secs", type=float, default=0.3, help="VADParams.stop_secs")
    p.add_argument("--confidence", type=float, default=0.5, help="VADParams.confidence")
    p.add_argument("--min-volume", type=float, default=0.0, help="VADParams.min_volume")
    p.add_argument("--log-level", default="WARNING", help="loguru level (DEBUG shows Pipecat's)")
    args = p.parse_args()

    logger.remove()
    logger.add(sys.stderr, level=args.log_level)
    config = uvicorn.Config(build_app(args), host=args.host, port=args.port,
                            log_level=args.log_level.lower(), ws="websockets-sansio")
    print(f"pipecat VAD server on ws://{args.host}:{args.port}/ at {args.sample_rate} Hz",
          file=sys.stderr, flush=True)
    asyncio.run(uvicorn.Server(config).serve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
