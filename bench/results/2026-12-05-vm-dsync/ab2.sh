#!/bin/bash
# interleaved A/B of mixed: fdatasync vs dsync through --commit-sync; ROUNDS, TAG (file prefix: d, or f for the runs on b723b2b)
export GONETS_BIN=/work/main/target/release/gonets
for r in $(seq 1 ${ROUNDS:-3}); do
 for v in fdatasync dsync; do
  rm -rf hubx
  timeout 300 /work/main/target/release/gonets-loadgen mixed --embedded --hub-cores 1 --cores 0 --rt-cores 0 --commit-sync $v --security plain --rate 2000 --duration 10 --data-dir hubx --json ${TAG:-d}-$v-r$r.json 2>&1 | grep -E "^  (rt|bulk)" | cut -c1-400 | sed "s/^/$v r$r /"
 done
done
