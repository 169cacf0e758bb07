#!/bin/bash
# usage: prof.sh BINDIR RATE TAG
source "$(dirname "$0")/rt-shard.sh"
R=$2
rt_shard "$1" "$2" "$3" 14 6
echo "hub $HUB tid $TID"; perf record -F 1999 -g -t $TID -o $OUT/perf.data -- sleep 5 2> $OUT/perf.err
wait $LG
perf report -i $OUT/perf.data --children --sort symbol --percent-limit 1.5 --stdio -g none 2>/dev/null | grep -v "^#" | grep -v "^$" > $OUT/children.txt
perf report -i $OUT/perf.data --no-children --sort dso --stdio 2>/dev/null | grep -v "^#" | grep -v "^$" > $OUT/dso.txt
grep -E "p50" $OUT/log
