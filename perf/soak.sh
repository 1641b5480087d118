#!/usr/bin/env bash
# The memory bar: gateway RSS stays flat (±10%) over a long run at a steady rate.
# Gateway: one worker on CPU 0, HTTP and stdio mock upstreams, calls alternating between
# them; load (open loop) and the mocks on CPU 1. Samples RSS every 10 s after a 30 s warm-up.
#   perf/soak.sh [SECONDS] [RATE]        defaults: 600 s, 5000 calls/s
set -euo pipefail
secs=${1:-600}
rate=${2:-5000}
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
taskset -c 1 "$bin" mock-upstream --listen 127.0.0.1:0 > "$work/mock.out" 2>&1 &
pids+=($!)
upstream=$(wait_line "$work/mock.out" "listening on" | sed 's/.*listening on //')
cat > "$work/gw.json" <<JSON
{"mcpServers": {"h": {"url": "$upstream"},
                "s": {"command": "taskset", "args": ["-c", "1", "$PWD/$bin", "mock-upstream", "--stdio"]}}}
JSON
cat > "$work/mix.json" <<JSON
{"calls": [{"tool": "h__echo", "args": {"message": "soak"}, "weight": 1},
           {"tool": "s__echo", "args": {"message": "soak"}, "weight": 1},
           {"tool": "h__tool_0001", "args": {}, "weight": 1}]}
JSON
taskset -c 0 "$bin" serve --config "$work/gw.json" --workers 1 --listen 127.0.0.1:0 > "$work/gw.out" 2> "$work/gw.err" &
gw=$!
pids+=($gw)
url=$(wait_line "$work/gw.out" "listening on" | sed 's/.*listening on //')
taskset -c 1 "$load" run --url "$url" --scenario "$work/mix.json" --connections 32 --rate "$rate" \
    --duration-secs "$((secs + 30))" --json > "$work/load.json" 2> /dev/null &
loadpid=$!
pids+=($loadpid)
sleep 30
samples=()
for _ in $(seq 1 $((secs / 10))); do
    samples+=("$(awk '/VmRSS/{print $2}' "/proc/$gw/status")")
    sleep 10
done
wait "$loadpid" || true
python3 - "$work/load.json" "${samples[@]}" <<'PY'
import json, sys
load = json.load(open(sys.argv[1]))
rss = [int(x) for x in sys.argv[2:]]
first, last, lo, hi = rss[0], rss[-1], min(rss), max(rss)
print(json.dumps({"calls": load["calls"], "errors": load["errors"], "throughput": round(load["throughput"]),
                  "latency_us": load["latency_us"], "rss_kib": {"first": first, "last": last, "min": lo, "max": hi},
                  "rss_spread_pct": round((hi - lo) * 100 / first, 1),
                  "rss_drift_pct": round((last - first) * 100 / first, 1), "samples": rss}))
PY
