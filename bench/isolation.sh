#!/usr/bin/env bash
# Throughput of one trivial model, in-process and in a worker process, with the same load generator (wrk,
# loopback, 2 threads, 32 connections, 10 s each, same body) in one run. Prints requests/s and the ratio.
# Usage: bench/isolation.sh [path/to/autoserve]   (default .build/release/autoserve; needs wrk)
set -euo pipefail
BIN=${1:-.build/release/autoserve}
PORT=${PORT:-18432}
DURATION=${DURATION:-10s}
source "$(dirname "$0")/common.sh"
need_wrk
scratch
cp -r "$(dirname "$0")/models" "$WORK/models"
cat > "$WORK/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"variables": {"n": 42}}'
wrk.headers["Content-Type"] = "application/json"
LUA

run() {  # run <isolation>
    MODEL_ISOLATION=$1 MODELS_DIR=$WORK/models STATE_DIR=$WORK/state PORT=$PORT HOST=127.0.0.1 LOG_LEVEL=warning "$BIN" serve &
    local server=$!
    until curl -sf "localhost:$PORT/readyz" >/dev/null; do sleep 0.1; done
    wrk -t2 -c32 -d2s -s "$WORK/post.lua" "http://127.0.0.1:$PORT/Trivial" >/dev/null   # warm-up
    wrk -t2 -c32 -d"$DURATION" --latency -s "$WORK/post.lua" "http://127.0.0.1:$PORT/Trivial" > "$WORK/$1.txt"
    kill -TERM "$server"; wait "$server" || true
    awk '/Requests\/sec/ {print $2}' "$WORK/$1.txt"
}

inprocess=$(run inprocess)
process=$(run process)
echo "machine: $(nproc) cores, $(uname -sr); $(date -u +%Y-%m-%d); wrk -t2 -c32 -d$DURATION, POST /Trivial"
echo "in-process: $inprocess requests/s"
echo "process isolation: $process requests/s"
awk -v a="$process" -v b="$inprocess" 'BEGIN { printf "process / in-process: %.2f\n", a / b }'
grep -h -A4 'Latency Distribution' "$WORK/inprocess.txt" "$WORK/process.txt" | sed 's/^/  /'
