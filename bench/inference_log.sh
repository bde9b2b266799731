#!/usr/bin/env bash
# What INFERENCE_LOG costs: POST /Iris (models_serve) with the log off and on, in both isolation modes, in one run.
# For each mode two servers run side by side (log off, log on, the same models and build cache) and are loaded in
# turn, ROUNDS times, each load `wrk -t2 -c32` for DURATION seconds after a 1 s warm-up; each figure is the median
# of its rounds, and the ratios are on / off (the goal: throughput ≥ 0.9, p99 ≤ 1.2). Loopback only.
# Usage: bench/inference_log.sh [path/to/autoserve]   (default .build/release/autoserve; needs wrk and curl)
# SAME=1 runs the "on" server without the log too (an A/A run): its ratios show how far two identical servers
# differ on this machine, the noise the on / off ratios are read against.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${1:-$ROOT/.build/release/autoserve}
PORT=${PORT:-18460}
DURATION=${DURATION:-6}
ROUNDS=${ROUNDS:-5}
source "$(dirname "$0")/common.sh"
need_wrk
scratch
cat > "$WORK/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"variables": {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}}'
wrk.headers["Content-Type"] = "application/json"
LUA

median() { sort -g | awk '{ values[NR] = $1 } END { print (NR % 2) ? values[(NR + 1) / 2] : (values[NR / 2] + values[NR / 2 + 1]) / 2 }'; }
p99_ms() {  # the 99% line of wrk --latency, in ms
    awk '$1 == "99%" { value = $2; if (value ~ /us$/) { sub(/us$/, "", value); value /= 1000 } else if (value ~ /ms$/) { sub(/ms$/, "", value) } else if (value ~ /s$/) { sub(/s$/, "", value); value *= 1000 }; print value }' "$1"
}

echo "machine: $(nproc) cores, $(uname -sr); $(date -u '+%Y-%m-%d %H:%M') UTC; wrk -t2 -c32, ${DURATION} s x ${ROUNDS} rounds, POST /Iris"
printf '| isolation | log off req/s | log on req/s | on / off | p99 off | p99 on | on / off | lines written | dropped |\n|---|---|---|---|---|---|---|---|---|\n'
for isolation in process inprocess; do
    off_port=$PORT; on_port=$((PORT + 1))
    on_log=$WORK/inference-$isolation.jsonl; [ "${SAME:-0}" = 1 ] && on_log=
    MODEL_ISOLATION=$isolation MODELS_DIR=$ROOT/models_serve STATE_DIR=$WORK/state-off CACHE_DIR=$WORK/cache PORT=$off_port HOST=127.0.0.1 \
        LOG_LEVEL=warning "$BIN" serve 2> "$WORK/off.log" &
    off=$!
    wait_for 300 curl -sf "localhost:$off_port/readyz"
    MODEL_ISOLATION=$isolation MODELS_DIR=$ROOT/models_serve STATE_DIR=$WORK/state-on CACHE_DIR=$WORK/cache PORT=$on_port HOST=127.0.0.1 \
        LOG_LEVEL=warning INFERENCE_LOG=$on_log INFERENCE_LOG_KEEP=50 "$BIN" serve 2> "$WORK/on.log" &
    on=$!
    wait_for 300 curl -sf "localhost:$on_port/readyz"
    wait_for 60 curl -sf -X POST "localhost:$on_port/Iris" -d '{"variables": {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}}'
    : > "$WORK/off.rps"; : > "$WORK/on.rps"; : > "$WORK/off.p99"; : > "$WORK/on.p99"
    for round in $(seq "$ROUNDS"); do
        for side in off on; do
            port=$off_port; [ "$side" = on ] && port=$on_port
            wrk -t2 -c32 -d1s -s "$WORK/post.lua" "http://127.0.0.1:$port/Iris" > /dev/null
            wrk -t2 -c32 -d"${DURATION}s" --latency -s "$WORK/post.lua" "http://127.0.0.1:$port/Iris" > "$WORK/$side.txt"
            if grep -q "Non-2xx" "$WORK/$side.txt"; then echo "non-2xx answers with the log $side:" >&2; cat "$WORK/$side.txt" >&2; exit 1; fi
            awk '/Requests\/sec/ {print $2}' "$WORK/$side.txt" >> "$WORK/$side.rps"
            p99_ms "$WORK/$side.txt" >> "$WORK/$side.p99"
        done
    done
    metrics=$(curl -s "localhost:$on_port/metrics")
    written=$(echo "$metrics" | awk '/^autoserve_inference_log_lines_total/ {print $2}')
    dropped=$(echo "$metrics" | awk '/^autoserve_inference_log_dropped_total/ {print $2}')
    kill -TERM "$off" "$on"; wait "$off" "$on" || true
    lines=$( (cat "$WORK/inference-$isolation.jsonl"* 2>/dev/null || true) | wc -l)
    rps_off=$(median < "$WORK/off.rps"); rps_on=$(median < "$WORK/on.rps")
    p99_off=$(median < "$WORK/off.p99"); p99_on=$(median < "$WORK/on.p99")
    awk -v i="$isolation" -v a="$rps_off" -v b="$rps_on" -v c="$p99_off" -v d="$p99_on" -v w="${written:-0}" -v x="${dropped:-0}" -v l="$lines" \
        'BEGIN { printf "| %s | %.0f | %.0f | %.2f | %.2f ms | %.2f ms | %.2f | %.0f (%d in the files after the stop) | %.0f |\n", i, a, b, b / a, c, d, d / c, w, l, x }'
done
