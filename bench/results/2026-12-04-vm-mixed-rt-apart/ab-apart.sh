#!/bin/bash
export GONETS_BIN=/work/main/target/release/gonets
L=/work/main/target/release/gonets-loadgen
for r in 1 2 3; do
 for v in same apart; do
  extra=""; [ $v = apart ] && extra="--rt-cores 0"
  rm -rf hubm
  timeout 300 $L mixed --embedded --hub-cores 1 --cores 0 $extra --security plain --rate 2000 --duration 10 --data-dir hubm --json m-$v-r$r.json 2>&1 | grep -E "^  (rt|bulk)" | sed "s/^/$v r$r /"
 done
done
