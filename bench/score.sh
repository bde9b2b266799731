#!/usr/bin/env bash
# Rows scored per second, one run, models_serve/Iris in worker processes (docs/operations.md, "Scoring a file"; BENCHMARKS.md):
#   single   wrk -t2 -c32, POST /Iris {"variables": {...}}: one row per request (the baseline of the ratios);
#   batch    wrk -t2 -c4, POST /Iris {"rows": [1,000 rows]}: req/s x 1,000;
#   score --url         autoserve score on 100,000 rows against the same server (batches of 1,000, 2 in flight);
#   score --models-dir  the same file with the model built and loaded by the command itself, no server.
# Each load runs ROUNDS times in turn, DURATION seconds after a 1 s warm-up; each figure is the median of its rounds.
# Loopback only; the client shares the 2 cores with the server, as it would on one machine.
# Usage: bench/score.sh [path/to/autoserve]   (default .build/release/autoserve; needs wrk, curl, python3)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${1:-$ROOT/.build/release/autoserve}
PORT=${PORT:-18470}
DURATION=${DURATION:-6}
ROUNDS=${ROUNDS:-3}
ROWS=${ROWS:-100000}
source "$(dirname "$0")/common.sh"
need_wrk
scratch
python3 - "$WORK" "$ROWS" <<'PY'
import random, sys
work, count = sys.argv[1], int(sys.argv[2])
random.seed(7)
rows = [(round(random.uniform(4.3, 7.9), 1), round(random.uniform(2.0, 4.4), 1), round(random.uniform(1.0, 6.9), 1), round(random.uniform(0.1, 2.5), 1))
        for _ in range(count)]
with open(f"{work}/iris.csv", "w") as f:
    f.write("sepal_length,sepal_width,petal_length,petal_width\n")
    f.writelines("%s,%s,%s,%s\n" % row for row in rows)
objects = ['{"sepal_length": %s, "sepal_width": %s, "petal_length": %s, "petal_width": %s}' % row for row in rows[:1000]]
with open(f"{work}/single.lua", "w") as f:
    f.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n')
    f.write("wrk.body = '{\"variables\": %s}'\n" % objects[0])
with open(f"{work}/batch.lua", "w") as f:
    f.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n')
    f.write("wrk.body = '{\"rows\": [%s]}'\n" % ",".join(objects))
PY
median() { sort -g | awk '{ values[NR] = $1 } END { print (NR % 2) ? values[(NR + 1) / 2] : (values[NR / 2] + values[NR / 2 + 1]) / 2 }'; }
rate() { awk '/rows scored in/ { gsub(/[()]/, ""); for (i = 1; i <= NF; i++) if ($i == "rows/s;") print $(i - 1) }' "$1"; }

MODELS_DIR=$ROOT/models_serve STATE_DIR=$WORK/state CACHE_DIR=$WORK/cache PORT=$PORT HOST=127.0.0.1 LOG_LEVEL=warning "$BIN" serve 2> "$WORK/server.log" &
server=$!
wait_for 300 curl -sf "localhost:$PORT/readyz"
wait_for 60 curl -sf -X POST "localhost:$PORT/Iris" -d '{"variables": {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}}'
# The model built once for --models-dir, so its rounds measure scoring, not the build.
STATE_DIR=$WORK/state-local CACHE_DIR=$WORK/cache "$BIN" score --model Iris --models-dir "$ROOT/models_serve" "$WORK/iris.csv" -o /dev/null 2> /dev/null

echo "machine: $(nproc) cores, $(uname -sr); $(date -u '+%Y-%m-%d %H:%M') UTC; $ROWS rows; ${DURATION} s x ${ROUNDS} rounds"
for round in $(seq "$ROUNDS"); do
    for load in single batch; do
        connections=32; [ $load = batch ] && connections=4
        wrk -t2 -c$connections -d1s -s "$WORK/$load.lua" "http://127.0.0.1:$PORT/Iris" > /dev/null
        wrk -t2 -c$connections -d"${DURATION}s" -s "$WORK/$load.lua" "http://127.0.0.1:$PORT/Iris" > "$WORK/$load.txt"
        if grep -q "Non-2xx" "$WORK/$load.txt"; then echo "non-2xx answers ($load):" >&2; cat "$WORK/$load.txt" >&2; exit 1; fi
        per=1; [ $load = batch ] && per=1000
        awk -v per=$per '/Requests\/sec/ {print $2 * per}' "$WORK/$load.txt" >> "$WORK/$load.rows"
    done
    start=$(date +%s.%N)
    "$BIN" score --model Iris --url "http://127.0.0.1:$PORT" "$WORK/iris.csv" -o "$WORK/url.jsonl" 2> "$WORK/url.txt"
    end=$(date +%s.%N)
    rate "$WORK/url.txt" >> "$WORK/url.rows"
    echo "$ROWS $start $end" | awk '{ print $1 / ($3 - $2) }' >> "$WORK/url.wall"
    start=$(date +%s.%N)
    STATE_DIR=$WORK/state-local CACHE_DIR=$WORK/cache "$BIN" score --model Iris --models-dir "$ROOT/models_serve" "$WORK/iris.csv" \
        -o "$WORK/local.jsonl" 2> "$WORK/local.txt"
    end=$(date +%s.%N)
    rate "$WORK/local.txt" >> "$WORK/local.rows"
    echo "$ROWS $start $end" | awk '{ print $1 / ($3 - $2) }' >> "$WORK/local.wall"
    [ "$(wc -l < "$WORK/url.jsonl")" = "$ROWS" ] || { echo "score --url wrote $(wc -l < "$WORK/url.jsonl") lines for $ROWS rows" >&2; exit 1; }
    cmp -s "$WORK/url.jsonl" "$WORK/local.jsonl" || { echo "the two modes wrote different answers" >&2; exit 1; }
done
kill -TERM "$server"; wait "$server" || true

single=$(median < "$WORK/single.rows")
printf '| how | rows/s (scoring) | rows/s (whole command) | / single-row POSTs |\n|---|---|---|---|\n'
awk -v s="$single" 'BEGIN { printf "| POST /Iris, one row per request (wrk -c32) | %.0f | | 1.00 |\n", s }'
awk -v s="$single" -v b="$(median < "$WORK/batch.rows")" 'BEGIN { printf "| POST /Iris {\"rows\": 1,000} (wrk -c4) | %.0f | | %.2f |\n", b, b / s }'
awk -v s="$single" -v r="$(median < "$WORK/url.rows")" -v w="$(median < "$WORK/url.wall")" -v n="$ROWS" \
    'BEGIN { printf "| autoserve score --url, %d rows of CSV | %.0f | %.0f | %.2f |\n", n, r, w, r / s }'
awk -v s="$single" -v r="$(median < "$WORK/local.rows")" -v w="$(median < "$WORK/local.wall")" \
    'BEGIN { printf "| autoserve score --models-dir, the same file | %.0f | %.0f | %.2f |\n", r, w, r / s }'
