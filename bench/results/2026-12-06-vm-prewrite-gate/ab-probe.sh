#!/bin/bash
# usage: ab.sh ROUNDS RATE : probe hub G, prewrite off / on / on gated (smoothed batch interval >= 600 us), interleaved
for r in $(seq 1 $1); do
for cfg in off on gated; do
  rm -rf hubs hubs.toml
  extra=""; gate=0
  [ $cfg != off ] && extra="--prewrite-ahead-mib 32"
  [ $cfg = gated ] && gate=600
  GONETS_PROBE_PW_INTERVAL_US=$gate GONETS_BIN=/work/tmp/s35/G/gonets /work/tmp/s35/W/gonets-loadgen rt --embedded --hub-cores 1 --cores 0 --security plain --rate $2 --duration 10 $extra --data-dir hubs > g-$2-$cfg-$r.log 2>&1
  echo "$2 $cfg r$r $(grep -E '^  rt' g-$2-$cfg-$r.log | grep -o 'p50 [0-9.]*\|p99 [0-9.]*\|p99.9 [0-9.]*\|hub CPU [0-9.]*\|commits/op [0-9.]*' | paste -sd' ')"
done; done
