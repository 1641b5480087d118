#!/usr/bin/env bash
# The gateway's CPU per call as a multiple of a bare MCP server's, both in the same seat and
# measured in alternating rounds of one run. The bar's figures in µs rest on "a bare HTTP
# server answering a small POST costs ~8 µs of CPU per request here, so a proxy hop (two
# exchanges) costs at least ~16 µs"; on a shared machine whose speed drifts by tens of percent
# between sittings, this ratio is the figure that can be compared across days
# (≤ 17 µs against 8 µs is ≤ 2.1×; ≤ 12 µs for stdio is ≤ 1.5×).
#
# Layout: a bare mock upstream on CPU 0 (the gateway's seat), the gateway (one worker) on
# CPU 0, the gateway's upstream (another mock, or the stdio mock as its child) and the load
# generator on CPU 1. `mcpgate-load compare` loads the bare mock ("direct") and the gateway in
# turn, sampling each one's CPU time around its own rounds (--direct-pid / --gateway-pid).
#
#   perf/bare-server.sh [--upstream http|stdio] [--connections N] [--rounds K] [--round-secs S]
#                       [--driver uring|epoll]
#   GATEWAY_BIN=<build> perf/bare-server.sh ...
#
# Prints one JSON line: each side's calls/s and CPU µs per call, and gateway / bare.
set -euo pipefail
upstream=http conns=16 rounds=4 round_secs=4 driver=uring
while [ $# -gt 0 ]; do
    case "$1" in
        --upstream) upstream=$2; shift 2 ;;
        --connections) conns=$2; shift 2 ;;
        --rounds) rounds=$2; shift 2 ;;
        --round-secs) round_secs=$2; shift 2 ;;
        --driver) driver=$2; shift 2 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# start_mock NAME CPU: a mock upstream on CPU; sets ${NAME}_pid and ${NAME}_url.
start_mock() {
    taskset -c "$2" "$bin" mock-upstream --tools 10 --reply-bytes 100 --io-driver "$driver" \
        --listen 127.0.0.1:0 > "$work/$1.out" 2>&1 &
    pids+=($!)
    printf -v "$1_pid" '%s' "$!"
    printf -v "$1_url" '%s' "$(wait_line "$work/$1.out" "listening on" | sed 's/.*listening on //')"
}
start_mock bare 0
start_mock upstream 1
upstream_server "$upstream" "$upstream_url" 10 100 "$bin" 1
cat > "$work/gw.json" <<JSON
{"mcpServers": {"up": $server}, "tools_page_size": 1000}
JSON
MCPGATE_LOG=info taskset -c 0 "${GATEWAY_BIN:-$bin}" serve --config "$work/gw.json" --workers 1 \
    --io-driver "$driver" --listen 127.0.0.1:0 > "$work/gw.out" 2> "$work/gw.err" &
gw_pid=$!
pids+=($gw_pid)
gateway=$(wait_line "$work/gw.out" "listening on" | sed 's/.*listening on //')

taskset -c 1 "$load" compare --direct "$bare_url" --gateway "$gateway" --gateway-prefix up__ \
    --tool tool_0001 --args '{}' --connections "$conns" --rounds "$rounds" --round-secs "$round_secs" \
    --direct-pid "$bare_pid" --gateway-pid "$gw_pid" --json > "$work/compare.json"

python3 - "$work/compare.json" <<PY
import json, sys
c = json.load(open(sys.argv[1]))
cpu = c["cpu_us_per_call"]
print(json.dumps({
    "scenario": {"upstream": "$upstream", "connections": $conns, "driver": "$driver",
                 "rounds": $rounds, "round_secs": $round_secs},
    "bare_calls_per_s": round(c["direct"]["throughput"]),
    "gateway_calls_per_s": round(c["gateway"]["throughput"]),
    "bare_cpu_us_per_call": round(cpu["direct"], 2),
    "gateway_cpu_us_per_call": round(cpu["gateway"], 2),
    "gateway_over_bare": round(cpu["ratio"], 3),
    "errors": {"bare": c["direct"]["errors"], "gateway": c["gateway"]["errors"]},
}))
PY
