#!/bin/bash
# usage: ab2.sh ROUNDS NAME -- loadgen args   (CFGS="tag:ahead,chunk ...")
R=$1; N=$2; shift 3
for r in $(seq 1 $R); do
for cfg in $CFGS; do
  tag=${cfg%%:*}; v=${cfg#*:}
  rm -rf hubs hubs.toml
  GONETS_PROBE_PREWRITE=$v GONETS_BIN=/work/tmp/s35/PW/gonets /work/tmp/s35/PW/gonets-loadgen "$@" --data-dir hubs > $N-$tag-$r.log 2>&1
  echo "== $N $tag r$r"; grep -E "^  (rt|bulk)" $N-$tag-$r.log | sed 's/ms | over 2 s: 0 //' | cut -c1-230
done; done
