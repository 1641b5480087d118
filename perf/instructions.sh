#!/usr/bin/env bash
# Instructions the gateway executes per call, counted by callgrind: a figure this noisy, shared
# machine cannot disturb, for before/after comparisons of hot-path changes (CPU time per call
# moves by ±15% between runs here; instruction counts by well under 1%).
#
#   perf/instructions.sh [--upstream http|stdio] [--calls N] [--connections N] [--keys]
#                        [--reply-bytes N] [--audit on|off]   (default: the build's own default,
#                                                     which is on since the audit log landed)
#                        [--threads]   (also per thread: the worker, the audit log thread, other)
#   GATEWAY_BIN=<build> perf/instructions.sh ...     (compare two builds)
#   CALLGRIND_EXTRA="--cache-sim=yes" perf/instructions.sh ...  (also simulated cache misses:
#                                                     `callgrind_annotate` shows D1mr, D1mw, I1mr)
#
# The gateway runs one worker with the epoll driver under callgrind (valgrind does not follow
# io_uring's shared rings). Instrumentation is off while it starts and warms up, on for exactly
# N calls, then the profile is dumped. Prints one JSON line; the callgrind profile is kept
# (`callgrind_annotate <file>` shows where the instructions go).
set -euo pipefail
upstream=http calls=20000 conns=16 keys=0 reply=100 audit=default threads=no
while [ $# -gt 0 ]; do
    case "$1" in
        --upstream) upstream=$2; shift 2 ;;
        --calls) calls=$2; shift 2 ;;
        --connections) conns=$2; shift 2 ;;
        --reply-bytes) reply=$2; shift 2 ;;
        --keys) keys=1; shift ;;
        --audit) audit=$2; shift 2 ;;
        --threads) threads=yes; shift ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
command -v valgrind >/dev/null || { echo "valgrind is needed (apt install valgrind)" >&2; exit 2; }
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
mock_bin=$bin
bin=${GATEWAY_BIN:-$bin}
load=${LOAD_BIN:-$load}

"$mock_bin" mock-upstream --tools 10 --reply-bytes "$reply" --listen 127.0.0.1:0 > "$work/mock.out" 2>&1 &
pids+=($!)
direct=$(wait_line "$work/mock.out" "listening on" | sed 's/.*listening on //')
upstream_server "$upstream" "$direct" 10 "$reply" "$mock_bin"
gateway_extras
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$work/gw.json" <<JSON
{"listen": "127.0.0.1:$port", "mcpServers": {"up": $server} $extras}
JSON
valgrind --tool=callgrind ${CALLGRIND_EXTRA:-} --separate-threads=$threads --instr-atstart=no --callgrind-out-file="$work/callgrind.out" \
    "$bin" serve --config "$work/gw.json" --workers 1 --io-driver epoll > "$work/gw.out" 2>&1 &
pids+=($!)
gw_pid=$!
wait_line "$work/gw.out" "listening on" >/dev/null
url="http://127.0.0.1:$port/mcp"
common=(--url "$url" --connections "$conns" --threads 1 --tool up__tool_0001 --args '{}' --timeout-ms 60000 --io-driver epoll --json "${key_args[@]}")
"$load" run "${common[@]}" --requests 2000 > /dev/null
callgrind_control -i on "$gw_pid" > /dev/null 2>&1
"$load" run "${common[@]}" --requests "$calls" > "$work/load.json"
callgrind_control -i off "$gw_pid" > /dev/null 2>&1
callgrind_control -d "$gw_pid" > /dev/null 2>&1
for _ in $(seq 1 100); do
    ls "$work"/callgrind.out* >/dev/null 2>&1 && [ -s "$(ls "$work"/callgrind.out* | tail -1)" ] && break
    sleep 0.1
done
kill -INT "$gw_pid" 2>/dev/null || true
wait "$gw_pid" 2>/dev/null || true
# Kept past the work directory, for callgrind_annotate (with --threads, the busiest thread's,
# and the audit log thread's as <profile>.audit.out).
profile=/tmp/mcpgate-callgrind.$$.out
cp "$(ls -S "$work"/callgrind.out* | head -1)" "$profile"
python3 - "$work" "$profile" "$work/load.json" "$calls" "$upstream" "$conns" "$keys" "$reply" "$bin" "$audit" "$threads" <<'PY'
import glob, json, shutil, sys
work, profile, load, calls, upstream, conns, keys, reply, binary, audit, threads = sys.argv[1:]
calls = int(calls)
total, per_thread = 0, {}
for path in glob.glob(work + "/callgrind.out*"):
    n, text = 0, open(path, errors="replace").read()
    for line in text.splitlines():
        if line.startswith("summary:") or line.startswith("totals:"):
            n = max(n, int(line.split()[1]))
    total += n
    # A thread is named by what it runs: workers poll monoio tasks, the audit log thread runs
    # the audit module's code (and nothing of monoio's).
    kind = "worker" if "monoio::task::raw::poll" in text else "audit" if "src/audit/" in text else "other"
    per_thread[kind] = per_thread.get(kind, 0) + n
    if kind == "audit" and n > 0:
        shutil.copy(path, profile.replace(".out", ".audit.out"))
done = json.load(open(load))
row = {"binary": binary, "upstream": upstream, "connections": int(conns), "keys": keys == "1",
       "reply_bytes": int(reply), "audit": audit, "calls": calls, "errors": done.get("errors", {}),
       "instructions_per_call": round(total / calls)}
if threads == "yes":
    row["per_thread"] = {k: round(v / calls) for k, v in sorted(per_thread.items())}
row["profile"] = profile
print(json.dumps(row))
PY
