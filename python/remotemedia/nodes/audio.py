"""Audio and speech nodes: SDK classes for the Rust core's native audio nodes.

Each class is the core's node type of the same name (the names other remotemedia
pipelines use, where there is one): its keyword arguments are that type's params,
checked by the core when the pipeline runs or is validated (a bad one is a
:class:`~remotemedia.ConfigurationError` naming the node and param), and
``remotemedia nodes info TYPE`` documents them. They run only in the Rust core
(``use_rust=True``); the pure-Python executor refuses a pipeline holding one.

Audio reaches Python as the core hands it over (see the SDK README, "Values").
"""

from __future__ import annotations

from typing import Any, ClassVar, Dict, Optional, Tuple

from ..core.exceptions import NodeError
from ..core.node import Node

__all__ = [
    "AudioBufferAccumulatorNode",
    "AudioChannelsNode",
    "AudioChunkerNode",
    "AudioGainNode",
    "AudioLevelNode",
    "AudioLimiterNode",
    "AudioLoudnessNode",
    "AudioResampleNode",
    "ClippingDetectorNode",
    "FastResampleNode",
    "MediaReaderNode",
    "MediaWriterNode",
    "NativeNode",
    "PcmDecodeNode",
    "PcmEncodeNode",
    "SileroVADNode",
    "SilenceDetectorNode",
    "ToneGeneratorNode",
    "VADNode",
]


class NativeNode(Node):
    """A node the Rust core implements: ``node_type`` names it, the keyword arguments
    are its params. Subclass it (setting ``node_type``) for another native type."""

    #: The core's node type this class stands for.
    node_type: ClassVar[str] = ""
    _runs_in_python = False

    def __init__(self, name: Optional[str] = None, **params: Any) -> None:
        super().__init__(name=name, **params)

    def process(self, data: Any) -> Any:
        raise NodeError(
            f"{type(self).__name__} runs only in the Rust core (use_rust=True)", kind="config"
        )

    def _manifest_node_type(self) -> str:
        return type(self).node_type

    def _rust_native(self) -> Optional[Tuple[str, Dict[str, Any]]]:
        # A subclass with its own `process` is Python code, run as such.
        if not type(self).node_type or type(self).process is not NativeNode.process:
            return None
        return (type(self).node_type, dict(self.config))


def _native(class_name: str, node_type: str, doc: str) -> type:
    return type(class_name, (NativeNode,), {"node_type": node_type, "__doc__": doc, "__module__": __name__})


MediaReaderNode = _native("MediaReaderNode", "MediaReader", "Decodes an audio file (`path`, `chunk_ms`) as a source.")
MediaWriterNode = _native("MediaWriterNode", "MediaWriter", "Writes the audio it receives to a WAV file (`path`, `format`).")
AudioResampleNode = _native("AudioResampleNode", "AudioResample", "Converts audio to `target_rate` (`quality`).")
FastResampleNode = _native("FastResampleNode", "FastResampleNode", "AudioResample under its older name and params.")
AudioChannelsNode = _native("AudioChannelsNode", "AudioChannels", "Down- or upmixes to `channels` (or a `matrix`).")
AudioGainNode = _native("AudioGainNode", "AudioGain", "Multiplies every sample by a gain in `db`.")
AudioLimiterNode = _native("AudioLimiterNode", "AudioLimiter", "Peak limiter (`threshold_db`, `lookahead_ms`, `release_ms`).")
AudioChunkerNode = _native("AudioChunkerNode", "AudioChunkerNode", "Cuts audio into fixed chunks (`chunk_ms` or `chunk_samples`).")
AudioBufferAccumulatorNode = _native(
    "AudioBufferAccumulatorNode", "AudioBufferAccumulatorNode", "Joins chunks into buffers of `min_ms`..`max_ms`."
)
AudioLevelNode = _native("AudioLevelNode", "AudioLevel", "RMS and peak level events (`interval_ms`).")
AudioLoudnessNode = _native("AudioLoudnessNode", "AudioLoudness", "EBU R 128 loudness events (`interval_ms`).")
SilenceDetectorNode = _native("SilenceDetectorNode", "SilenceDetector", "Silence start/end events.")
ClippingDetectorNode = _native("ClippingDetectorNode", "ClippingDetector", "Clipping start/end events.")
PcmDecodeNode = _native("PcmDecodeNode", "PcmDecode", "Raw PCM bytes to audio (`format`, `sample_rate`, `channels`).")
PcmEncodeNode = _native("PcmEncodeNode", "PcmEncode", "Audio to raw PCM bytes (`format`).")
ToneGeneratorNode = _native("ToneGeneratorNode", "ToneGenerator", "A source of a sine, noise or silence.")
VADNode = _native("VADNode", "VoiceActivity", "Voice activity detection (`engine`, `output`, …).")
SileroVADNode = _native("SileroVADNode", "SileroVADNode", "VoiceActivity with the Silero model's params.")
