"""Pipeline memory handed to Python: the extension's read-only `DataBuffer` exporter,
which audio samples (and, with numpy, arrays) share instead of a copy. Runs with or
without numpy: the memoryview path needs nothing else."""

import array
import gc
import io

import pytest
from remotemedia import AudioBuffer
from remotemedia._remotemedia import DataBuffer, roundtrip


def exported(values):
    """An AudioBuffer that went through the core, and the exporter its samples view."""
    out = roundtrip(AudioBuffer(array.array("f", values), 8000))
    samples = out.samples
    base = samples.obj if isinstance(samples, memoryview) else samples.base
    while not isinstance(base, DataBuffer) and base is not None:
        base = getattr(base, "obj", None) or getattr(base, "base", None)
    return out, base


def test_samples_from_the_core_are_exported_by_a_data_buffer():
    out, base = exported([0.5, -0.25, 1.0])
    assert type(base) is DataBuffer
    assert type(base).__module__ == "remotemedia._remotemedia"
    assert len(base) == 3 * 4
    view = memoryview(base)
    assert view.readonly and view.nbytes == 12
    assert list(view.cast("f")) == [0.5, -0.25, 1.0]


def test_the_memory_outlives_every_other_reference_to_it():
    out, base = exported([float(i) for i in range(1000)])
    view = memoryview(base).cast("f")
    del out, base
    gc.collect()
    assert view[999] == 999.0 and sum(view) == sum(range(1000))


def test_a_writable_export_is_refused():
    _, base = exported([1.0, 2.0])
    # readinto asks for a writable buffer (and words the refusal itself).
    with pytest.raises(TypeError, match="read-write bytes-like object"):
        io.BytesIO(b"12345678").readinto(base)
    assert list(memoryview(base).cast("f")) == [1.0, 2.0]


def test_python_code_cannot_make_one():
    with pytest.raises(TypeError, match="DataBuffer objects are made by the runtime only"):
        DataBuffer()
