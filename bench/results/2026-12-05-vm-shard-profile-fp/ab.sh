#!/bin/bash
# usage: ab.sh ROUNDS RATE DIR_A DIR_B ...
N=$1; R=$2; shift 2
for i in $(seq 1 $N); do for d in "$@"; do
  L=$(taskset -c 0 $d/gonets-loadgen rt --embedded --hub-cores 1 --cores 0 --security plain --rate $R --warmup 1 --duration 12 2>&1 | grep "p50")
  echo "$(basename $d) $R r$i: $(echo "$L" | grep -oE 'p50 [0-9.]+|p99.9 [0-9.]+|max [0-9.]+|hub CPU [0-9.]+' | tr '\n' ' ')"
done; done
