#!/usr/bin/env bash
# `make bench`: every figure of BENCHMARKS.md in one run, each beside the baseline it is a ratio of.
#   1. baseline: the hand-written Hummingbird 2 server of bench/baseline (GET /hello, POST /Iris);
#   2. AutoServe serving models_serve/Iris, in-process and in worker processes;
#   3. the Flask + gunicorn design it replaces (bench/flask, 1 worker, 18 threads), in the same rotation;
#   4. /all over 10 trivial models against one of them;
#   5. a swap under load (a git push and a sync), before / during / after;
#   6. start-up with 50 models, cold and warm, and the RSS of the server and of its workers.
# Loopback only; every load is wrk for DURATION seconds after a WARMUP, with the same threads, connections
# and body. The servers compared with each other run side by side and are loaded in turn, ROUNDS times, and
# each figure is the median of its rounds: this machine's speed drifts by 10-20 % from minute to minute, and
# interleaving keeps that drift out of the ratios; five rounds, because the host at times stalls every server
# for a whole round (p99 of 100 ms and more), and a median of five outlasts two such rounds. Usage: bench/run.sh (make bench builds what it needs
# first). Writes the report to REPORT.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BIN:-$ROOT/.build/release/autoserve}
BASELINE=${BASELINE:-$ROOT/bench/baseline/.build/release/Baseline}
VENV=${VENV:-$ROOT/bench/.venv}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-1}
ROUNDS=${ROUNDS:-5}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-2}
STARTUP_MODELS=${STARTUP_MODELS:-50}
PORT=${PORT:-18440}
PORTS=($PORT $((PORT + 1)) $((PORT + 2)))
FLASK_PORT=$((PORT + 3))
REPORT=${REPORT:-$ROOT/.build/bench-report.md}
WORK=$(mktemp -d)
RESULTS=$WORK/results.tsv
SERVER=
SERVERS=()

for tool in wrk curl git; do command -v $tool >/dev/null || { echo "bench: $tool is missing (make bench installs it)" >&2; exit 1; }; done
[ -x "$BIN" ] || { echo "bench: $BIN is missing: swift build -c release --product autoserve" >&2; exit 1; }
[ -x "$BASELINE" ] || { echo "bench: $BASELINE is missing: swift build -c release --package-path bench/baseline" >&2; exit 1; }
[ -x "$VENV/bin/gunicorn" ] || { echo "bench: gunicorn is missing: python3 -m venv $VENV && $VENV/bin/pip install -r bench/flask/requirements.txt" >&2; exit 1; }

