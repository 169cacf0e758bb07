#!/bin/bash
# usage: sweep.sh ROUNDS BINDIR KIB... — interleaved `mixed` runs (rt 2,000/s alone, then
# beside bulk flat out) at each `--bulk-unwritten-kib` (ADR 0015's bound on bulk bytes
# unwritten while rt calls come), hub stages scraped over the bulk phase, then bulk alone
# twice (the rate the mixed row's share is taken of). Run from a scratch directory.
here=$(cd "$(dirname "$0")" && pwd)
stages=$here/../2026-12-05-vm-rt-stages
R=$1; d=$2; shift 2
for r in $(seq 1 "$R"); do
  for k in "$@"; do
    tag=u$k-r$r
    GONETS_BIN=$d/gonets L=$d/gonets-loadgen bash "$stages/scrape2.sh" "$tag" rt+bulk -- mixed --embedded \
      --hub-cores 1 --cores 0 --rt-cores 0 --security plain --rate 2000 --duration 10 --bulk-unwritten-kib "$k" > /dev/null
    echo "== $tag"; grep -E "^  (rt|bulk)" "s-$tag.log" | cut -c1-150
    python3 "$stages/stages.py" "s-$tag" | grep -E "answer shard|call   hub"
  done
done
for r in 1 2; do
  echo "== bulk-alone-r$r"
  $d/gonets-loadgen bulk --embedded --hub-cores 1 --cores 0 --security plain --messages 300000 --message-bytes 4096 \
    --data-dir hubs 2>&1 | grep -E "^  bulk" | cut -c1-150
done
