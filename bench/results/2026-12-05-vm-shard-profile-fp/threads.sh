#!/bin/bash
# usage: threads.sh BINDIR RATE TAG [extra loadgen args]
B=$1; R=$2; T=$3; shift 3
OUT=/work/tmp/s31/$T; mkdir -p $OUT
taskset -c 0 $B/gonets-loadgen rt --embedded --hub-cores 1 --cores 0 --security plain --rate $R --warmup 1 --duration 16 "$@" --json $OUT/run.json > $OUT/log 2>&1 &
LG=$!
sleep 6
HUB=$(pgrep -x gonets | head -1)
snap() { for t in /proc/$HUB/task/*; do echo "$(basename $t) $(cat $t/comm | tr ' ' _) $(awk '{print $14, $15}' $t/stat 2>/dev/null)"; done; }
P0=$(awk '{print $14+$15}' /proc/$HUB/stat); snap > $OUT/a; sleep 6; snap > $OUT/b; P1=$(awk '{print $14+$15}' /proc/$HUB/stat)
echo "process total: $(( (P1-P0)*10000/(R*6) )) us/call"
wait $LG
join <(sort $OUT/a) <(sort $OUT/b) | awk -v R=$R '{d=($6-$3)+($7-$4); if (d>0) {n[$2]+=d; u[$2]+=$6-$3; s[$2]+=$7-$4}} END {for (k in n) printf "%-20s %6.1f us/call (user %5.1f sys %5.1f)\n", k, n[k]*10000/(R*6), u[k]*10000/(R*6), s[k]*10000/(R*6)}' | sort -k2 -nr
grep -E "p50|p99.9|cpu" $OUT/log | head -8
