"""schemas/item.v1.json validates what `remotemedia run` writes, and what it reads."""

import json
import subprocess

import pytest

from _util import REPO, cli

jsonschema = pytest.importorskip("jsonschema")

PASS = """version: v1
metadata: { name: pass }
nodes:
  - { id: pass, node_type: PassThrough }
"""

TONE = """version: v1
metadata: { name: tone }
nodes:
  - { id: tone, node_type: ToneGenerator, params: { sample_rate: 8000, duration_ms: 60, chunk_ms: 20 } }
"""

ITEMS = [
    None,
    True,
    -7,
    1.5,
    "text",
    [1, [2, {"a": None}]],
    {"b": 1, "a": {"c": [True]}},
    {"$bytes": "AAEC"},
    {"$float": "nan"},
    {"$map": {"$bytes": "not bytes"}},
    {"$audio": {"sample_rate": 8000, "channels": 2, "samples": "AAAAAAAAAAA="}},
    {"$audio": {"sample_rate": 8000, "channels": 1, "pts_us": 20000, "samples": "AAAAPw=="}},
    {"$tensor": {"shape": [2], "dtype": "int16", "data": "AQACAA=="}},
]

BAD = [
    {"$audio": {"sample_rate": 8000, "channels": 0, "samples": ""}},
    {"$audio": {"sample_rate": 8000, "channels": 1, "pts_us": 1.5, "samples": ""}},
    {"$audio": {"channels": 1, "samples": ""}},
    {"$tensor": {"shape": [1], "dtype": "complex64", "data": ""}},
    {"$float": "NaN"},
    {"$bytes": 3},
]


def validator():
    schema = json.loads((REPO / "schemas" / "item.v1.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def run_cli(tmp_path, manifest, stdin=""):
    exe = cli()
    if exe is None:
        pytest.skip("the remotemedia CLI is not built (cargo build -p remotemedia-cli, or set REMOTEMEDIA_CLI)")
    m = tmp_path / "m.yaml"
    m.write_text(manifest)
    args = [exe, "run", str(m), "--no-progress"] + (["--input", "-"] if stdin else [])
    out = subprocess.run(args, input=stdin, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines()]


def test_every_form_read_and_written_is_valid(tmp_path):
    v = validator()
    for item in ITEMS:
        v.validate(item)
    written = run_cli(tmp_path, PASS, "".join(json.dumps(i) + "\n" for i in ITEMS))
    assert len(written) == len(ITEMS)
    for item in written:
        v.validate(item)
    # Audio is written with its time, 0 when the input left it out.
    assert written[10]["$audio"]["pts_us"] == 0
    assert written[11]["$audio"]["pts_us"] == 20000


def test_generated_audio_is_valid_and_timed(tmp_path):
    v = validator()
    chunks = run_cli(tmp_path, TONE)
    assert [c["$audio"]["pts_us"] for c in chunks] == [0, 20000, 40000]
    for c in chunks:
        v.validate(c)


def test_malformed_forms_are_invalid():
    v = validator()
    for item in BAD:
        assert not v.is_valid(item), item
