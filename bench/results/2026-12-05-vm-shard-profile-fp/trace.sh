#!/bin/bash
# usage: trace.sh BINDIR RATE TAG
B=$1; R=$2; T=$3; OUT=/work/tmp/s31/$T; mkdir -p $OUT
taskset -c 0 $B/gonets-loadgen rt --embedded --hub-cores 1 --cores 0 --security plain --rate $R --warmup 1 --duration 14 > $OUT/log 2>&1 &
LG=$!
sleep 6
HUB=$(pgrep -x gonets | head -1)
TID=$(for t in /proc/$HUB/task/*; do [ "$(cat $t/comm)" = gonets-shard-0 ] && basename $t; done | paste -sd,)
timeout -s INT 4 perf trace -s -t $TID -o $OUT/trace.txt 2> $OUT/trace.err
wait $LG
grep -E "p50" $OUT/log
