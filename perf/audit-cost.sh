#!/usr/bin/env bash
# The cost of the audit log, in one run: two gateways over the same mock upstream, one with the
# audit log off and one with it on (the default SQLite store), both pinned to CPU 0 with one
# worker. `mcpgate-load compare` alternates rounds between them (its "direct" side is the
# gateway with audit off), so the machine's noise hits both alike. Each gateway's CPU per call
# is its process CPU time (all threads, the audit log thread included) divided by its calls.
#
#   perf/audit-cost.sh [--rounds K] [--round-secs S] [--connections N] [--driver uring|epoll]
#                      [--upstream http|stdio]
#   GATEWAY_BIN=<build> perf/audit-cost.sh ...
#
# Prints one JSON line: calls/s, CPU µs per call (the process's, and its worker thread's) and
# latency of each side, the throughput ratio on/off, what the audit log wrote and dropped, and
# its log thread's CPU per record.
set -euo pipefail
rounds=3 round_secs=4 conns=16 driver=uring upstream=http
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) rounds=$2; shift 2 ;;
        --round-secs) round_secs=$2; shift 2 ;;
        --connections) conns=$2; shift 2 ;;
        --driver) driver=$2; shift 2 ;;
        --upstream) upstream=$2; shift 2 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

taskset -c 1 "$bin" mock-upstream --tools 10 --reply-bytes 100 --listen 127.0.0.1:0 > "$work/mock.out" 2>&1 &
pids+=($!)
mock=$(wait_line "$work/mock.out" "listening on" | sed 's/.*listening on //')
upstream_server "$upstream" "$mock" 10 100 "$bin" 1

# start_gateway NAME AUDIT_JSON: starts one gateway; sets ${NAME}_pid and ${NAME}_url.
start_gateway() {
    mkdir -p "$work/$1"
    cat > "$work/$1/gw.json" <<JSON
{"mcpServers": {"up": $server}, "audit": $2}
JSON
    MCPGATE_LOG=info taskset -c 0 "${GATEWAY_BIN:-$bin}" serve --config "$work/$1/gw.json" --workers 1 \
        --io-driver "$driver" --listen 127.0.0.1:0 > "$work/$1/out" 2> "$work/$1/err" &
    pids+=($!)
    printf -v "$1_pid" '%s' "$!"
    printf -v "$1_url" '%s' "$(wait_line "$work/$1/out" "listening on" | sed 's/.*listening on //')"
}
start_gateway off '{"enabled": false}'
start_gateway on '{"enabled": true}'

# thread_ticks PID PREFIX: CPU ticks of the process's threads whose name starts with PREFIX.
thread_ticks() {
    local sum=0 t
    for t in /proc/$1/task/*; do
        case "$(cat "$t/comm")" in "$2"*) sum=$((sum + $(awk '{print $14+$15}' "$t/stat"))) ;; esac
    done
    echo "$sum"
}
before_off=$(cpu_ticks "$off_pid") before_on=$(cpu_ticks "$on_pid")
before_log=$(thread_ticks "$on_pid" mcpgate-audit)
before_wk_off=$(thread_ticks "$off_pid" mcpgate-worker) before_wk_on=$(thread_ticks "$on_pid" mcpgate-worker)
taskset -c 1 "$load" compare --direct "$off_url" --gateway "$on_url" --tool up__tool_0001 --args '{}' \
    --connections "$conns" --rounds "$rounds" --round-secs "$round_secs" --json > "$work/compare.json"
after_off=$(cpu_ticks "$off_pid") after_on=$(cpu_ticks "$on_pid")
after_log=$(thread_ticks "$on_pid" mcpgate-audit)
after_wk_off=$(thread_ticks "$off_pid" mcpgate-worker) after_wk_on=$(thread_ticks "$on_pid" mcpgate-worker)
kill -TERM "$off_pid" "$on_pid"
wait "$off_pid" "$on_pid" 2>/dev/null || true
closed=$(grep "audit log closed" "$work/on/err" | tail -1 || true)

python3 - "$work/compare.json" "$(getconf CLK_TCK)" "$before_off" "$after_off" "$before_on" "$after_on" "$closed" "$before_log" "$after_log" \
    "$before_wk_off" "$after_wk_off" "$before_wk_on" "$after_wk_on" <<PY
import json, re, sys
c = json.load(open(sys.argv[1]))
tick = int(sys.argv[2])
b_off, a_off, b_on, a_on = map(int, sys.argv[3:7])
closed = sys.argv[7]
log_ticks = int(sys.argv[9]) - int(sys.argv[8])
b_wk_off, a_wk_off, b_wk_on, a_wk_on = map(int, sys.argv[10:14])
off, on = c["direct"], c["gateway"]
def cpu(before, after, side):
    return round((after - before) / tick * 1e6 / max(side["calls"], 1), 2)
def count(name):
    m = re.search(r"\b" + name + r"=(\d+)", closed)
    return int(m.group(1)) if m else None
print(json.dumps({
    "scenario": {"upstream": "$upstream", "connections": $conns, "driver": "$driver",
                 "rounds": $rounds, "round_secs": $round_secs},
    "audit_off": {"calls_per_s": round(off["throughput"]), "cpu_us_per_call": cpu(b_off, a_off, off),
                  "worker_cpu_us_per_call": cpu(b_wk_off, a_wk_off, off),
                  "p50_us": off["latency_us"]["p50"], "p99_us": off["latency_us"]["p99"], "errors": off["errors"]},
    "audit_on": {"calls_per_s": round(on["throughput"]), "cpu_us_per_call": cpu(b_on, a_on, on),
                 "worker_cpu_us_per_call": cpu(b_wk_on, a_wk_on, on),
                 "p50_us": on["latency_us"]["p50"], "p99_us": on["latency_us"]["p99"], "errors": on["errors"]},
    "throughput_on_over_off": round(c["ratio"], 3),
    "audit_records": {"written": count("written"), "dropped": count("dropped"),
                      "log_thread_cpu_us_per_record": round(log_ticks / tick * 1e6 / max(count("written") or 0, 1), 2)},
}))
PY
