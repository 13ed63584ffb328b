#!/usr/bin/env bash
# Builds the fuzz targets in fuzz/ with coverage instrumentation (libFuzzer, on the
# stable toolchain) and runs them.
#
#   scripts/fuzz.sh                    every target, 30 s each (what CI runs)
#   scripts/fuzz.sh manifest 600       one target for 10 minutes
#   scripts/fuzz.sh all 600 -jobs=2    extra arguments go to libFuzzer
#
# Each target starts from its seed corpus in fuzz/corpus/TARGET (checked in) and adds
# what it finds to target/fuzz/corpus/TARGET. A crash leaves its input in
# target/fuzz/artifacts/TARGET and makes the script fail; turn it into a regression
# test (fuzz/regressions/TARGET/, replayed by `scripts/fuzz.sh replay`).
set -euo pipefail
cd "$(dirname "$0")/.."

TARGETS=(manifest jsonl_item executor_wire worker_frames)
which="${1:-all}"
seconds="${2:-30}"
shift $(( $# > 2 ? 2 : $# ))

triple="$(rustc -vV | sed -n 's/^host: //p')"
# sancov instrumentation is a stable codegen option; libFuzzer (built by
# libfuzzer-sys) reads the counters it leaves. --target keeps the flags off build
# scripts.
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions \
-Coverflow-checks"
export CARGO_TARGET_DIR="$PWD/target/fuzz/build"
echo "==> building fuzz targets"
# fuzz/ has its own lock file: a dependency added to the workspace must reach it too.
if ! cargo metadata --locked --format-version 1 --manifest-path fuzz/Cargo.toml >/dev/null 2>&1; then
    echo "fuzz.sh: fuzz/Cargo.lock is out of date with the workspace's dependencies;" >&2
    echo "  run: cargo metadata --format-version 1 --manifest-path fuzz/Cargo.toml > /dev/null" >&2
    echo "  and commit fuzz/Cargo.lock" >&2
    exit 1
fi
cargo build --locked --release --manifest-path fuzz/Cargo.toml --target "$triple" --bins
bin="$CARGO_TARGET_DIR/$triple/release"

if [ "$which" = replay ]; then
    # Every regression input must run clean.
    for t in "${TARGETS[@]}"; do
        dir="fuzz/regressions/$t"
        [ -d "$dir" ] && [ -n "$(ls -A "$dir")" ] || continue
        echo "==> replaying $dir"
        "$bin/$t" -runs=0 "$dir"/*
    done
    exit 0
fi

if [ "$which" = all ]; then
    run=("${TARGETS[@]}")
else
    run=("$which")
fi
for t in "${run[@]}"; do
    corpus="target/fuzz/corpus/$t"
    artifacts="target/fuzz/artifacts/$t"
    mkdir -p "$corpus" "$artifacts"
    echo "==> fuzzing $t for ${seconds}s"
    # Inputs up to 64 KiB; 2 GiB of memory per process; a single input over 10 s
    # counts as a hang.
    "$bin/$t" "$corpus" "fuzz/corpus/$t" -max_total_time="$seconds" -max_len=65536 \
        -rss_limit_mb=2048 -timeout=10 -artifact_prefix="$artifacts/" \
        -print_final_stats=1 "$@"
done
