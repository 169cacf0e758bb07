#!/bin/bash
# usage: ab3.sh ROUNDS NAME -- loadgen args : the final build, prewrite on (--prewrite-ahead-mib 32) against the default (off), interleaved
R=$1; N=$2; shift 3
B=/work/tmp/s35/N
for r in $(seq 1 $R); do
for tag in on off; do
  extra=""; [ $tag = on ] && extra="--prewrite-ahead-mib 32"
  rm -rf hubs hubs.toml
  GONETS_BIN=$B/gonets $B/gonets-loadgen "$@" $extra --data-dir hubs > f-$N-$tag-$r.log 2>&1
  echo "== $N $tag r$r"; grep -E "^  (rt|bulk)" f-$N-$tag-$r.log | sed 's/ms | over 2 s: 0 //' | cut -c1-200
done; done
