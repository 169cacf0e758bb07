#!/bin/bash
# usage: abmix.sh ROUNDS DIR... — interleaved `mixed` runs (rt 2,000/s, then
# beside bulk flat out), one per DIR (each holding `gonets` and
# `gonets-loadgen`) a round, with the hub's rt stages scraped in the bulk
# phase (../2026-12-05-vm-rt-stages/scrape2.sh, stages.py). $EXTRA adds
# loadgen flags (e.g. "--io-worker-cores 0", "--keep-data").
here=$(cd "$(dirname "$0")" && pwd)
stages=$here/../2026-12-05-vm-rt-stages
R=$1; shift
for r in $(seq 1 "$R"); do
  for d in "$@"; do
    tag=$(basename "$d")-r$r
    # shellcheck disable=SC2086
    GONETS_BIN=$d/gonets L=$d/gonets-loadgen bash "$stages/scrape2.sh" "$tag" rt+bulk -- mixed --embedded \
      --hub-cores 1 --cores 0 --rt-cores 0 --security plain --rate 2000 --duration 10 $EXTRA > /dev/null
    echo "== $tag"; grep -E "^  (rt|bulk)" "s-$tag.log" | cut -c1-150
    python3 "$stages/stages.py" "s-$tag" | grep -E "answer shard|call   hub"
  done
done
