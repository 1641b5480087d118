#!/usr/bin/env bash
# Runs the official MCP conformance suite (@modelcontextprotocol/conformance, server scenarios)
# against mcpgate, prints the pass/fail count, and exits non-zero when a check fails.
#
#   conformance/run.sh
#
# Environment:
#   CONFORMANCE_TARGET    gateway (default): mcpgate with tool_prefix "never" in front of the
#                         mock upstream's conformance profile (over streamable HTTP).
#                         mock: the mock's conformance profile, directly.
#   CONFORMANCE_SUITE     all (default: every server scenario, pending ones included),
#                         active (the runner's default), or pending.
#   CONFORMANCE_SCENARIO  run this one scenario instead of a suite.
#   CARGO_TARGET_DIR      where cargo builds (as for cargo itself).
#   MCPGATE_BIN           an mcpgate binary to use instead of building one (CI passes the one
#                         `cargo test` built, which a plain `cargo build` would rebuild: test
#                         builds unify dependency features differently).
#
# The runner and the Node.js it needs (>= 22) are pinned in conformance/package.json and
# package-lock.json and installed into conformance/.runner on first use (again when the lock
# file changes). Nothing is installed system-wide.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
runner="$here/.runner"
target=${CONFORMANCE_TARGET:-gateway}
suite=${CONFORMANCE_SUITE:-all}

case "$target" in
    mock | gateway) ;;
    *)
        echo "conformance/run.sh: CONFORMANCE_TARGET must be mock or gateway, not '$target'" >&2
        exit 2 ;;
esac

# 1. The runner, installed from the lock file when missing or stale.
if ! cmp -s "$here/package-lock.json" "$runner/package-lock.json" \
   || [ ! -x "$runner/node_modules/node/bin/node" ]; then
    echo "conformance: installing the runner into $runner" >&2
    rm -rf "$runner"
    mkdir -p "$runner"
    cp "$here/package.json" "$here/package-lock.json" "$runner/"
    (cd "$runner" && npm ci --no-audit --no-fund >&2)
fi
node="$runner/node_modules/node/bin/node"
suite_js="$runner/node_modules/@modelcontextprotocol/conformance/dist/index.js"
# The `node` package fetches the real binary in an install script; a registry or npm policy
# that skips install scripts leaves a stub behind.
node_major=$("$node" -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$node_major" -lt 22 ]; then
    echo "conformance: $node is not a working Node.js >= 22 (did npm skip the node package's" \
         "install script?); remove $runner and retry with install scripts allowed" >&2
    exit 1
fi

# 2. The binary.
bin=${MCPGATE_BIN:-}
if [ -z "$bin" ]; then
    (cd "$repo" && cargo build --bin mcpgate >&2)
    bin="${CARGO_TARGET_DIR:-$repo/target}/debug/mcpgate"
fi

# 3. The mock, on a port the kernel picks; its first stdout line says where it listens.
work=$(mktemp -d)
mock_pid=
gateway_pid=
cleanup() {
    for pid in $gateway_pid $mock_pid; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    exec 3<&- 2>/dev/null || true
    exec 4<&- 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# Reads the first stdout line of the process just started with its stdout on fifo `$1`, kept
# open on descriptor `$2` to the end (so the process never blocks on, or dies from, a closed
# stdout), and sets `url` from its "listening on URL" line; `$3` names it in errors.
wait_listening() {
    local fifo=$1 fd=$2 what=$3 ready
    eval "exec $fd<\"$fifo\""
    if ! IFS= read -r -t 60 ready <&"$fd" || [[ "$ready" != *"listening on "* ]]; then
        echo "conformance: the $what did not report that it listens; its stderr:" >&2
        cat "$work/$what.err" >&2
        exit 1
    fi
    url=${ready##*listening on }
}

mkfifo "$work/mock.out"
"$bin" mock-upstream --profile conformance --listen 127.0.0.1:0 \
    >"$work/mock.out" 2>"$work/mock.err" &
mock_pid=$!
wait_listening "$work/mock.out" 3 mock

# 3b. The gateway in front of it, its names left as the upstream's (tool_prefix "never").
if [ "$target" = gateway ]; then
    cat >"$work/gateway.json" <<JSON
{ "listen": "127.0.0.1:0", "workers": 2, "tool_prefix": "never",
  "mcpServers": { "conformance": { "url": "$url" } } }
JSON
    mkfifo "$work/gateway.out"
    MCPGATE_LOG=${MCPGATE_LOG:-info} "$bin" serve --config "$work/gateway.json" \
        >"$work/gateway.out" 2>"$work/gateway.err" &
    gateway_pid=$!
    wait_listening "$work/gateway.out" 4 gateway
fi
echo "conformance: target $target at $url" >&2

# 4. The suite.
args=(server --url "$url")
if [ -n "${CONFORMANCE_SCENARIO:-}" ]; then
    args+=(--scenario "$CONFORMANCE_SCENARIO")
else
    args+=(--suite "$suite")
fi
status=0
"$node" "$suite_js" "${args[@]}" >"$work/suite.log" 2>&1 || status=$?

# 5. The count. A whole suite ends with "Total: N passed, M failed"; one scenario with
# "Passed: N/D, M failed, W warnings".
if [ -n "${CONFORMANCE_SCENARIO:-}" ]; then
    cat "$work/suite.log"
    summary=$(grep -E '^Passed: ' "$work/suite.log" | tail -n 1 || true)
else
    sed -n '/=== SUMMARY ===/,$p' "$work/suite.log"
    summary=$(grep -E '^Total: ' "$work/suite.log" | tail -n 1 || true)
fi
if [ -z "$summary" ]; then
    echo "conformance: the runner printed no result (exit $status); its output:" >&2
    cat "$work/suite.log" >&2
    exit 1
fi
failed=$(sed -E 's/.* ([0-9]+) failed.*/\1/' <<<"$summary")
echo "conformance ($target, ${CONFORMANCE_SCENARIO:-suite $suite}): $summary"
if [ "$status" -ne 0 ] || [ "$failed" != 0 ]; then
    sed -n '/=== Failed Checks ===/,$p' "$work/suite.log" >&2
    if [ "$target" = gateway ]; then
        echo "--- gateway log (last 40 lines)" >&2
        tail -n 40 "$work/gateway.err" >&2
    fi
    exit 1
fi
