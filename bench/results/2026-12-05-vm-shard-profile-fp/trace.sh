#!/bin/bash
# usage: trace.sh BINDIR RATE TAG
source "$(dirname "$0")/rt-shard.sh"
R=$2
rt_shard "$1" "$2" "$3" 14 6
timeout -s INT 4 perf trace -s -t $TID -o $OUT/trace.txt 2> $OUT/trace.err
wait $LG
grep -E "p50" $OUT/log
