#!/usr/bin/env bash
# End-to-end rt over the network (issue 4's first figure): `gonets serve`
# with one shard pinned to core 1, `gonets-loadgen rt` (consumer MFC and
# provider MVD as real clients) pinned to core 0, open loop, over mutual TLS
# and over plain loopback (dev-token mode). See bench/README.md.
#
#   bash bench/net.sh [--runs N] [--rate R] [--seconds S]
#
# Results: bench/results/DATE-net-HOST-{tls,plain}-RUN.json and one line per run.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=3 rate=5000 seconds=10
need_value() { [ $# -ge 2 ] || { echo "net.sh: $1 needs a value" >&2; exit 2; }; }
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) need_value "$@"; runs=$2; shift 2 ;;
    --rate) need_value "$@"; rate=$2; shift 2 ;;
    --seconds) need_value "$@"; seconds=$2; shift 2 ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "net.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
  esac
done

cargo build --release -p gonets --bin gonets
cargo build --release -p gonets-loadgen
out="bench/results/$(date -u +%Y-%m-%d)-net-$(hostname -s)"
mkdir -p bench/results
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(uname -r)"
port=7431
work=$(mktemp -d /tmp/gonets-net-bench.XXXXXX)
server_pid=
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

for r in $(seq 1 "$runs"); do
  for mode in tls plain; do
    rm -rf "$work/data"
    security=tls; [ "$mode" = plain ] && security=dev-token
    cat > "$work/gonets.toml" <<TOML
data_dir = "$work/data"
shards = 1
cores = [1]
listen = "127.0.0.1:$port"
security = "$security"
TOML
    ./target/release/gonets serve --config "$work/gonets.toml" > "$work/server.log" 2>&1 &
    server_pid=$!
    for _ in $(seq 1 200); do grep -q "gonets listening" "$work/server.log" && break; sleep 0.1; done
    grep -q "gonets listening" "$work/server.log" || { cat "$work/server.log"; exit 1; }
    ./target/release/gonets-loadgen rt --target "127.0.0.1:$port" --security "$mode" \
      --certs "$work/data/dev-certs" --rate "$rate" --duration "$seconds" --warmup 2 \
      --server-pid "$server_pid" --core 0 --json "$out-$mode-$r.json" || true
    kill -TERM "$server_pid"; wait "$server_pid" || true; server_pid=
  done
done
