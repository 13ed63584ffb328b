"""A speech-to-text node for ``transcribe.yaml``: faster-whisper on each utterance.

Optional: ``pip install faster-whisper``; the model named by ``model`` downloads from
the Hugging Face hub on first use (then it is cached). Nothing here imports remotemedia.
"""

import numpy as np


def _mono_16k(audio):
    """The utterance (an ``AudioBuffer``) as a float32 mono array and its rate."""
    samples = np.asarray(audio.samples, dtype=np.float32)
    if audio.channels > 1:
        samples = samples.reshape(-1, audio.channels).mean(axis=1)
    if audio.sample_rate != 16000:
        raise ValueError(
            f"Transcribe takes 16 kHz audio, got {audio.sample_rate} Hz: put AudioResample before it"
        )
    return np.ascontiguousarray(samples, dtype=np.float32), audio.sample_rate


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
            "pts_us": audio.pts_us,
            "duration_ms": 1000.0 * len(samples) / rate,
            "text": text,
        }
