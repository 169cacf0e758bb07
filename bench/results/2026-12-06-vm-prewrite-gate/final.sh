#!/bin/bash
# usage: final.sh ROUNDS RATE : the final build, the default (prewrite gated at 600 us) against --prewrite-ahead-mib 0, interleaved
for r in $(seq 1 $1); do
for cfg in default off; do
  rm -rf hubs hubs.toml
  extra=""; [ $cfg = off ] && extra="--prewrite-ahead-mib 0"
  GONETS_BIN=/work/tmp/s35/F/gonets /work/tmp/s35/F/gonets-loadgen rt --embedded --hub-cores 1 --cores 0 --security plain --rate $2 --duration 10 $extra --data-dir hubs > f-$2-$cfg-$r.log 2>&1
  echo "$2 $cfg r$r $(grep -E '^  rt' f-$2-$cfg-$r.log | grep -o 'p50 [0-9.]*\|p99 [0-9.]*\|p99.9 [0-9.]*\|hub CPU [0-9.]*\|commits/op [0-9.]*' | paste -sd' ')"
done; done
