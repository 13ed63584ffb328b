#!/usr/bin/env bash
# Runs the Rust benchmarks and the pure-Python baseline side by side on this machine,
# measures memory, and rewrites BENCHMARKS.md.
#
#   scripts/bench.sh           full run (several minutes); rewrites BENCHMARKS.md
#   scripts/bench.sh --quick   short run (indicative numbers), reported in
#                              target/bench/BENCHMARKS.quick.md instead
#
# Needs cargo and python3; the audio peers (numpy, soundfile, soxr, scipy) are installed
# from PyPI into a virtualenv under target/bench, and `sox` is used when installed. Writes only under the cargo target
# directory (target/criterion, target/bench) and BENCHMARKS.md. PYTHON selects the
# interpreter with the SDK installed; without it, .venv/bin/python when that imports
# remotemedia, else the SDK is built into a virtualenv of its own (target/bench-sdk-venv).
set -euo pipefail

usage() {
    sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
}

QUICK=0
for arg in "$@"; do
    case "$arg" in
        --quick) QUICK=1 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "bench.sh: unknown argument: $arg" >&2; usage >&2; exit 2 ;;
    esac
done

cd "$(dirname "$0")/.."
TARGET=${CARGO_TARGET_DIR:-target}
OUT="$TARGET/bench"
if [[ -z ${PYTHON:-} ]]; then
    if [[ -x .venv/bin/python ]] && .venv/bin/python -c "import remotemedia" 2>/dev/null; then
        PYTHON=.venv/bin/python
    else
        SDK_VENV="$TARGET/bench-sdk-venv"
        printf '==> building the Python SDK into %s\n' "$SDK_VENV"
        [[ -x $SDK_VENV/bin/python ]] || python3 -m venv "$SDK_VENV"
        "$SDK_VENV/bin/python" -m pip install --quiet "maturin>=1.9.4,<2"
        "$SDK_VENV/bin/python" -m pip install --quiet .
        PYTHON="$SDK_VENV/bin/python"
    fi
fi
export PYTHONDONTWRITEBYTECODE=1

