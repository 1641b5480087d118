#!/usr/bin/env bash
# Runs every fuzz target (or those named) for SECONDS each with cargo-fuzz on nightly: the
# separate step beside .ci/run, whose stable `cargo test` runs only the smoke test
# (tests/fuzz_smoke.rs). Installs nightly and cargo-fuzz when missing. Exits non-zero when a
# target found a crash; the input is then in fuzz/artifacts/<target>/.
#
#   fuzz/run.sh [SECONDS] [TARGET...]        default: 60 seconds, every target
#
# New inputs go to fuzz/corpus/<target>/ (not committed); the committed seeds in
# fuzz/seeds/<target>/ are read, never written. The build goes to $CARGO_TARGET_DIR/fuzz, or
# fuzz/target.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"
seconds="${1:-60}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(http_head jsonrpc_envelope config sse session_id)
fi

if ! cargo +nightly --version >/dev/null 2>&1; then
    rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
if [ -n "${CARGO_TARGET_DIR:-}" ]; then
    target_dir="$CARGO_TARGET_DIR/fuzz"
else
    target_dir="$PWD/target"
fi

failed=()
for target in "${targets[@]}"; do
    printf '\n==================== fuzz %s for %ss ====================\n' "$target" "$seconds"
    mkdir -p "corpus/$target"
    # -timeout: an input taking 10 s is a hang. -rss_limit_mb: a runaway allocation is a bug.
    if ! cargo +nightly fuzz run --target-dir "$target_dir" "$target" "corpus/$target" "seeds/$target" \
        -- -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 </dev/null; then
        failed+=("$target")
    fi
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz targets that found a problem: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
    exit 1
fi
echo "every fuzz target ran ${seconds}s without a finding"
