#!/usr/bin/env bash
# The idle-connection bar: N idle client connections (default 10,000), each served once and
# then held, must cost < 64 MiB of extra gateway RSS, and calls on other connections must
# keep their latency. Gateway: one worker on CPU 0; mock upstream and load on CPU 1.
#   perf/idle-connections.sh [N]
#   GATEWAY_BIN=<build> perf/idle-connections.sh [N]   (another build of the gateway)
set -euo pipefail
n=${1:-10000}
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
taskset -c 1 "$bin" mock-upstream --listen 127.0.0.1:0 > "$work/mock.out" 2>&1 &
pids+=($!)
upstream=$(wait_line "$work/mock.out" "listening on" | sed 's/.*listening on //')
echo "{\"mcpServers\": {\"up\": {\"url\": \"$upstream\"}}}" > "$work/gw.json"
taskset -c 0 "${GATEWAY_BIN:-$bin}" serve --config "$work/gw.json" --workers 1 --listen 127.0.0.1:0 > "$work/gw.out" 2> "$work/gw.err" &
gw=$!
pids+=($gw)
url=$(wait_line "$work/gw.out" "listening on" | sed 's/.*listening on //')
hostport=${url#http://}; hostport=${hostport%/mcp}
rss() { awk '/VmRSS/{print $2}' "/proc/$gw/status"; }
latency() {
    taskset -c 1 "$load" run --url "$url" --tool up__echo --connections 16 --rate 2000 --duration-secs 5 --json \
        | python3 -c "import json,sys; d=json.load(sys.stdin); l=d['latency_us']; print(f\"p50 {l['p50']} us, p99 {l['p99']} us, errors {d['errors']}\")"
}
echo "latency without idle connections: $(latency)"
base=$(rss)
mkfifo "$work/hold"
taskset -c 1 python3 perf/idle_connections.py 127.0.0.1 "${hostport##*:}" "$n" < "$work/hold" > "$work/idle.out" 2>&1 &
pids+=($!)
exec 3> "$work/hold"
wait_line "$work/idle.out" "holding" > /dev/null
held=$(rss)
echo "latency with $n idle connections:  $(latency)"
python3 -c "b=$base; h=$held; n=$n; print(f'RSS {b} KiB -> {h} KiB: +{(h-b)/1024:.1f} MiB for {n} idle connections ({(h-b)*1024/n:.0f} B each)')"
