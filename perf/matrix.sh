#!/usr/bin/env bash
# The standard scenarios of perf/RESULTS.md, one JSON line each (appended to $OUT).
#   perf/matrix.sh [OUT]      default OUT: perf/results/<date>-matrix.jsonl
# Each line comes from perf/scenario.sh; see there for the CPU layout and the method.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out=${1:-perf/results/$(date +%Y-%m-%d)-matrix.jsonl}
mkdir -p "$(dirname "$out")"
cargo build --release --workspace >&2
run() { SKIP_BUILD=1 perf/scenario.sh --rounds "${ROUNDS:-3}" --round-secs "${ROUND_SECS:-4}" "$@" | tail -1 | tee -a "$out"; }
for up in http stdio; do
    run --upstream "$up"                                   # baseline: 10 tools, 100 B, 16 connections
    run --upstream "$up" --tools 500
    run --upstream "$up" --reply-bytes 65536
    run --upstream "$up" --connections 1
    run --upstream "$up" --connections 256
    run --upstream "$up" --rate 2000
done
run --upstream http --driver epoll
