#!/usr/bin/env bash
# Git-sync latencies of the release binary, on loopback, bounded in time:
#   1. cold start: clone a repository of 20 models and build them all (empty STATE_DIR) until /readyz is 200;
#   2. admin sync to serving: one model changed and pushed, POST /-/sync, until that model answers the new
#      version (three times);
#   3. warm restart: the same repository and STATE_DIR, until /readyz is 200 (plugins come from the cache).
# Usage: bench/git_sync.sh [path/to/autoserve]   (default .build/release/autoserve)
set -euo pipefail
BIN=${1:-.build/release/autoserve}
MODELS=${MODELS:-20}
PORT=${PORT:-18431}
source "$(dirname "$0")/common.sh"
scratch
REPO=$WORK/models

now_ms() { date +%s%3N; }
model() {  # model <name> <label>
    mkdir -p "$REPO/$1"
    cat > "$REPO/$1/etls.swift" <<SWIFT
import AutoServeModel

struct $1 {
    init(path: String) {}
    func transform_predict(_ variables: [String: JSON]) -> [String: JSON] { ["label": "$2"] }
}
SWIFT
}
serve() {
    MODELS_REPO=$REPO STATE_DIR=$WORK/state ADMIN_TOKEN=bench PORT=$PORT HOST=127.0.0.1 LOG_LEVEL=warning "$BIN" serve &
    SERVER=$!
}

mkdir -p "$REPO"
git -C "$REPO" init -q -b main
for i in $(seq -w 1 "$MODELS"); do model "Model$i" v1; done
git -C "$REPO" add -A && git -C "$REPO" -c user.email=b@b -c user.name=bench commit -qm v1

start=$(now_ms); serve
wait_for 900 curl -sf "localhost:$PORT/readyz"
cold=$(( $(now_ms) - start ))

swaps=()
for label in v2 v3 v4; do
    model Model07 "$label"
    git -C "$REPO" -c user.email=b@b -c user.name=bench commit -qam "$label"
    start=$(now_ms)
    curl -sf -XPOST -H 'Authorization: Bearer bench' "localhost:$PORT/-/sync" >/dev/null
    wait_for 300 sh -c "curl -sf localhost:$PORT/Model07 | grep -q '\"$label\"'"
    swaps+=($(( $(now_ms) - start )))
done

kill -TERM "$SERVER"; wait "$SERVER" || true
start=$(now_ms); serve
wait_for 300 curl -sf "localhost:$PORT/readyz"
warm=$(( $(now_ms) - start ))
compiled=$(curl -sf "localhost:$PORT/metrics" | grep -c 'autoserve_model_builds_total{' || true)
kill -TERM "$SERVER"; wait "$SERVER" || true

echo "machine: $(nproc) cores, $(uname -sr); $(date -u +%Y-%m-%d)"
echo "cold start, $MODELS models, empty STATE_DIR: ${cold} ms"
echo "admin sync to new version serving (1 of $MODELS models changed): ${swaps[*]} ms"
echo "warm restart to ready: ${warm} ms (model series with builds in the warm server: ${compiled})"
