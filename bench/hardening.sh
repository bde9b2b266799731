#!/usr/bin/env bash
# What hostile input costs the server (issue "Harden what a newcomer, a client and a models repository can do"):
#   1. /metrics after 20,000 POSTs to made-up model names: its size, and the server's RSS before and after;
#   2. exporting a version holding a 1 GiB file (1 MB compressed in git): the server's peak RSS (VmHWM) during
#      the sync, and that the version serves.
# Usage: bench/hardening.sh [path/to/autoserve]   (default .build/release/autoserve)
set -euo pipefail
BIN=${1:-.build/release/autoserve}
PORT=${PORT:-18441}
NAMES=${NAMES:-20000}
source "$(dirname "$0")/common.sh"
scratch

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
hwm_kb() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }
synced() { curl -fsS "http://127.0.0.1:$PORT/" | grep -q '"result":"success"'; }

echo "== 1. $NAMES made-up model names"
MODELS_DIR=models_serve STATE_DIR=$WORK/state PORT=$PORT HOST=127.0.0.1 LOG_LEVEL=warning "$BIN" serve &
SERVER=$!
wait_for 300 synced
before=$(rss_kb $SERVER)
python3 - "$PORT" "$NAMES" <<'PY'
import http.client, sys, uuid
port, count = int(sys.argv[1]), int(sys.argv[2])
connection = http.client.HTTPConnection("127.0.0.1", port)
for _ in range(count):
    connection.request("POST", "/" + uuid.uuid4().hex, body=b"{}")
    connection.getresponse().read()
PY
bytes=$(curl -fsS "http://127.0.0.1:$PORT/metrics" | wc -c)
echo "/metrics: $bytes bytes; server RSS $((before / 1024)) MB before, $(( $(rss_kb $SERVER) / 1024 )) MB after"
kill $SERVER; wait $SERVER 2>/dev/null || true

echo "== 2. a version holding a 1 GiB file"
REPO=$WORK/repo
mkdir -p "$REPO/Big"
git -C "$REPO" init -q -b main
cat > "$REPO/Big/etls.swift" <<'SWIFT'
import AutoServeModel

struct Big {
    init(path: String) {}
    func transform_predict(_ variables: [String: JSON]) -> [String: JSON] { ["ok": true] }
}
SWIFT
head -c $((1 << 30)) /dev/zero > "$REPO/Big/weights.bin"
git -C "$REPO" add -A
git -C "$REPO" -c user.email=bench@autoserve.invalid -c user.name=bench commit -q -m big
git -C "$REPO" gc -q
rm "$REPO/Big/weights.bin"
echo "repository: $(du -sh "$REPO/.git" | cut -f1) on disk"
MODELS_REPO=$REPO STATE_DIR=$WORK/state2 MAX_MODEL_BYTES=$((1 << 31)) PORT=$PORT HOST=127.0.0.1 LOG_LEVEL=warning "$BIN" serve &
SERVER=$!
wait_for 600 synced
status=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/Big")
echo "Big answers $status; server peak RSS during the export (VmHWM) $(( $(hwm_kb $SERVER) / 1024 )) MB, now $(( $(rss_kb $SERVER) / 1024 )) MB"
kill $SERVER; wait $SERVER 2>/dev/null || true
