#!/bin/bash
# usage: prof.sh BINDIR RATE TAG
B=$1; R=$2; T=$3; OUT=/work/tmp/s31/$T; mkdir -p $OUT
taskset -c 0 $B/gonets-loadgen rt --embedded --hub-cores 1 --cores 0 --security plain --rate $R --warmup 1 --duration 14 > $OUT/log 2>&1 &
LG=$!
sleep 6
HUB=$(pgrep -x gonets | head -1)
TID=$(for t in /proc/$HUB/task/*; do [ "$(cat $t/comm)" = gonets-shard-0 ] && basename $t; done | paste -sd,)
echo "hub $HUB tid $TID"; perf record -F 1999 -g -t $TID -o $OUT/perf.data -- sleep 5 2> $OUT/perf.err
wait $LG
perf report -i $OUT/perf.data --children --sort symbol --percent-limit 1.5 --stdio -g none 2>/dev/null | grep -v "^#" | grep -v "^$" > $OUT/children.txt
perf report -i $OUT/perf.data --no-children --sort dso --stdio 2>/dev/null | grep -v "^#" | grep -v "^$" > $OUT/dso.txt
grep -E "p50" $OUT/log
