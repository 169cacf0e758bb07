#!/bin/bash
# usage: mallocs.sh BINDIR RATE TAG : mallocs a call on the shard thread (uprobe on libc malloc, 4 s)
source "$(dirname "$0")/rt-shard.sh"
R=$2
rt_shard "$1" "$2" "$3" 12 5
perf stat -e probe_libc:malloc,probe_libc:calloc,probe_libc:realloc -t $TID -x, -o $OUT/stat.csv -- sleep 4
wait $LG
awk -F, -v R=$R '$3 ~ /probe/ {printf "%s %.1f a call  ", $3, $1/(R*4)}' $OUT/stat.csv; echo
