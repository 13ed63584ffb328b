"""Values crossing between Python and the Rust core."""

import enum
import math
import os
import subprocess
import sys
import textwrap
from collections import OrderedDict

import pytest
from _util import run
from remotemedia import AudioBuffer, Node, PassThroughNode, Pipeline
from remotemedia._remotemedia import roundtrip

np = pytest.importorskip("numpy")


class Color(enum.IntEnum):
    RED = 1


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        False,
        0,
        -(2**63),
        2**63 - 1,
        1.25,
        -0.0,
        float("inf"),
        "",
        "snow ☃ and \x00 nul",
        b"",
        b"\x00\x01\xff",
        [],
        [1, "a", None, [2.5, [b"x"]]],
        {},
        {"b": 1, "a": {"z": [1, 2], "y": None}},
        (),
        (1, "a"),
        (1, (2, [3, (4,)]), {"t": (5, 6)}),
    ],
)
def test_native_values_round_trip(value):
    out = roundtrip(value)
    assert out == value and type(out) is type(value)


def test_conversions_that_change_type():
    Point = __import__("collections").namedtuple("Point", "x y")
    assert roundtrip(Point(1, 2)) == (1, 2) and type(roundtrip(Point(1, 2))) is tuple
    assert roundtrip(bytearray(b"ab")) == b"ab"
    assert roundtrip(memoryview(b"cd")) == b"cd"
    assert roundtrip(Color.RED) == 1 and type(roundtrip(Color.RED)) is int
    assert roundtrip(OrderedDict(b=1, a=2)) == {"b": 1, "a": 2}
    assert list(roundtrip({"z": 1, "a": 2, "m": 3})) == ["z", "a", "m"]
    assert math.isnan(roundtrip(float("nan")))
    assert roundtrip(np.float32(1.5)) == 1.5 and type(roundtrip(np.float32(1.5))) is float
    assert roundtrip(np.int64(7)) == 7 and type(roundtrip(np.int64(7))) is int
    assert roundtrip(np.bool_(True)) is True


@pytest.mark.parametrize(
    "bad, exc, text",
    [
        (2**63, OverflowError, "9223372036854775808 does not fit a signed 64-bit int"),
        (-(2**63) - 1, OverflowError, "does not fit"),
        ({1: 2}, TypeError, "dict key 1 of type int is not a str"),
        ({"a": [1, {2}]}, TypeError, '(at $["a"][1])'),
        (object(), TypeError, "of type object"),
        ("\ud800", ValueError, "lone surrogate"),
        (np.array([1 + 2j]), TypeError, "dtype complex128"),
        (np.array(["a"]), TypeError, "have no pipeline equivalent"),
    ],
)
def test_bad_values(bad, exc, text):
    with pytest.raises(exc) as info:
        roundtrip(bad)
    assert text in str(info.value)


DTYPES = ["uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "int64", "float16", "float32", "float64", "bool"]


@pytest.mark.parametrize("dtype", DTYPES)
def test_arrays_keep_dtype_shape_and_memory(dtype):
    a = (np.arange(24) % 7).astype(dtype).reshape(2, 3, 4)
    out = roundtrip(a)
    assert isinstance(out, np.ndarray)
    assert out.dtype == a.dtype and out.shape == a.shape
    assert np.array_equal(out, a)
    assert np.shares_memory(out, a)  # no copy in either direction
    assert not out.flags.writeable


def test_array_edge_cases():
    scalar = np.array(3.5, dtype=np.float64)
    out = roundtrip(scalar)
    assert out.shape == () and out == 3.5
    empty = np.zeros((0, 3), dtype=np.int16)
    assert roundtrip(empty).shape == (0, 3)
    strided = np.arange(20, dtype=np.int32).reshape(4, 5)[:, ::2]
    out = roundtrip(strided)
    assert np.array_equal(out, strided) and out.flags.c_contiguous
    big_endian = np.arange(6, dtype=">i4").reshape(2, 3)
    out = roundtrip(big_endian)
    assert np.array_equal(out, big_endian) and out.dtype == np.dtype("int32")
    fortran = np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3))
    assert np.array_equal(roundtrip(fortran), fortran)
    nested = roundtrip({"frames": [np.ones(2, dtype=np.uint8)], "n": 1})
    assert np.array_equal(nested["frames"][0], [1, 1]) and nested["n"] == 1


