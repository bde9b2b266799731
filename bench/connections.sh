#!/usr/bin/env bash
# What hostile connections cost (issue "Connections a hostile or careless client opens cannot starve the server"):
#   1. /healthz and POST /Iris under wrk (-c8, DURATION s each) alone, then while 2,000 idle and 200 slowloris
#      connections (a header byte every 200 ms) are held open: requests/s and p99;
#   2. a client that pipelines rows for 10 s and never reads the answers: the server's RSS before and after.
# Usage: bench/connections.sh [path/to/autoserve]   (default .build/release/autoserve)
set -euo pipefail
BIN=${1:-.build/release/autoserve}
PORT=${PORT:-18451}
DURATION=${DURATION:-5}
source "$(dirname "$0")/common.sh"
scratch
ulimit -n "$(ulimit -Hn)"

synced() { curl -fsS "http://127.0.0.1:$PORT/" | grep -q '"result":"success"'; }
rss_mb() { awk '/^VmRSS/ {printf "%d", $2 / 1024}' "/proc/$1/status"; }
body='{"variables": {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}}'
cat > "$WORK/post.lua" <<LUA
wrk.method = "POST"
wrk.body = '$body'
wrk.headers["Content-Type"] = "application/json"
LUA
load() {  # load <label> <path> [lua]
    local out
    out=$(wrk -t2 -c8 -d"${DURATION}s" --latency ${3:+-s "$3"} "http://127.0.0.1:$PORT$2")
    printf '%s: %s requests/s, p99 %s\n' "$1" "$(awk '/Requests\/sec/ {print $2}' <<<"$out")" "$(awk '$1 == "99%" {print $2}' <<<"$out")"
}

MODELS_DIR=models_serve STATE_DIR=$WORK/state PORT=$PORT HOST=127.0.0.1 LOG_LEVEL=warning HEADER_TIMEOUT=60s "$BIN" serve &
SERVER=$!
wait_for 300 synced
echo "== 1. idle and slowloris connections"
load "GET /healthz, alone" /healthz
load "POST /Iris, alone" /Iris "$WORK/post.lua"
python3 - "$PORT" "$(( DURATION * 2 + 4 ))" <<'PY' &
import socket, sys, time
port, seconds = int(sys.argv[1]), float(sys.argv[2])
idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(2000)]
slow = [socket.create_connection(("127.0.0.1", port)) for _ in range(200)]
head = b"POST /Iris HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
end = time.time() + seconds
i = 0
while time.time() < end:
    for s in slow:
        try: s.send(head[i % len(head):i % len(head) + 1])
        except OSError: pass
    i += 1
    time.sleep(0.2)
PY
ATTACK=$!
sleep 2
load "GET /healthz, with 2,000 idle + 200 slowloris" /healthz
load "POST /Iris, with 2,000 idle + 200 slowloris" /Iris "$WORK/post.lua"
wait $ATTACK || true

echo "== 2. a client that never reads"
before=$(rss_mb $SERVER)
python3 - "$PORT" "$body" <<'PY'
import socket, sys, time
port, body = int(sys.argv[1]), sys.argv[2].encode()
request = b"POST /Iris HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
s = socket.create_connection(("127.0.0.1", port))
s.setblocking(False)
sent, end = 0, time.time() + 10
batch = request * 1000
while time.time() < end:
    try: sent += s.send(batch)
    except BlockingIOError: time.sleep(0.01)
print(f"sent {sent >> 20} MB of rows in 10 s without reading an answer")
PY
echo "server RSS ${before} MB before, $(rss_mb $SERVER) MB after"
kill $SERVER; wait $SERVER 2>/dev/null || true
