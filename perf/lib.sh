# Shared by the perf scripts (source it): release build, a work directory removed on exit,
# background processes killed on exit, and an event wait for a line in a log file.
#   bin, load     the release binaries
#   work          a temporary directory
#   pids          append background pids to it: they are killed on exit
#   wait_line F P prints the first line of file F containing P (waits up to 60 s for it)
#   cpu_ticks PID user+system CPU of a process, in clock ticks
#   upstream_server KIND URL TOOLS REPLY BIN [CPU]  sets `server`, the gateway's config entry for
#                 the mock upstream: its URL (KIND http), or (KIND stdio) BIN's mock as the
#                 gateway's child, pinned to CPU when one is given
#   gateway_extras  from $keys (0/1) and $audit (on/off/default) sets `extras` (JSON members
#                 to append to the gateway's config) and `key_args` (the load generator's flags)
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[ -n "${SKIP_BUILD:-}" ] || cargo build --release --workspace >&2
bin=target/release/mcpgate
load=target/release/mcpgate-load
work=$(mktemp -d)
pids=()
perf_cleanup() {
    exec 3>&- 2>/dev/null || true
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap perf_cleanup EXIT
wait_line() {
    for _ in $(seq 1 600); do
        grep -q "$2" "$1" 2>/dev/null && { grep -m1 "$2" "$1"; return 0; }
        sleep 0.1
    done
    echo "timed out waiting for '$2' in $1" >&2; cat "$1" >&2; return 1
}
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
upstream_server() {
    if [ "$1" = http ]; then
        server="{\"url\": \"$2\"}"
        return
    fi
    local child="\"$PWD/$5\", \"mock-upstream\", \"--stdio\", \"--tools\", \"$3\", \"--reply-bytes\", \"$4\""
    if [ -n "${6:-}" ]; then
        server="{\"command\": \"taskset\", \"args\": [\"-c\", \"$6\", $child]}"
    else
        server="{\"command\": ${child%%,*}, \"args\": [${child#*, }]}"
    fi
}
gateway_extras() {
    extras="" key_args=()
    if [ "$keys" = 1 ]; then
        # Limits high enough never to refuse, so every call pays for the whole check.
        local key=perf-load-key-5c2e9a7f1b3d
        extras=', "virtual_keys": [{"name": "load", "key": "'$key'", "team": "perf", "grants": {"up": ["*"]},
            "rate_limit": {"per_second": 10000000, "burst": 10000000}, "budget": {"calls_per_day": 1000000000}}],
            "teams": {"perf": {"budget": {"calls_per_month": 1000000000}}}'
        key_args=(--header "Authorization: Bearer $key")
    fi
    # Builds from before the audit log refuse the key, so it is written only when asked for.
    case "$audit" in
        on) extras+=', "audit": {"enabled": true}' ;;
        off) extras+=', "audit": {"enabled": false}' ;;
    esac
}
