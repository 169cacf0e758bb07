#!/bin/bash
# usage: ab.sh ROUNDS NAME -- args : hub N (1130aea) against D2 (two dsync writes in flight), interleaved
R=$1; N=$2; shift 3
for r in $(seq 1 $R); do
for tag in $TAGS; do
  rm -rf hubs hubs.toml
  GONETS_BIN=/work/tmp/s35/$tag/gonets /work/tmp/s35/N/gonets-loadgen "$@" --data-dir hubs > $N-$tag-$r.log 2>&1
  echo "== $N $tag r$r $(grep -E '^  (rt|bulk)' $N-$tag-$r.log | grep -o '^  [a-z-]*\|p50 [0-9.]*\|p99.9 [0-9.]*\|hub CPU [0-9.]*\|commits/op [0-9.]*\|[0-9]*/s ' | paste -sd' ')"
done; done
