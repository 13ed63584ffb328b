#!/usr/bin/env bash
# Streams a long WAV file through `remotemedia run` (PassThrough, WAV out) and reports
# the wall time and the process's peak RSS: decoding goes packet by packet and the
# session applies backpressure, so memory stays flat whatever the file's length.
#
#   scripts/bench_audio_stream.sh            1 hour of 8 kHz mono 16-bit (~57 MB)
#   scripts/bench_audio_stream.sh SECONDS    another length
#
# Needs cargo, sox and python3. Writes only under the cargo target directory
# (target/bench/audio_stream) and prints one JSON object.
set -euo pipefail

SECS=${1:-3600}
cd "$(dirname "$0")/.."
TARGET=${CARGO_TARGET_DIR:-target}
OUT="$TARGET/bench/audio_stream"
mkdir -p "$OUT"

cargo build --release -q -p remotemedia-cli --bin remotemedia
cli="$TARGET/release/remotemedia"

in="$OUT/long.wav"
if [[ ! -f $in ]] || [[ $(soxi -D "$in" 2>/dev/null | cut -d. -f1) != "$SECS" ]]; then
    sox -n -r 8000 -c 1 -b 16 "$in" synth "$SECS" sine 300-3300 vol 0.5
fi
cat >"$OUT/pass.yaml" <<'EOF'
version: v1
metadata: { name: audio-stream }
nodes:
  - { id: pass, node_type: PassThrough }
EOF

start=$(date +%s.%N)
"$cli" run "$OUT/pass.yaml" --input "$in" --output "$OUT/out.wav" --metrics "$OUT/metrics.json" \
    --no-progress
end=$(date +%s.%N)

python3 - "$in" "$OUT/out.wav" "$OUT/metrics.json" "$start" "$end" "$SECS" <<'EOF'
import json, os, sys
src, dst, metrics, start, end, secs = sys.argv[1:]
m = json.load(open(metrics))["metrics"]
wall = float(end) - float(start)
print(json.dumps({
    "audio_seconds": int(secs),
    "input_mb": round(os.path.getsize(src) / 2**20, 1),
    "output_mb": round(os.path.getsize(dst) / 2**20, 1),
    "identical": open(src, "rb").read() == open(dst, "rb").read(),
    "wall_s": round(wall, 2),
    "x_realtime": round(int(secs) / wall, 1),
    "peak_rss_mb": round(m["peak_rss_bytes"] / 2**20, 1),
}, indent=2))
EOF
