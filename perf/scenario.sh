#!/usr/bin/env bash
# One standard performance scenario, measured as ratios within one run.
#
# Layout (2-core machine): the gateway runs one worker pinned to CPU 0; the mock upstream and
# the load generator share CPU 1. `mcpgate-load compare` alternates direct-to-mock and
# through-the-gateway rounds, so noise hits both alike. Gateway CPU per call is the gateway
# process's CPU time (all its threads, from /proc) divided by the calls made through it.
# `compare` also samples CPU around each round: the gateway's in the gateway rounds and the
# mock's (a bare MCP server) in the direct rounds, so the gateway's cost can be read as a
# multiple of a bare server's measured in the same run (`cpu_us_per_call_in_rounds`).
# The gateway's internal-time histogram is read from its shutdown log line.
#
#   perf/scenario.sh [--upstream http|stdio] [--tools N] [--reply-bytes N] [--connections N]
#                    [--rounds K] [--round-secs S] [--driver uring|epoll] [--rate R]
#                    [--busy-poll-us N]   (gateway and load generator keep polling N µs after
#                                          traffic instead of sleeping; see README "busy_poll_us")
#                    [--keys]             (a virtual key with grants, a rate limit and a budget,
#                                          sent by the load generator: the cost of governance)
#                    [--audit on|off]     (the audit log; default: the build's own default, on
#                                          since the audit log landed; builds from before it
#                                          refuse the key, so it is written only when given)
#
# For a stdio upstream the direct side is the same mock over HTTP (there is no direct stdio
# path for a network load generator); compare CPU per call, not throughput, for stdio.
set -euo pipefail
upstream=http tools=10 reply=100 conns=16 rounds=3 round_secs=5 driver=uring rate="" busy=0 keys=0
audit=default
while [ $# -gt 0 ]; do
    case "$1" in
        --upstream) upstream=$2; shift 2 ;;
        --tools) tools=$2; shift 2 ;;
        --reply-bytes) reply=$2; shift 2 ;;
        --connections) conns=$2; shift 2 ;;
        --rounds) rounds=$2; shift 2 ;;
        --round-secs) round_secs=$2; shift 2 ;;
        --driver) driver=$2; shift 2 ;;
        --rate) rate=$2; shift 2 ;;
        --busy-poll-us) busy=$2; shift 2 ;;
        --keys) keys=1; shift ;;
        --audit) audit=$2; shift 2 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

mock_args=(mock-upstream --tools "$tools" --reply-bytes "$reply")
taskset -c 1 "$bin" "${mock_args[@]}" --busy-poll-us "${MOCK_BUSY_POLL_US:-0}" --listen 127.0.0.1:0 > "$work/mock.out" 2>&1 &
mock_pid=$!
pids+=($mock_pid)
direct=$(wait_line "$work/mock.out" "listening on" | sed 's/.*listening on //')

# The stdio child is pinned to CPU 1 like the HTTP mock, not to the gateway's core.
upstream_server "$upstream" "$direct" "$tools" "$reply" "$bin" 1
gateway_extras
cat > "$work/gw.json" <<JSON
{"mcpServers": {"up": $server}, "tools_page_size": 1000, "busy_poll_us": $busy $extras}
JSON
# GATEWAY_BIN runs another build of the gateway (e.g. the commit before a change) against
# the same mock and load generator, for before/after figures in one sitting.
MCPGATE_LOG=info taskset -c 0 "${GATEWAY_BIN:-$bin}" serve --config "$work/gw.json" --workers 1 --io-driver "$driver" \
    --listen 127.0.0.1:0 > "$work/gw.out" 2> "$work/gw.err" &
gw_pid=$!
pids+=($gw_pid)
gateway=$(wait_line "$work/gw.out" "listening on" | sed 's/.*listening on //')

tool=tool_0001
rate_args=()
[ -z "$rate" ] || rate_args=(--rate "$rate")
before=$(cpu_ticks "$gw_pid")
taskset -c 1 "$load" compare --direct "$direct" --gateway "$gateway" --gateway-prefix up__ \
    --tool "$tool" --args '{}' --connections "$conns" --rounds "$rounds" --round-secs "$round_secs" \
    --direct-pid "$mock_pid" --gateway-pid "$gw_pid" \
    "${rate_args[@]}" "${key_args[@]}" --busy-poll-us "${LOAD_BUSY_POLL_US:-$busy}" --json > "$work/compare.json"
after=$(cpu_ticks "$gw_pid")
kill -TERM "$gw_pid"
wait "$gw_pid" 2>/dev/null || true
internal=$(grep "gateway internal time" "$work/gw.err" | tail -1 || true)
tick=$(getconf CLK_TCK)

python3 - "$work/compare.json" "$before" "$after" "$tick" "$internal" <<PY
import json, re, sys
c = json.load(open(sys.argv[1]))
before, after, tick = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
internal = sys.argv[5]
g, d = c["gateway"], c["direct"]
cpu_us = (after - before) / tick * 1e6 / max(g["calls"], 1)
def field(name):
    m = re.search(name + r"=(\d+)", internal)
    return int(m.group(1)) / 1000 if m else None
out = {
    "scenario": {"upstream": "$upstream", "tools": $tools, "reply_bytes": $reply, "connections": $conns,
                 "driver": "$driver", "rate": "$rate" or None, "rounds": $rounds, "round_secs": $round_secs,
                 "busy_poll_us": $busy, "keys": bool($keys), "audit": "$audit"},
    "direct_calls_per_s": round(d["throughput"]),
    "gateway_calls_per_s": round(g["throughput"]),
    "ratio": round(c["ratio"], 3),
    "gateway_cpu_us_per_call": round(cpu_us, 2),
    # Within the rounds: the gateway's CPU per call in the gateway rounds, the mock's (a bare
    # MCP server over HTTP) in the direct rounds, and their ratio. The ratio is what this
    # shared machine's noise moves least; the bars in µs assume a bare server costs ~8 µs.
    "cpu_us_per_call_in_rounds": c.get("cpu_us_per_call"),
    "latency_us": {"direct": d["latency_us"], "gateway": g["latency_us"]},
    "added_latency_us": c["added_latency_us"],
    "errors": {"direct": d["errors"], "gateway": g["errors"]},
    "internal_time_us": {k: field(k + "_ns") for k in ["p50", "p90", "p99", "p999", "max"]},
}
print(json.dumps(out))
PY
