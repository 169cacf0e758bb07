#!/bin/bash
# usage: sweep.sh ROUNDS SECURITY : rt 10,000/s with [commit] window_us 0/200/500/1000, interleaved
for r in $(seq 1 $1); do
for w in 0 200 500 1000; do
  rm -rf hubs hubs.toml
  GONETS_BIN=/work/tmp/s35/W/gonets /work/tmp/s35/W/gonets-loadgen rt --embedded --hub-cores 1 --cores 0 --security $2 --rate 10000 --duration 10 --commit-window-us $w --data-dir hubs > w$w-$2-$r.log 2>&1
  echo "w=$w $2 r$r $(grep -E '^  rt' w$w-$2-$r.log | grep -o 'p50 [0-9.]*\|p99.9 [0-9.]*\|hub CPU [0-9.]*\|commits/op [0-9.]*\|signatures/op [0-9.]*' | paste -sd' ')"
done; done