cleanup() {
    for pid in "${SERVERS[@]}"; do kill -KILL "$pid" 2>/dev/null; done
    kill -KILL $(jobs -p) 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

log() { echo "bench: $*" >&2; }
now_ms() { date +%s%3N; }

source "$ROOT/bench/common.sh"  # settled
wait_for() {  # wait_for <seconds> <command...>: poll every 20 ms
    local deadline=$(( $(now_ms) + $1 * 1000 )); shift
    until "$@" >/dev/null 2>&1; do
        [ "$(now_ms)" -lt "$deadline" ] || { log "timed out waiting for: $*"; return 1; }
        sleep 0.02
    done
}

stop_pid() {
    kill -TERM "$1" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

stop_all() {
    for pid in "${SERVERS[@]}"; do stop_pid "$pid"; done
    SERVERS=()
}

autoserve() {  # autoserve <name> <port> <VAR=value...>: start a server, wait until its first sync has finished
    local name=$1 port=$2; shift 2
    env PORT=$port HOST=127.0.0.1 LOG_LEVEL=warning STATE_DIR=$WORK/state-$name "$@" "$BIN" serve > "$WORK/$name.log" 2>&1 &
    SERVER=$!
    SERVERS+=("$SERVER")
    # Every model of the first sync up or failed.
    wait_for 600 settled "$port" || { cat "$WORK/$name.log" >&2; exit 1; }
}

post_script() {  # post_script <body>: a wrk script sending that body
    local file=$WORK/post-$RANDOM.lua
    printf 'wrk.method = "POST"\nwrk.body = %s\nwrk.headers["Content-Type"] = "application/json"\n' "'$1'" > "$file"
    echo "$file"
}

IRIS_BODY='{"variables": {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}}'
TRIVIAL_BODY='{"variables": {"n": 42}}'
IRIS=$(post_script "$IRIS_BODY")
TRIVIAL=$(post_script "$TRIVIAL_BODY")

to_ms() {  # wrk's "1.23ms" / "512.00us" / "1.10s" in milliseconds
    awk -v t="$1" 'BEGIN { v = t + 0; if (t ~ /us$/) v /= 1000; else if (t ~ /ms$/) v += 0; else if (t ~ /s$/) v *= 1000; printf "%.2f", v }'
}

measure() {  # measure <label> <url> [script] [seconds]: one wrk run, appended to RESULTS
    local label=$1 url=$2 script=${3:-} seconds=${4:-$DURATION} out=$WORK/wrk-$RANDOM.txt
    local args=(-t"$THREADS" -c"$CONNECTIONS" --latency)
    [ -n "$script" ] && args+=(-s "$script")
    wrk "${args[@]}" -d"$seconds"s "$url" > "$out"
    local rps p50 p99 errors
    rps=$(awk '/^Requests\/sec/ { printf "%d", $2 }' "$out")
    p50=$(to_ms "$(awk '$1 == "50%" { print $2 }' "$out")")
    p99=$(to_ms "$(awk '$1 == "99%" { print $2 }' "$out")")
    errors=$(awk '/Non-2xx/ { n += $NF } /Socket errors/ { gsub(",", ""); n += $4 + $6 + $8 + $10 } END { print n + 0 }' "$out")
    printf '%s\t%s\t%s\t%s\t%s\n' "$label" "$rps" "$p50" "$p99" "$errors" >> "$RESULTS"
    log "$label: $rps requests/s, p50 $p50 ms, p99 $p99 ms, $errors errors"
}

warm_and_measure() {  # warm_and_measure <label> <url> [script]
    local args=(-t"$THREADS" -c"$CONNECTIONS")
    [ -n "${3:-}" ] && args+=(-s "$3")
    wrk "${args[@]}" -d"$WARMUP"s "$2" > /dev/null
    measure "$@"
}

rounds() {  # rounds <label> <url> <script> [<label> <url> <script>]...: each load in turn, ROUNDS times
    local round index
    for round in $(seq "$ROUNDS"); do
        for ((index = 1; index <= $#; index += 3)); do
            warm_and_measure "${@:index:1}" "${@:index+1:1}" "${@:index+2:1}"
            settle "${@:index+1:1}"
        done
    done
}

settle() {  # settle <url>: gunicorn works through its backlog after wrk stops; wait until it answers at once
    [[ "$1" == *":$FLASK_PORT/"* ]] || return 0
    local base=${1%/*}
    wait_for 30 curl -sf -m 0.05 "$base/hello" || true
}

expect_answer() {  # expect_answer <url> <body> <text>: one request must answer with text in its body
    local answer
    answer=$(curl -s -XPOST -H 'Content-Type: application/json' -d "$2" "$1")
    [[ "$answer" == *"$3"* ]] || { log "$1 answered $answer, expected $3"; exit 1; }
}

rss_kb() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
pss_kb() { awk '/^Pss:/ { print $2 }' "/proc/$1/smaps_rollup" 2>/dev/null || echo 0; }
private_kb() { awk '/^Private_(Clean|Dirty):/ { n += $2 } END { print n + 0 }' "/proc/$1/smaps_rollup" 2>/dev/null || echo 0; }

trivial_models() {  # trivial_models <folder> <count> <prefix>: copies of bench/models/Trivial
    mkdir -p "$1"
    for i in $(seq -w 1 "$2"); do
        mkdir -p "$1/$3$i"
        sed "s/struct Trivial/struct $3$i/" "$ROOT/bench/models/Trivial/etls.swift" > "$1/$3$i/etls.swift"
    done
}

: > "$RESULTS"
mkdir -p "$WORK/iris" && cp -r "$ROOT/models_serve/Iris" "$WORK/iris/"

# 0. Decoding alone: the Iris row with JSONDecoder and with the SDK's decoder, in one process.
log "0/6 decoding the Iris row: JSONDecoder against the SDK's decoder"
mkdir -p "$WORK/decoder"
swiftc -O -enable-testing -emit-library -emit-module -module-name AutoServeModel -parse-as-library "$ROOT"/Sources/AutoServeModel/*.swift \
    -emit-module-path "$WORK/decoder/AutoServeModel.swiftmodule" -o "$WORK/decoder/libAutoServeModel.so"
swiftc -O -I "$WORK/decoder" -L "$WORK/decoder" -lAutoServeModel -Xlinker -rpath -Xlinker "$WORK/decoder" \
    "$ROOT/bench/decoder/main.swift" -o "$WORK/decoder/bench"
read -r decode_foundation decode_sdk decode_ratio _ < <("$WORK/decoder/bench")
log "decoding: JSONDecoder $decode_foundation µs, the SDK's decoder $decode_sdk µs per row"

# 1, 2 and 3. The baseline (a hand-written Hummingbird server), AutoServe serving the same model in-process
# and in worker processes, and the Python design AutoServe replaces, deployed as it was (Flask + gunicorn,
# 1 worker, 18 threads): same body, same connections, loaded in turn.
log "1-3/6 baseline (bench/baseline), AutoServe serving models_serve/Iris, Flask + gunicorn"
start=$(now_ms)
PORT=${PORTS[0]} "$BASELINE" "$ROOT/models_serve/Iris/weights.json" > "$WORK/baseline.log" 2>&1 &
SERVERS+=($!)
baseline_pid=$!
wait_for 60 curl -sf "127.0.0.1:${PORTS[0]}/hello"
baseline_start=$(( $(now_ms) - start ))
baseline_rss=$(rss_kb "$baseline_pid")
autoserve iris-inprocess "${PORTS[1]}" MODELS_DIR="$WORK/iris" MODEL_ISOLATION=inprocess
autoserve iris-process "${PORTS[2]}" MODELS_DIR="$WORK/iris" MODEL_ISOLATION=process
MODELS_DIR=$ROOT/bench/flask/models "$VENV/bin/gunicorn" -w 1 --threads 18 -b "127.0.0.1:$FLASK_PORT" \
    --chdir "$ROOT/bench/flask" --log-level warning app:app > "$WORK/flask.log" 2>&1 &
SERVERS+=($!)
wait_for 60 curl -sf "127.0.0.1:$FLASK_PORT/hello"
for port in "${PORTS[@]}" "$FLASK_PORT"; do expect_answer "127.0.0.1:$port/Iris" "$IRIS_BODY" '"iris_class":"setosa"'; done
rounds "baseline GET /hello" "http://127.0.0.1:${PORTS[0]}/hello" "" \
    "AutoServe inprocess GET /healthz" "http://127.0.0.1:${PORTS[1]}/healthz" "" \
    "AutoServe process GET /healthz" "http://127.0.0.1:${PORTS[2]}/healthz" "" \
    "baseline POST /Iris" "http://127.0.0.1:${PORTS[0]}/Iris" "$IRIS" \
    "AutoServe inprocess POST /Iris" "http://127.0.0.1:${PORTS[1]}/Iris" "$IRIS" \
    "AutoServe process POST /Iris" "http://127.0.0.1:${PORTS[2]}/Iris" "$IRIS" \
    "Flask POST /Iris" "http://127.0.0.1:$FLASK_PORT/Iris" "$IRIS"
stop_all

# 4. /all over 10 trivial models against one model's route.
log "4/6 /all over 10 trivial models"
trivial_models "$WORK/ten" 10 Trivial
autoserve ten-process "${PORTS[1]}" MODELS_DIR="$WORK/ten" MODEL_ISOLATION=process
autoserve ten-inprocess "${PORTS[2]}" MODELS_DIR="$WORK/ten" MODEL_ISOLATION=inprocess
for port in "${PORTS[1]}" "${PORTS[2]}"; do expect_answer "127.0.0.1:$port/all" "$TRIVIAL_BODY" '"Trivial10":{'; done
rounds "AutoServe process POST /Trivial01" "http://127.0.0.1:${PORTS[1]}/Trivial01" "$TRIVIAL" \
    "AutoServe process POST /all (10 models)" "http://127.0.0.1:${PORTS[1]}/all" "$TRIVIAL" \
    "AutoServe inprocess POST /Trivial01" "http://127.0.0.1:${PORTS[2]}/Trivial01" "$TRIVIAL" \
    "AutoServe inprocess POST /all (10 models)" "http://127.0.0.1:${PORTS[2]}/all" "$TRIVIAL"
stop_all

# 5. A swap under load: the model changes in git, a sync builds and swaps it while wrk keeps 32 connections busy.
log "5/6 swap under load"
REPO=$WORK/repo
cp -r "$WORK/iris" "$REPO"
git -C "$REPO" init -q -b main
git -C "$REPO" add -A && git -C "$REPO" -c user.email=bench@localhost -c user.name=bench commit -qm v1
autoserve swap "$PORT" MODELS_REPO="$REPO" ADMIN_TOKEN=bench
warm_and_measure "swap: before" "http://127.0.0.1:$PORT/Iris" "$IRIS"
sed -i 's|"iris_class": .string(weights.classes\[best\]),|"iris_class": .string(weights.classes[best]), "revision": 2,|' "$REPO/Iris/etls.swift"
git -C "$REPO" -c user.email=bench@localhost -c user.name=bench commit -qam v2
SWAP_SECONDS=$(( DURATION * 2 > 20 ? DURATION * 2 : 20 ))  # long enough to hold a build
measure "swap: during" "http://127.0.0.1:$PORT/Iris" "$IRIS" "$SWAP_SECONDS" &
load=$!
sleep 1
start=$(now_ms)
curl -sf -XPOST -H 'Authorization: Bearer bench' "127.0.0.1:$PORT/-/sync" > /dev/null
wait_for "$SWAP_SECONDS" sh -c "curl -s -XPOST -d '$IRIS_BODY' 127.0.0.1:$PORT/Iris | grep -q revision" \
    || { log "the new version did not serve within the load window"; exit 1; }
swap_ms=$(( $(now_ms) - start ))
wait "$load"
measure "swap: after" "http://127.0.0.1:$PORT/Iris" "$IRIS"
stop_all

# 6. Start-up with 50 models: cold (nothing cached), then warm (the same STATE_DIR), and memory.
log "6/6 start-up with $STARTUP_MODELS models"
trivial_models "$WORK/many" "$STARTUP_MODELS" Startup
start=$(now_ms); autoserve many "$PORT" MODELS_DIR="$WORK/many"; cold_ms=$(( $(now_ms) - start ))
stop_all
start=$(now_ms); autoserve many "$PORT" MODELS_DIR="$WORK/many"; warm_ms=$(( $(now_ms) - start ))
curl -sf -XPOST -d "$TRIVIAL_BODY" "127.0.0.1:$PORT/all" > /dev/null
server_rss=$(rss_kb "$SERVER")
workers=$(pgrep -P "$SERVER" || true)
worker_count=$(echo "$workers" | grep -c . || true)
worker_rss=$(for pid in $workers; do rss_kb "$pid"; done | sort -n)
worker_max=$(echo "$worker_rss" | tail -1)
worker_median=$(echo "$worker_rss" | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
worker_pss=$(for pid in $workers; do pss_kb "$pid"; done | awk '{ n += $1 } END { print n + 0 }')
worker_private=$(for pid in $workers; do private_kb "$pid"; done | sort -n | tail -1)
server_pss=$(pss_kb "$SERVER")
stop_all

# The report: every figure with its baseline, and each goal met or not.
field() {  # field <label> <column>: the median over that load's rounds
    awk -F'\t' -v l="$1" -v c="$2" '$1 == l { print $c }' "$RESULTS" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}
most() { awk -F'\t' -v l="$1" -v c="$2" '$1 == l && $c > m { m = $c } END { print m + 0 }' "$RESULTS"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
goal() {  # goal <text> <value> <op> <threshold>
    local met
    met=$(awk -v v="$2" -v t="$4" -v op="$3" 'BEGIN { print ((op == ">=" && v >= t) || (op == "<=" && v <= t) || (op == "<" && v < t)) ? "met" : "NOT met" }')
    echo "| $1 | $2 | $3 $4 | $met |"
}
row() {  # row <label> <baseline label>
    echo "| $1 | $(field "$1" 2) | $(ratio "$(field "$1" 2)" "$(field "$2" 2)") | $(field "$1" 3) | $(field "$1" 4) | $(ratio "$(field "$1" 4)" "$(field "$2" 4)") | $(most "$1" 5) |"
}
mb() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

base="baseline POST /Iris"
inproc="AutoServe inprocess POST /Iris"
proc="AutoServe process POST /Iris"
{
    echo "Machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), $(. /etc/os-release; echo "$PRETTY_NAME"), Linux $(uname -r), $(swift --version 2>&1 | head -1 | sed 's/ (.*//')."
    echo "Date: $(date -u +%Y-%m-%d). Command: \`make bench\` (wrk -t$THREADS -c$CONNECTIONS, ${DURATION} s per load after a ${WARMUP} s warm-up, loopback; the load generator shares the cores). Compared servers run side by side and are loaded in turn; each figure is the median of $ROUNDS rounds (errors: the largest round)."
    echo
    echo "Decoding the Iris row into its struct (200,000 times, best of 5): JSONDecoder $decode_foundation µs, the SDK's decoder $decode_sdk µs per row ($decode_ratio× faster)."
    echo
    echo "| load | requests/s | × baseline | p50 ms | p99 ms | p99 × baseline | errors |"
    echo "|---|---|---|---|---|---|---|"
    row "baseline GET /hello" "baseline GET /hello"
    row "AutoServe inprocess GET /healthz" "baseline GET /hello"
    row "AutoServe process GET /healthz" "baseline GET /hello"
    row "$base" "$base"
    row "$inproc" "$base"
    row "$proc" "$base"
    row "Flask POST /Iris" "$base"
    row "AutoServe process POST /Trivial01" "AutoServe process POST /Trivial01"
    row "AutoServe process POST /all (10 models)" "AutoServe process POST /Trivial01"
    row "AutoServe inprocess POST /Trivial01" "AutoServe inprocess POST /Trivial01"
    row "AutoServe inprocess POST /all (10 models)" "AutoServe inprocess POST /Trivial01"
    row "swap: before" "swap: before"
    row "swap: during" "swap: before"
    row "swap: after" "swap: before"
    echo
    echo "Swap: POST /-/sync to the new version answering: $swap_ms ms, inside the ${SWAP_SECONDS} s 'during' window."
    echo
    echo "| start-up, $STARTUP_MODELS models (process isolation) | figure | baseline (hand-written server) |"
    echo "|---|---|---|"
    echo "| cold: empty STATE_DIR to every model serving | $cold_ms ms | $baseline_start ms to its first answer |"
    echo "| warm: cached plugins to every model serving | $warm_ms ms | $baseline_start ms |"
    echo "| server RSS | $(mb "$server_rss") MB | $(mb "$baseline_rss") MB |"
    echo "| worker RSS, median / largest ($worker_count workers) | $(mb "$worker_median") / $(mb "$worker_max") MB | |"
    echo "| largest worker's private memory (USS; the rest is library pages shared by every worker and the server) | $(mb "$worker_private") MB | |"
    echo "| server and all workers together (PSS: shared pages divided among the processes that map them) | $(mb $((server_pss + worker_pss))) MB | |"
    echo
    echo "| goal | measured | target | |"
    echo "|---|---|---|---|"
    goal "in-process throughput × baseline" "$(ratio "$(field "$inproc" 2)" "$(field "$base" 2)")" ">=" 1.0
    goal "in-process p99 × baseline" "$(ratio "$(field "$inproc" 4)" "$(field "$base" 4)")" "<=" 1.2
    goal "process isolation throughput × baseline" "$(ratio "$(field "$proc" 2)" "$(field "$base" 2)")" ">=" 0.6
    goal "process isolation throughput × Flask" "$(ratio "$(field "$proc" 2)" "$(field "Flask POST /Iris" 2)")" ">=" 20
    goal "in-process throughput × Flask" "$(ratio "$(field "$inproc" 2)" "$(field "Flask POST /Iris" 2)")" ">=" 20
    goal "/all (10) × one model, process isolation" "$(ratio "$(field "AutoServe process POST /all (10 models)" 2)" "$(field "AutoServe process POST /Trivial01" 2)")" ">=" 0.4
    goal "/all (10) × one model, in-process" "$(ratio "$(field "AutoServe inprocess POST /all (10 models)" 2)" "$(field "AutoServe inprocess POST /Trivial01" 2)")" ">=" 0.4
    goal "errors during the swap" "$(most "swap: during" 5)" "<=" 0
    goal "p99 during the swap × steady state" "$(ratio "$(field "swap: during" 4)" "$(field "swap: before" 4)")" "<=" 2.0
    goal "warm start-up, $STARTUP_MODELS models (s)" "$(awk -v m="$warm_ms" 'BEGIN { printf "%.2f", m / 1000 }')" "<" 3
    goal "largest worker RSS (MB)" "$(mb "$worker_max")" "<" 25
} > "$WORK/report.md"
mkdir -p "$(dirname "$REPORT")"
cp "$WORK/report.md" "$REPORT"
cat "$REPORT"
