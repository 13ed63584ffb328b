"""The SDK under test is the installed wheel: one abi3 extension for every CPython
from 3.9 on, imported from site-packages (not from the source tree), with every file
the package needs."""

import importlib.metadata
import os
import sys
import sysconfig
from pathlib import Path

import pytest

import remotemedia
from remotemedia import _remotemedia

REPO = Path(__file__).resolve().parents[2]
required = os.environ.get("REMOTEMEDIA_REQUIRE_WHEEL") == "1"


def test_the_package_comes_from_site_packages_when_installed_from_the_wheel():
    package = Path(remotemedia.__file__).resolve().parent
    in_tree = REPO / "python" / "remotemedia"
    if package == in_tree.resolve():
        if required:
            pytest.fail(f"remotemedia was imported from the source tree ({package}), not the wheel")
        pytest.skip("remotemedia is imported from the source tree (an editable install)")
    assert Path(sysconfig.get_paths()["purelib"]).resolve() in package.parents or \
        Path(sysconfig.get_paths()["platlib"]).resolve() in package.parents


def test_the_extension_is_built_for_the_stable_abi():
    name = Path(_remotemedia.__file__).name
    if ".abi3." not in name and not required:
        pytest.skip(f"the extension was not built as a wheel for the stable ABI ({name})")
    assert name.endswith(".abi3.so"), name


def test_the_wheel_is_one_for_every_cpython_from_3_9_on():
    try:
        dist = importlib.metadata.distribution("remotemedia")
        wheel = dist.read_text("WHEEL")
    except importlib.metadata.PackageNotFoundError:
        wheel = None
    if wheel is None:
        if required:
            pytest.fail("remotemedia has no installed distribution metadata (not installed from a wheel)")
        pytest.skip("remotemedia is not installed from a wheel")
    tags = [line.split(":", 1)[1].strip() for line in wheel.splitlines() if line.startswith("Tag:")]
    assert tags and all(t.startswith("cp39-abi3-") for t in tags), tags
    assert dist.metadata["Requires-Python"] == ">=3.9"


def test_the_wheel_carries_the_typing_files_and_the_client():
    package = Path(remotemedia.__file__).resolve().parent
    for f in ("py.typed", "_remotemedia.pyi", "client.py", "nodes/audio.py", "nodes/flow.py", "_edges.py", "_audio_buffer.py", "_audio_buffer.pyi"):
        assert (package / f).is_file(), f"{f} is missing from the installed package"
    assert sys.version_info >= (3, 9)
