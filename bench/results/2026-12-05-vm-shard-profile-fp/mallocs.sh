#!/bin/bash
# usage: mallocs.sh BINDIR RATE TAG : mallocs a call on the shard thread (uprobe on libc malloc, 4 s)
B=$1; R=$2; T=$3; OUT=/work/tmp/s31/$T; mkdir -p $OUT
taskset -c 0 $B/gonets-loadgen rt --embedded --hub-cores 1 --cores 0 --security plain --rate $R --warmup 1 --duration 12 > $OUT/log 2>&1 &
LG=$!
sleep 5
HUB=$(pgrep -x gonets | head -1)
TID=$(for t in /proc/$HUB/task/*; do [ "$(cat $t/comm)" = gonets-shard-0 ] && basename $t; done | paste -sd,)
perf stat -e probe_libc:malloc,probe_libc:calloc,probe_libc:realloc -t $TID -x, -o $OUT/stat.csv -- sleep 4
wait $LG
awk -F, -v R=$R '$3 ~ /probe/ {printf "%s %.1f a call  ", $3, $1/(R*4)}' $OUT/stat.csv; echo
