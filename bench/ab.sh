#!/usr/bin/env bash
# Same-run A/B of two builds of autoserve (BENCHMARKS.md): both serve models_serve/ at once, each on its own port, and
# every load runs against A and B, ROUNDS times in turn (A first in odd rounds, B first in even ones), so that the
# machine's drift (30 % from one minute to the next on a shared VM) and the order fall on both alike; each figure is
# the median of its rounds, and B/A is their ratio.
#   single   wrk -t2 -c32, POST /Iris {"variables": {...}}: one row per request
#   batch    wrk -t2 -c4,  POST /Iris {"rows": [1,000 rows]}: rows/s
#   tree     wrk -t2 -c32, POST /CreditScore (a LightGBM model of models_serve/)
#   all      wrk -t2 -c32, POST /all
# Usage: bench/ab.sh A/autoserve B/autoserve   (each beside its autoserve-worker; needs wrk, curl, python3)
# MODELS_A and MODELS_B (default: models_serve/) give each build the models of its own commit, when they changed;
# LOADS (default: all four) picks loads, e.g. LOADS=tree.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
A=$1
B=$2
DURATION=${DURATION:-6}
ROUNDS=${ROUNDS:-5}
source "$(dirname "$0")/common.sh"
need_wrk
scratch
python3 - "$WORK" <<'PY'
import random, sys
work = sys.argv[1]
random.seed(7)
rows = ['{"sepal_length": %s, "sepal_width": %s, "petal_length": %s, "petal_width": %s}' % (
    round(random.uniform(4.3, 7.9), 1), round(random.uniform(2.0, 4.4), 1), round(random.uniform(1.0, 6.9), 1), round(random.uniform(0.1, 2.5), 1))
    for _ in range(1000)]
def script(name, body):
    with open(f"{work}/{name}.lua", "w") as f:
        f.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n')
        f.write("wrk.body = '%s'\n" % body)
script("single", '{"variables": %s}' % rows[0])
script("batch", '{"rows": [%s]}' % ",".join(rows))
script("tree", '{"variables": {"income": 42000, "debt_ratio": 0.45, "age": 29, "months_employed": 14, "late_payments": 2, "home": "rent", "purpose": "business"}}')
script("all", '{"variables": {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2, "tenure_months": 3}}')
PY

start() {  # start <binary> <port> <name> <models>
    MODELS_DIR=$4 STATE_DIR=$WORK/state-$3 PORT=$2 HOST=127.0.0.1 LOG_LEVEL=warning "$1" serve 2> "$WORK/$3.log" &
    wait_for 300 settled "$2"
}
start "$A" 18481 a "${MODELS_A:-$ROOT/models_serve}"
start "$B" 18482 b "${MODELS_B:-$ROOT/models_serve}"

rate() {  # rate <port> <load>: requests/s (rows/s for batch)
    local connections=32 path=/Iris
    case $2 in batch) connections=4 ;; tree) path=/CreditScore ;; all) path=/all ;; esac
    wrk -t2 -c$connections -d1s -s "$WORK/$2.lua" "http://127.0.0.1:$1$path" >/dev/null
    local requests
    requests=$(wrk -t2 -c$connections -d"${DURATION}s" -s "$WORK/$2.lua" "http://127.0.0.1:$1$path" | awk '/Requests\/sec/ { print $2 }')
    [ "$2" = batch ] && requests=$(awk -v r="$requests" 'BEGIN { print r * 1000 }')
    echo "$requests"
}
median() { sort -g | awk '{ values[NR] = $1 } END { print (NR % 2) ? values[(NR + 1) / 2] : (values[NR / 2] + values[NR / 2 + 1]) / 2 }'; }

echo "A: $A"
echo "B: $B"
echo "$(nproc) cores, $(date -u '+%Y-%m-%d %H:%M UTC'), $ROUNDS rounds of ${DURATION} s, A first in odd rounds, B first in even ones"
echo
echo "| load | A | B | B/A | rounds of B/A |"
echo "|---|---|---|---|---|"
for load in ${LOADS:-single batch tree all}; do
    : > "$WORK/$load.a"
    : > "$WORK/$load.b"
    ratios=""
    for round in $(seq "$ROUNDS"); do
        # Odd rounds A first, even rounds B first: whatever the second of two runs gains or loses falls on both.
        if [ $((round % 2)) = 1 ]; then
            a=$(rate 18481 "$load")
            b=$(rate 18482 "$load")
        else
            b=$(rate 18482 "$load")
            a=$(rate 18481 "$load")
        fi
        echo "$a" >> "$WORK/$load.a"
        echo "$b" >> "$WORK/$load.b"
        ratios="$ratios $(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f", b / a }')"
    done
    a=$(median < "$WORK/$load.a")
    b=$(median < "$WORK/$load.b")
    echo "| $load | $a | $b | $(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f", b / a }') |$ratios |"
done
