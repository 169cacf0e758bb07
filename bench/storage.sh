#!/usr/bin/env bash
# Storage benchmarks: raw disk limits, open-loop commit latency, flat-out
# append+commit throughput, recovery, and (unless --quick) the criterion
# micro-benchmarks; then a summary that sets each figure beside the raw limit
# measured in the same run. See bench/README.md.
#
#   bash bench/storage.sh [--quick] [--no-pin] [--runs N] [--dir DIR] [--seconds S] [--gib G]
#                         [--segment-mib M] [--settle S]
#
#   --quick      skip the criterion bench (about 3 minutes)
#   --no-pin     do not pin the measured processes to core 1 (results file gets -unpinned)
#   --runs N     repeat the limits (gonets-loadgen limits --ways), commit-latency
#                and recovery-bench N times;
#                the summary takes medians (default 3)
#   --dir DIR    directory on the disk under test (default: $TMPDIR or /tmp)
#   --seconds S  measured seconds per offered load in commit-latency (default 5)
#   --gib G      size of the log recovery-bench builds (default 1)
#   --segment-mib M  segment size of every log (default: the production 64;
#                results file gets -segM); criterion reads GONETS_BENCH_SEGMENT_MIB
#   --settle S   seconds to wait after each tool removed its files (default 15)
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0 pin_wanted=1 runs=3 dir="${TMPDIR:-/tmp}" seconds=5 gib=1 segment_mib=64 settle_s=15
need_value() { [ $# -ge 2 ] || { echo "storage.sh: $1 needs a value" >&2; exit 2; }; }
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1; shift ;;
    --no-pin) pin_wanted=0; shift ;;
    --runs) need_value "$@"; runs=$2; shift 2 ;;
    --dir) need_value "$@"; dir=$2; shift 2 ;;
    --seconds) need_value "$@"; seconds=$2; shift 2 ;;
    --gib) need_value "$@"; gib=$2; shift 2 ;;
    --segment-mib) need_value "$@"; segment_mib=$2; shift 2 ;;
    --settle) need_value "$@"; settle_s=$2; shift 2 ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "storage.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
  esac
done
case "$runs" in ''|*[!0-9]*|0) echo "storage.sh: --runs must be a positive integer" >&2; exit 2 ;; esac
case "$settle_s" in ''|*[!0-9]*) echo "storage.sh: --settle must be a whole number of seconds" >&2; exit 2 ;; esac
[ -d "$dir" ] || { echo "storage.sh: --dir $dir is not a directory" >&2; exit 2; }

# glommio registers io_uring buffers: raise the locked-memory limit where we may.
want_kib=$((512 * 1024))
cur=$(ulimit -l)
if [ "$cur" != "unlimited" ] && [ "$cur" -lt "$want_kib" ]; then
  ulimit -l "$want_kib" 2>/dev/null || ulimit -l unlimited 2>/dev/null || \
    echo "warning: RLIMIT_MEMLOCK stays at ${cur} KiB; glommio may fail to start" >&2
fi

# Per-package build: the storage crate's test-only `failpoints` feature (which
# the tests crate turns on) stays off, as in production.
echo "+ cargo build --release -p gonets-bench"
cargo build --release -p gonets-bench
echo "+ cargo build --release -p gonets-loadgen"
cargo build --release -p gonets-loadgen
if [ "$quick" = 0 ]; then
  echo "+ cargo bench -p gonets-bench --bench storage --no-run"
  cargo bench -p gonets-bench --bench storage --no-run
fi
target_dir=${CARGO_TARGET_DIR:-target}
bin="$target_dir/release"

# One core for the measured process (its executor, io_uring completions
# and the flusher share it, as on a shard); none where taskset or core 1 is absent.
pin=()
if [ "$pin_wanted" = 1 ] && command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
  pin=(taskset -c 1)
fi

date_utc=$(date -u +%Y-%m-%d)
host=$(hostname -s 2>/dev/null || hostname)
mkdir -p bench/results
work=$(mktemp -d --suffix=.tmp "bench/results/${date_utc}-${host}.XXXX")
tag=""
[ ${#pin[@]} -gt 0 ] || tag="-unpinned"
[ "$segment_mib" = 64 ] || tag="$tag-seg$segment_mib"
out="bench/results/${date_utc}-${host}${tag}.json"
n=2
while [ -e "$out" ]; do out="bench/results/${date_utc}-${host}${tag}-$n.json"; n=$((n + 1)); done
since=$(date +%s)

{
  echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
  echo "host: $host"
  echo "cpu: $(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1)"
  echo "cores: $(nproc)"
  echo "memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
  echo "kernel: $(uname -sr)"
  echo "data dir: $dir"
  echo "filesystem: $(findmnt -n -o FSTYPE,SOURCE,OPTIONS --target "$dir" 2>/dev/null || df -T "$dir" | tail -1)"
  echo "pinning: ${pin[*]:-none}"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "rustc: $(rustc --version)"
  echo "git: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (uncommitted changes)')"
} > "$work/machine.txt"
echo "== machine"
cat "$work/machine.txt"

: > "$work/commands.txt"
run() {
  echo "+ $*"
  echo "$*" >> "$work/commands.txt"
  "$@"
}

# Each tool removes its files when it ends; on a disk mounted with `discard`
# that slows fdatasync for about ten seconds (measured on the development VM:
# p99 at 1000 commits/s went from 3 ms to 57-193 ms), so wait before the next.
settle() {
  echo "+ sleep $settle_s   # let the disk settle after file removal"
  echo "sleep $settle_s" >> "$work/commands.txt"
  sleep "$settle_s"
}

for i in $(seq 1 "$runs"); do
  r="$work/run-$i"
  mkdir -p "$r"
  echo "== run $i of $runs"
  # The raw limits: the storage design's write ways through io_uring (the
  # figures the summary compares with), and loopback/memcpy beside them.
  run ${pin[@]+"${pin[@]}"} "$bin/gonets-loadgen" limits --ways --quick --limits-dir "$dir" --json "$r/limits.json"
  settle
  run ${pin[@]+"${pin[@]}"} "$bin/commit-latency" --dir "$dir" --seconds "$seconds" --segment-mib "$segment_mib" --paced 1000 --max --json "$r/commit-latency.json"
  settle
  run ${pin[@]+"${pin[@]}"} "$bin/recovery-bench" --dir "$dir" --gib "$gib" --segment-mib "$segment_mib" --json "$r/recovery-bench.json"
  settle
done

if [ "$quick" = 0 ]; then
  echo "== criterion"
  export GONETS_BENCH_SEGMENT_MIB=$segment_mib GONETS_BENCH_DIR=$dir
  echo "GONETS_BENCH_SEGMENT_MIB=$segment_mib GONETS_BENCH_DIR=$dir" >> "$work/commands.txt"
  run ${pin[@]+"${pin[@]}"} cargo bench -p gonets-bench --bench storage
fi
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$work/machine.txt"

echo "== summary"
"$bin/gonets-loadgen" report --storage --results "$work" --criterion "$target_dir/criterion" --since "$since" --json "$out"
rm -rf "$work"
echo "results: $out"
