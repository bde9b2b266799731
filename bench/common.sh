# Shared by the bench scripts: `source "$(dirname "$0")/common.sh"`.

wait_for() {  # wait_for <seconds> <command...>: until the command succeeds, or exit 1 after the seconds
    local deadline=$(( $(date +%s) + $1 )); shift
    until "$@" >/dev/null 2>&1; do
        [ "$(date +%s)" -lt "$deadline" ] || { echo "timed out: $*" >&2; exit 1; }
        sleep 0.05
    done
}

scratch() {  # scratch: a new folder in $WORK, removed when the script exits, after the servers it started
    WORK=$(mktemp -d)
    trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
}

need_wrk() {  # need_wrk: exit 1, saying how to install it, when wrk is missing
    command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 1; }
}

settled() {  # settled <port>: the first sync finished and no model is still loading (a sync only records the versions;
    # each model comes up on its own). Works with builds from before that change too.
    curl -sf "127.0.0.1:$1/" | python3 -c 'import json, sys
index = json.load(sys.stdin)
server = index.pop("_server", {})
synced = (server.get("last_sync") or {}).get("result") == "success"
sys.exit(0 if synced and all(model.get("state") != "loading" for model in index.values()) else 1)'
}
