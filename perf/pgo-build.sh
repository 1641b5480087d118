#!/usr/bin/env bash
# Builds the gateway with profile-guided optimisation: an instrumented build serves the standard
# scenarios for a few seconds each, its profiles are merged, and a release build uses them to
# lay out and inline the code the way calls run it. The build to deploy and to measure with;
# `cargo build --release` stays the plain one.
#
#   perf/pgo-build.sh [--round-secs S]      (how long each training scenario runs; default 3)
#
# Output: target/pgo/release/mcpgate, and the merged profile target/pgo/mcpgate.profdata.
# Needs the `llvm-profdata` of rustc's own LLVM: the rustup component `llvm-tools` (added when
# missing), or the one named by $LLVM_PROFDATA. Compare with the plain build by running any
# perf script with GATEWAY_BIN=target/pgo/release/mcpgate.
set -euo pipefail
round_secs=3
while [ $# -gt 0 ]; do
    case "$1" in
        --round-secs) round_secs=$2; shift 2 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD

profdata=${LLVM_PROFDATA:-}
if [ -z "$profdata" ]; then
    profdata="$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/bin/llvm-profdata"
    [ -x "$profdata" ] || rustup component add llvm-tools >&2
fi
if [ ! -x "$profdata" ]; then
    echo "no llvm-profdata at $profdata: set LLVM_PROFDATA to the one of rustc's LLVM ($(rustc -vV | sed -n 's/^LLVM version: //p'))" >&2
    exit 1
fi

profiles=$(mktemp -d)
trap 'rm -rf "$profiles"' EXIT
gen="$root/target/pgo-instrumented"
out="$root/target/pgo"
mkdir -p "$out"

# Build scripts are instrumented too and write their profiles at build time: they go to a
# directory of their own, apart from the gateway's.
RUSTFLAGS="-Cprofile-generate=$profiles/build" CARGO_TARGET_DIR="$gen" \
    cargo build --release -p mcpgate >&2

# The training runs: the calls a gateway serves (HTTP and stdio upstreams, small and 64 KiB
# replies, audit log on and off, virtual keys with grants and limits, an open-loop rate).
# Only the gateway is the instrumented build; the mock and the load generator are the plain
# ones, and write no profile.
export LLVM_PROFILE_FILE="$profiles/run/gateway-%p-%m.profraw"
for scenario in \
    "--upstream http --audit off" \
    "--upstream http --audit on" \
    "--upstream stdio --audit off" \
    "--upstream stdio --audit on" \
    "--upstream http --keys" \
    "--upstream http --reply-bytes 65536" \
    "--upstream stdio --reply-bytes 65536" \
    "--upstream http --rate 2000"; do
    echo "training: $scenario" >&2
    # shellcheck disable=SC2086 # the scenario is a list of flags
    GATEWAY_BIN="$gen/release/mcpgate" perf/scenario.sh --rounds 1 --round-secs "$round_secs" \
        $scenario > /dev/null
done
unset LLVM_PROFILE_FILE

"$profdata" merge -o "$out/mcpgate.profdata" "$profiles"/run/*.profraw
RUSTFLAGS="-Cprofile-use=$out/mcpgate.profdata" CARGO_TARGET_DIR="$out" \
    cargo build --release -p mcpgate >&2
echo "$out/release/mcpgate"