mkdir -p "$OUT"
rm -f "$OUT"/*.json "$OUT"/*.skip "$OUT"/*.txt "$OUT"/*.md
SINCE=$(date +%s)

step() { printf '\n==> %s\n' "$*"; }

quick_flag=()
criterion_args=()
if [[ $QUICK == 1 ]]; then
    quick_flag=(--quick)
    criterion_args=(--warm-up-time 1 --measurement-time 2)
fi

step "Rust: cargo bench (criterion)"
cargo bench -p remotemedia-core --bench pipeline_execution -- "${criterion_args[@]}"

step "Python: pure-Python baseline"
"$PYTHON" python/benchmarks/benchmark_simple.py "${quick_flag[@]}" --json "$OUT/python.json"

step "Python: remotemedia SDK"
if ! "$PYTHON" python/benchmarks/benchmark_sdk.py "${quick_flag[@]}" --json "$OUT/sdk.json"; then
    echo '{"status": "not measured: the SDK benchmark failed"}' >"$OUT/sdk.json"
fi

step "Python nodes in the runtime (remotemedia-python, every host)"
# A failure here leaves this group "not measured" in the report; the run goes on.
cargo bench -p remotemedia-python --features rustpython --bench python_nodes -- "${criterion_args[@]}" ||
    echo "python_nodes bench failed: its rows are reported as not measured" >&2

step "Remote hop over loopback (remotemedia-remote)"
cargo bench -p remotemedia-remote --bench remote_hop -- "${criterion_args[@]}" | tee "$OUT/remote_hop.txt" ||
    echo "remote_hop bench failed: its rows are reported as not measured" >&2

step "Memory: streaming session (stream_memory example)"
cargo build --release -q -p remotemedia-core --example stream_memory
for n in 10000 100000 1000000; do
    "$TARGET/release/examples/stream_memory" "$n" | tee "$OUT/stream_memory_$n.json" ||
        echo "stream_memory $n failed" >&2
done

step "Memory: remotemedia run (CLI)"
cli="$TARGET/release/remotemedia"
skip() { echo "$*" | tee "$OUT/cli_memory.skip"; }
if [[ ! -f examples/calculator.yaml || ! -f examples/numbers.jsonl ]]; then
    skip "not measured: examples/calculator.yaml or examples/numbers.jsonl does not exist"
elif ! cargo build --release -q -p remotemedia-cli --bin remotemedia; then
    skip "not measured: the remotemedia CLI did not build"
elif [[ ! -x $cli ]]; then
    skip "not measured: $cli not found after the build"
elif ! "$PYTHON" python/benchmarks/peak_rss.py --json "$OUT/cli_memory.json" -- \
    "$cli" run examples/calculator.yaml --input examples/numbers.jsonl; then
    rm -f "$OUT/cli_memory.json"
    skip "not measured: remotemedia run examples/calculator.yaml failed"
fi

step "Audio: remotemedia vs sox and soundfile + soxr (benchmark_audio.py), per-frame cost"
cargo bench -p remotemedia-audio --bench audio_chain -- "${criterion_args[@]}" ||
    echo "audio_chain bench failed: its row is reported as not measured" >&2
# The peers come from their registries, into a virtualenv of the benchmark's own.
AUDIO_VENV="$(cd "$OUT" && pwd)/audio-venv"
if [[ ! -x $AUDIO_VENV/bin/python ]]; then
    "$PYTHON" -m venv "$AUDIO_VENV"
fi
if ! "$AUDIO_VENV/bin/python" -m pip install --quiet numpy soundfile soxr scipy; then
    echo "not measured: pip could not install numpy, soundfile, soxr and scipy" >"$OUT/audio.skip"
elif [[ ! -x $cli ]] && ! cargo build --release -q -p remotemedia-cli --bin remotemedia; then
    echo "not measured: the remotemedia CLI did not build" >"$OUT/audio.skip"
elif ! "$AUDIO_VENV/bin/python" python/benchmarks/benchmark_audio.py --cli "$cli" "${quick_flag[@]}" \
    --json "$OUT/audio.json" --workdir "$OUT"; then
    echo "not measured: benchmark_audio.py failed" >"$OUT/audio.skip"
fi

step "Audio: resampling vs python-soxr and scipy resample_poly (benchmark_resample.py)"
if [[ ! -f $OUT/audio.skip ]]; then
    runs=5
    [[ $QUICK == 1 ]] && runs=2
    if ! cargo build --release -q -p remotemedia-audio --example resample_file ||
        ! "$AUDIO_VENV/bin/python" python/benchmarks/benchmark_resample.py --runs "$runs" \
            --binary "$TARGET/release/examples/resample_file" --json "$OUT/resample.json"; then
        echo "not measured: benchmark_resample.py failed" >"$OUT/resample.skip"
    fi
fi

step "Speech: VAD pipeline vs Python, model speed and memory (benchmark_speech.py)"
# The model and its runtime from PyPI, at the versions crates/remotemedia-speech/MODELS.md
# records, into the benchmark's virtualenv; espeak-ng and sox make the speech file.
if [[ -f $OUT/audio.skip ]]; then
    echo "the speech benchmark needs the audio benchmark's virtualenv: not measured" >&2
elif ! "$AUDIO_VENV/bin/python" -m pip install --quiet "onnxruntime==1.32.0" ||
    ! "$AUDIO_VENV/bin/python" -m pip install --quiet --no-deps "silero-vad==6.2.3"; then
    echo "pip could not install onnxruntime and silero-vad: the speech section is not measured" >&2
elif cargo build --release -q -p remotemedia-cli -p remotemedia-speech --bins --examples; then
    REMOTEMEDIA_VAD_PYTHON="$AUDIO_VENV/bin/python" \
        "$AUDIO_VENV/bin/python" python/benchmarks/benchmark_speech.py --cli "$TARGET/release/remotemedia" \
        --examples "$TARGET/release/examples" "${quick_flag[@]}" \
        --json "$OUT/speech.json" --markdown "$OUT/speech.md" ||
        echo "benchmark_speech.py failed: the speech section is reported as not measured" >&2
else
    echo "the speech benchmark did not build: the speech section is reported as not measured" >&2
fi

step "Live sessions: load test against Pipecat (benchmark_sessions.py)"
# Pipecat from PyPI (BSD-2-Clause) into a virtualenv of its own; the VAD model for
# remotemedia from the speech step's virtualenv.
PIPECAT_VENV="$(cd "$OUT" && pwd)/pipecat-venv"
pipecat_args=()
if [[ ! -x $PIPECAT_VENV/bin/python ]]; then
    "$PYTHON" -m venv "$PIPECAT_VENV" || true
fi
if "$PIPECAT_VENV/bin/python" -m pip install --quiet "pipecat-ai[websocket]==1.14.0" uvicorn; then
    pipecat_args=(--pipecat-python "$PIPECAT_VENV/bin/python")
else
    echo "pip could not install pipecat-ai: remotemedia is measured alone" >&2
fi
if [[ -f $OUT/audio.skip ]]; then
    echo "the sessions benchmark needs the VAD model (audio benchmark's virtualenv): not measured" >&2
else
    REMOTEMEDIA_VAD_PYTHON="$AUDIO_VENV/bin/python" \
        "$PYTHON" python/benchmarks/benchmark_sessions.py --cli "$TARGET/release/remotemedia" \
        "${pipecat_args[@]}" "${quick_flag[@]}" --json "$OUT/sessions.json" --markdown "$OUT/sessions.md" ||
        echo "benchmark_sessions.py failed: the sessions section is reported as not measured" >&2
fi

step "Report"
# A quick run's figures are indicative only: they never replace the tracked report.
report="BENCHMARKS.md"
[[ $QUICK == 1 ]] && report="$OUT/BENCHMARKS.quick.md"
report_args=(--criterion-dir "$TARGET/criterion" --bench-dir "$OUT" --since "$SINCE" --out "$report")
"$PYTHON" scripts/bench_report.py "${report_args[@]}" "${quick_flag[@]}"
