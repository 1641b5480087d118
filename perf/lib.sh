# Shared by the perf scripts (source it): release build, a work directory removed on exit,
# background processes killed on exit, and an event wait for a line in a log file.
#   bin, load     the release binaries
#   work          a temporary directory
#   pids          append background pids to it: they are killed on exit
#   wait_line F P prints the first line of file F containing P (waits up to 60 s for it)
#   cpu_ticks PID user+system CPU of a process, in clock ticks
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[ -n "${SKIP_BUILD:-}" ] || cargo build --release --workspace >&2
bin=target/release/mcpgate
load=target/release/mcpgate-load
work=$(mktemp -d)
pids=()
perf_cleanup() {
    exec 3>&- 2>/dev/null || true
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap perf_cleanup EXIT
wait_line() {
    for _ in $(seq 1 600); do
        grep -q "$2" "$1" 2>/dev/null && { grep -m1 "$2" "$1"; return 0; }
        sleep 0.1
    done
    echo "timed out waiting for '$2' in $1" >&2; cat "$1" >&2; return 1
}
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
