"""A speech-to-text node for ``transcribe.yaml``: faster-whisper on each utterance.

Optional: ``pip install faster-whisper``; the model named by ``model`` downloads from
the Hugging Face hub on first use (then it is cached). Nothing here imports remotemedia.
"""

import numpy as np


def _mono_16k(audio):
    """The utterance as a float32 mono array and its rate, from what the pipeline sends:
    a ``(samples, sample_rate)`` pair (samples of shape ``(channels, frames)``), or the
    ``{"$audio": …}`` dict used without numpy support."""
    if isinstance(audio, dict) and "$audio" in audio:
        a = audio["$audio"]
        samples = np.frombuffer(a["samples"], dtype="<f4").reshape(-1, a["channels"]).T
        rate = a["sample_rate"]
    else:
        samples, rate = audio
        samples = np.asarray(samples, dtype=np.float32)
    if samples.ndim == 2:
        samples = samples.mean(axis=0)
    if rate != 16000:
        raise ValueError(f"Transcribe takes 16 kHz audio, got {rate} Hz: put AudioResample before it")
    return np.ascontiguousarray(samples, dtype=np.float32), rate


def _pts_us(audio):
    if isinstance(audio, dict) and "$audio" in audio:
        return audio["$audio"].get("pts_us", 0)
    return getattr(audio, "pts_us", 0)


class Transcribe:
    """Emits ``{type: transcript, pts_us, duration_ms, text}`` for each utterance."""

    def __init__(self, model="tiny.en", language="en", beam_size=1):
        self.model_name = model
        self.language = language
        self.beam_size = beam_size
        self.model = None

    def initialize(self):
        from faster_whisper import WhisperModel

        self.model = WhisperModel(self.model_name, device="cpu", compute_type="int8")

    def process(self, audio):
        samples, rate = _mono_16k(audio)
        segments, _info = self.model.transcribe(
            samples, language=self.language, beam_size=self.beam_size, vad_filter=False
        )
        text = " ".join(s.text.strip() for s in segments).strip()
        return {
            "type": "transcript",
            "pts_us": _pts_us(audio),
            "duration_ms": 1000.0 * len(samples) / rate,
            "text": text,
        }
