#!/usr/bin/env bash
# The OpenAPI document against real tools (docs/http-api.md, "OpenAPI"): a server of models_serve/ with the sync route and the
# webhook on; its GET /openapi.json validated by openapi-spec-validator, equal to what `autoserve generate --openapi`
# prints for the same folder; then schemathesis runs every default check against the live server
# (Tests/openapi/schemathesis.toml says which answers a schema cannot express, and why); then tritonclient speaks the
# Open Inference Protocol v2 to it (Tests/clients/tritonclient_check.py).
# Usage: Tests/openapi/check.sh [path/to/autoserve] [path/to/venv]   (make openapi-check)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=$(realpath "${1:-$ROOT/.build/debug/autoserve}")
VENV=$(realpath "${2:-$ROOT/.venv}")
source "$ROOT/bench/common.sh"
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export MODELS_DIR=$ROOT/models_serve STATE_DIR=$WORK/state ADMIN_TOKEN=openapi-check-token WEBHOOK_SECRET=openapi-check-secret
PORT=$PORT HOST=127.0.0.1 LOG_LEVEL=warning "$BIN" serve 2> "$WORK/server.log" &
wait_for 300 curl -sf "http://127.0.0.1:$PORT/readyz"
# Every model of models_serve ready, so the document has a path for each.
wait_for 300 sh -c "curl -s http://127.0.0.1:$PORT/ | grep -q '\"loading\"' && exit 1 || exit 0"
curl -sf "http://127.0.0.1:$PORT/openapi.json" > "$WORK/served.json"
for model in $(ls "$ROOT/models_serve"); do
    grep -q "\"/$model\":" "$WORK/served.json" || { echo "openapi.json has no path for $model" >&2; cat "$WORK/server.log" >&2; exit 1; }
done
"$VENV/bin/openapi-spec-validator" "$WORK/served.json"
"$BIN" generate --openapi "$ROOT/models_serve" > "$WORK/generated.json"
printf '\n' >> "$WORK/served.json"
cmp "$WORK/served.json" "$WORK/generated.json" || { echo "generate --openapi differs from GET /openapi.json" >&2; exit 1; }
echo "openapi.json: valid OpenAPI 3.1, the same as generate --openapi"
cd "$ROOT/Tests/openapi"
"$VENV/bin/schemathesis" run "http://127.0.0.1:$PORT/openapi.json" --max-examples "${MAX_EXAMPLES:-100}" --seed 1 --no-color > "$WORK/schemathesis.txt" 2>&1 || {
    cat "$WORK/schemathesis.txt" | cut -c1-400 >&2
    exit 1
}
sed -n '/SUMMARY/,$p' "$WORK/schemathesis.txt"
# The Open Inference Protocol v2 routes through tritonclient, against the same server.
"$VENV/bin/python3" "$ROOT/Tests/clients/tritonclient_check.py" "127.0.0.1:$PORT"
