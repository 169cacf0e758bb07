#!/bin/bash
# usage: TAG=x WL="rt10k bulk" VARIANTS="base split" ab2.sh
cd /work/tmp/s26
T=${TAG:-c}
for r in $(seq 1 ${ROUNDS:-3}); do
  for w in ${WL:-rt10k bulk}; do
  for v in ${VARIANTS:-base split}; do
    B=/work/tmp/s26/$v
    case $w in
      rt10k) args="rt --rate 10000 --duration 10";;
      bulk) args="bulk --duration 10";;
    esac
    rm -rf hubw; GONETS_BIN=$B/gonets $B/gonets-loadgen $args --embedded --hub-cores 1 --cores 0 --security plain --data-dir hubw --json $T-$v-$w-r$r.json 2>&1 | grep -E "^  (rt|bulk|send|drain)" | sed -E 's/\| hub commits.*//;s/peak RSS.*//' | sed "s/^/$v r$r /" | cut -c1-200
  done
  done
done
