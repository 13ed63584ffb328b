from typing import Any, Optional, Tuple, Union

MAX_CHANNELS: int

_Samples = Any  # a float32 numpy array, a float32 buffer (memoryview, array.array('f'), bytes) or a list of numbers

class AudioBuffer:
    """PCM audio: float32 samples with their rate, channel count and stream time."""

    samples: Any
    sample_rate: int
    channels: int
    pts_us: int

    def __init__(
        self, samples: _Samples, sample_rate: int, channels: int = 1, pts_us: int = 0
    ) -> None: ...
    @property
    def frames(self) -> int: ...
    @property
    def duration_us(self) -> int: ...
    @property
    def end_pts_us(self) -> int: ...
    def with_samples(self, samples: _Samples, pts_us: Optional[int] = None) -> "AudioBuffer": ...
    def __eq__(self, other: object) -> bool: ...

def _from_runtime(
    raw: Union[bytes, memoryview], sample_rate: int, channels: int, pts_us: int, np: Any = None
) -> AudioBuffer: ...
def _to_runtime(audio: AudioBuffer) -> Tuple[int, int, int, memoryview]: ...
