# Shared by the bench scripts: `source "$(dirname "$0")/common.sh"`.

wait_for() {  # wait_for <seconds> <command...>: until the command succeeds, or exit 1 after the seconds
    local deadline=$(( $(date +%s) + $1 )); shift
    until "$@" >/dev/null 2>&1; do
        [ "$(date +%s)" -lt "$deadline" ] || { echo "timed out: $*" >&2; exit 1; }
        sleep 0.05
    done
}
