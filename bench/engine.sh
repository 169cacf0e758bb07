#!/usr/bin/env bash
# Engine benchmarks: the in-process rt and bulk workloads (DESIGN.md §4)
# through the embedding API with real storage, beside the log's own commit
# latency measured in the same run; optionally the shard state-machine
# criterion bench. See bench/README.md.
#
#   bash bench/engine.sh [--runs N] [--rates R,R,..] [--seconds S] [--count N] [--criterion]
#
#   --runs N       repeat each measurement N times (default 3); compare medians
#   --rates        rt offered loads, requests/s (default 1000,5000,10000)
#   --seconds S    measured seconds per rt run (default 5)
#   --count N      bulk requests per run (default 200000)
#   --criterion    also run `cargo bench --bench shard` (about 1 minute)
#
# Pinning: the hub's shard on core 1, the load generator on core 0 (the
# 2-core development VM). Results go to bench/results/DATE-engine-HOST-*.json.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=3 rates=1000,5000,10000 seconds=5 count=200000 criterion=0
need_value() { [ $# -ge 2 ] || { echo "engine.sh: $1 needs a value" >&2; exit 2; }; }
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) need_value "$@"; runs=$2; shift 2 ;;
    --rates) need_value "$@"; rates=$2; shift 2 ;;
    --seconds) need_value "$@"; seconds=$2; shift 2 ;;
    --count) need_value "$@"; count=$2; shift 2 ;;
    --criterion) criterion=1; shift ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "engine.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
  esac
done
case "$runs" in ''|*[!0-9]*|0) echo "engine.sh: --runs must be a positive integer" >&2; exit 2 ;; esac

cur=$(ulimit -l)
if [ "$cur" != "unlimited" ] && [ "$cur" -lt $((512 * 1024)) ]; then
  ulimit -l $((512 * 1024)) 2>/dev/null || ulimit -l unlimited 2>/dev/null || \
    echo "warning: RLIMIT_MEMLOCK stays at ${cur} KiB; glommio falls back to unregistered buffers" >&2
fi

cargo build --release -p gonets-bench --bins
cargo build --release -p gonets-loadgen
out="bench/results/$(date -u +%Y-%m-%d)-engine-$(hostname -s)"
mkdir -p bench/results
# The in-process hubs' data directories (each removed after its run).
data=$(mktemp -d "${TMPDIR:-/tmp}/gonets-engine-bench.XXXXXX")
trap 'rm -rf "$data"' EXIT
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(uname -r)"

for r in $(seq 1 "$runs"); do
  echo "== run $r/$runs: the log alone (commit-latency, open loop, 1 KiB, core 1)"
  taskset -c 1 ./target/release/commit-latency --rates "$rates" --seconds "$seconds" --warmup 1 \
    --json "$out-commit-$r.json" | tail -n +3
  # The hub inside the generator's process (no network): 4 consumers and
  # 4 provider loops for rt, 8 x 64 in flight and 2 provider loops for bulk.
  for rate in ${rates//,/ }; do
    echo "== run $r/$runs: rt at $rate/s"
    ./target/release/gonets-loadgen rt --in-process --rate "$rate" --duration "$seconds" --warmup 1 \
      --consumers 4 --providers 4 --hub-cores 1 --cores 0 --data-dir "$data/rt" \
      --json "$out-rt-$rate-$r.json" 2>/dev/null | grep -E "^  rt|INVALID" \
      || echo "engine.sh: rt at $rate/s failed or was invalid (see $out-rt-$rate-$r.json)"
  done
  echo "== run $r/$runs: bulk, $count requests of 4 KiB"
  ./target/release/gonets-loadgen bulk --in-process --messages "$count" --message-bytes 4096 \
    --senders 8 --window 64 --providers 2 --hub-cores 1 --cores 0 --data-dir "$data/bulk" \
    --json "$out-bulk-$r.json" 2>/dev/null | grep -E "^  bulk|INVALID" \
    || echo "engine.sh: bulk failed or was invalid (see $out-bulk-$r.json)"
done
if [ "$criterion" = 1 ]; then
  echo "== criterion: the shard state machine alone"
  cargo bench -p gonets-bench --bench shard 2>&1 | grep -E "^shard|time:|thrpt:"
fi
echo "results: $out-*.json"
