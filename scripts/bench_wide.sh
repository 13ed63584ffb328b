#!/usr/bin/env bash
# Times `remotemedia run` on wide and long graphs: 1000 ints through
#   flat-N     one PassThrough fanned out to N PassThrough sinks (N + 1 stages),
#   chain-N    N PassThrough nodes in a chain (one fused stage),
#   timeout-N  the same chain with `timeout_ms` on every node (N dedicated stages),
# for N in 1000, 4000 and 10000. Prints one line per case: name, seconds, peak RSS.
# A case that takes longer than LIMIT seconds (default 120) is stopped and reported.
#
#   scripts/bench_wide.sh [path/to/remotemedia]
#
# Needs python3 (to write the manifests) and GNU time. Without an argument, builds
# and uses the release binary of the cargo target directory. Writes only under
# $CARGO_TARGET_DIR/bench/wide.
set -euo pipefail

cd "$(dirname "$0")/.."
TARGET=${CARGO_TARGET_DIR:-target}
LIMIT=${LIMIT:-120}
if [[ $# -ge 1 ]]; then
    cli=$1
else
    cargo build --release -q -p remotemedia-cli --bin remotemedia
    cli="$TARGET/release/remotemedia"
fi
OUT="$TARGET/bench/wide"
mkdir -p "$OUT"

python3 - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
with open(f"{out}/items.jsonl", "w") as f:
    f.writelines(f"{i}\n" for i in range(1000))
for n in (1000, 4000, 10000):
    flat = [{"id": "in", "node_type": "PassThrough"}] + [
        {"id": f"n{i}", "node_type": "PassThrough"} for i in range(n)]
    cases = {
        "flat": (flat, [{"from": "in", "to": f"n{i}"} for i in range(n)]),
        "chain": ([{"id": f"n{i}", "node_type": "PassThrough"} for i in range(n)],
                  [{"from": f"n{i - 1}", "to": f"n{i}"} for i in range(1, n)]),
        "timeout": ([{"id": f"n{i}", "node_type": "PassThrough", "timeout_ms": 10000}
                     for i in range(n)],
                    [{"from": f"n{i - 1}", "to": f"n{i}"} for i in range(1, n)]),
    }
    for kind, (nodes, connections) in cases.items():
        manifest = {"version": "v1", "metadata": {"name": f"{kind}-{n}"},
                    "nodes": nodes, "connections": connections}
        with open(f"{out}/{kind}-{n}.json", "w") as f:
            json.dump(manifest, f)
PY

for kind in flat chain timeout; do
    for n in 1000 4000 10000; do
        m="$OUT/$kind-$n.json"
        if /usr/bin/time -f "%e %M" -o "$OUT/time.txt" timeout "$LIMIT" \
            "$cli" run "$m" --input "$OUT/items.jsonl" -o /dev/null -q; then
            read -r secs kb <"$OUT/time.txt"
            printf '%-14s %8.2f s %8d KB\n' "$kind-$n" "$secs" "$kb"
        else
            printf '%-14s  did not finish within %s s\n' "$kind-$n" "$LIMIT"
        fi
    done
done