def test_a_mono_pair_is_audio_and_comes_back_as_an_audio_buffer():
    mono = np.array([0.1, 0.2], dtype=np.float32)
    out = roundtrip((mono, 8000))
    assert isinstance(out, AudioBuffer)
    assert (out.sample_rate, out.channels, out.pts_us, out.frames) == (8000, 1, 0, 2)
    assert out.samples.shape == (2,) and np.array_equal(out.samples, mono)
    assert roundtrip((mono, 16000, -5)).pts_us == -5
    # Not audio: other dtypes, rates, third elements stay tuples.
    for other in ((np.zeros(2, dtype=np.float64), 16000), (mono, 0), (mono, True), (mono, 16000, 1.5)):
        back = roundtrip(other)
        assert type(back) is tuple and len(back) == len(other), back


def test_a_pair_with_a_2d_array_is_refused_as_ambiguous():
    with pytest.raises(ValueError, match=r"pair holds mono audio .* use remotemedia.AudioBuffer"):
        roundtrip((np.zeros((2, 3), dtype=np.float32), 16000))


def test_tuples_stay_tuples_in_both_executors(use_rust):
    class Pack(Node):
        def process(self, data):
            return (data, [data, (data,)])

    class Look(Node):
        def process(self, t):
            return [type(t).__name__, type(t[1][1]).__name__, t]

    out = run(Pipeline([Pack(), PassThroughNode(), Look()]).run([1], use_rust=use_rust))
    assert out == [["tuple", "tuple", (1, [1, (1,)])]]
    assert type(out[0][2]) is tuple


def test_arrays_through_a_pipeline(use_rust):
    class Gain(Node):
        def process(self, data):
            return data * 2

    a = np.linspace(0, 1, 5, dtype=np.float32)
    out = run(Pipeline([PassThroughNode(), Gain(), PassThroughNode()]).run([a], use_rust=use_rust))
    assert np.array_equal(out[0], a * 2) and out[0].dtype == np.float32


def test_without_numpy_tensors_use_dict_forms():
    code = textwrap.dedent(
        """
        import sys, struct
        sys.modules["numpy"] = None  # numpy cannot be imported
        from remotemedia._remotemedia import roundtrip
        t = {"$tensor": {"shape": [2, 2], "dtype": "int16", "data": struct.pack("<4h", 1, 2, 3, 4)}}
        assert roundtrip(t) == t, roundtrip(t)
        a = {"$audio": {"sample_rate": 8000, "channels": 2, "pts_us": 20000, "samples": struct.pack("<4f", 0, 0.5, 1, -1)}}
        out = roundtrip(a)
        assert type(out).__name__ == "AudioBuffer" and out.pts_us == 20000, out
        assert isinstance(out.samples, memoryview) and out.samples.format == "f" and out.samples.readonly
        assert out.samples.tolist() == [0, 0.5, 1, -1] and out.frames == 2
        assert roundtrip(out) == out
        old = {"$audio": {"sample_rate": 8000, "channels": 1, "samples": struct.pack("<f", 0.5)}}
        assert roundtrip(old).pts_us == 0
        assert roundtrip([1, {"x": b"y"}]) == [1, {"x": b"y"}]
        for bad in ({"$tensor": {"shape": [3], "dtype": "int16", "data": b"12"}},
                    {"$tensor": {"shape": [1], "dtype": "complex", "data": b"12"}},
                    {"$audio": {"sample_rate": 8000, "channels": 3, "samples": b"1234"}}):
            try:
                roundtrip(bad)
            except (TypeError, ValueError) as e:
                print("rejected:", e)
            else:
                raise SystemExit(f"accepted {bad}")
        print("ok")
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=dict(os.environ))
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("rejected:") == 3 and out.stdout.strip().endswith("ok")


def test_dict_forms_with_numpy_become_arrays():
    import struct

    t = {"$tensor": {"shape": [2], "dtype": "float64", "data": struct.pack("<2d", 1.5, -2)}}
    out = roundtrip(t)
    assert isinstance(out, np.ndarray) and out.tolist() == [1.5, -2.0]
    a = {"$audio": {"sample_rate": 44100, "channels": 1, "samples": struct.pack("<2f", 0.25, 0.5)}}
    out = roundtrip(a)
    arr, rate = out.samples, out.sample_rate
    assert isinstance(out, AudioBuffer) and rate == 44100 and arr.tolist() == [0.25, 0.5]
