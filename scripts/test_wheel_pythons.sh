#!/usr/bin/env bash
# The SDK's one abi3 wheel, tested under every CPython given (or found): the wheel is
# built once, then installed into a fresh virtualenv per interpreter, each running the
# pytest suite (with numpy, so the zero-copy array paths run too).
#
#   scripts/test_wheel_pythons.sh                      python3.9 … python3.14 on PATH
#   scripts/test_wheel_pythons.sh /opt/py3.9/bin/python3 python3.13
#   WHEEL=target/wheels/remotemedia-….whl scripts/test_wheel_pythons.sh …   reuse a wheel
#
# CI runs the suite under its one Python (3.11, `.ci/run`); this is the check for the
# others. pip needs the package index (pytest, numpy, jsonschema, websockets). The
# CLI tests use $REMOTEMEDIA_CLI or target/debug/remotemedia when built.
set -euo pipefail
cd "$(dirname "$0")/.."

pythons=("$@")
if [ ${#pythons[@]} -eq 0 ]; then
    for minor in 9 10 11 12 13 14; do
        if command -v "python3.$minor" >/dev/null; then pythons+=("python3.$minor"); fi
    done
fi
if [ ${#pythons[@]} -eq 0 ]; then
    echo "no CPython found: give interpreters as arguments" >&2
    exit 2
fi

work="target/wheel-pythons"
mkdir -p "$work"
if [ -z "${WHEEL:-}" ]; then
    "${pythons[0]}" -m venv "$work/build"
    "$work/build/bin/python" -m pip install --quiet "maturin>=1.9.4,<2"
    rm -rf "$work/wheels"
    "$work/build/bin/maturin" build --release --out "$work/wheels"
    WHEEL=$(ls "$work"/wheels/remotemedia-*-cp39-abi3-*.whl)
fi
echo "wheel: $WHEEL"

failed=()
for py in "${pythons[@]}"; do
    version=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    venv="$work/venv-$version"
    echo "==> CPython $version ($py)"
    rm -rf "$venv"
    "$py" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet pytest jsonschema websockets numpy
    "$venv/bin/python" -m pip install --quiet "$WHEEL"
    if REMOTEMEDIA_REQUIRE_WHEEL=1 "$venv/bin/python" -m pytest -q -p no:cacheprovider python/tests; then
        echo "CPython $version: passed"
    else
        failed+=("$version")
    fi
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "failed under CPython ${failed[*]}" >&2
    exit 1
fi
echo "passed under every CPython given"
