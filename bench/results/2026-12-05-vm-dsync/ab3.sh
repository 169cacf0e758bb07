#!/bin/bash
# rt 10,000/s and bulk alone: fdatasync vs dsync, interleaved; TAG (file prefix: e, or g for the runs on b723b2b)
export GONETS_BIN=/work/main/target/release/gonets
L=/work/main/target/release/gonets-loadgen
for r in 1 2 3; do
 for v in fdatasync dsync; do
  rm -rf hubx
  timeout 300 $L rt --embedded --hub-cores 1 --cores 0 --commit-sync $v --security plain --rate 10000 --duration 10 --data-dir hubx --json ${TAG:-e}-rt-$v-r$r.json 2>&1 | grep -E "^  rt" | cut -c1-330 | sed "s/^/$v r$r /"
 done
done
for r in 1 2; do
 for v in fdatasync dsync; do
  rm -rf hubx
  timeout 300 $L bulk --embedded --hub-cores 1 --cores 0 --commit-sync $v --security plain --messages 300000 --message-bytes 4096 --data-dir hubx --json ${TAG:-e}-bulk-$v-r$r.json 2>&1 | grep -E "^  bulk" | cut -c1-330 | sed "s/^/$v r$r /"
 done
done
