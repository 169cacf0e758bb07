#!/bin/bash
# usage: mixgen.sh DIR TAG SLICE_US [HUB_SLICE_US]: mixed; the generator's rt half (threads loadgen-1) given an EEVDF slice of SLICE_US (0: default); the hub's shard thread HUB_SLICE_US (0/absent: default)
D=$1; T=$2; S=$3; HS=${4:-0}
taskset -c 0 $D/gonets-loadgen mixed --embedded --hub-cores 1 --cores 0 --rt-cores 0 --security plain --rate 2000 --duration 10 > mg-$T.log 2>&1 &
LG=$!
done_tids=""
while kill -0 $LG 2>/dev/null; do
  for P in $LG $(pgrep -x gonets); do for t in /proc/$P/task/*; do tid=$(basename $t); c=$(cat $t/comm 2>/dev/null)
    if echo " $done_tids " | grep -q " $tid "; then continue; fi
    if [ "$c" = loadgen-1 ] && [ $S != 0 ]; then python3 "$(dirname "$0")/slice.py" $tid $S > /dev/null; done_tids="$done_tids $tid"; fi
    if [ "$c" = gonets-shard-0 ] && [ $HS != 0 ]; then python3 "$(dirname "$0")/slice.py" $tid $HS > /dev/null; done_tids="$done_tids $tid"; fi
  done; done
  sleep 0.2
done
wait $LG
echo "$T gen=$S hub=$HS: $(grep -E '^\s+(rt-alone|rt-with|bulk-with)' mg-$T.log | awk '{for(i=1;i<=NF;i++){if($i=="p50")p50=$(i+1); if($i=="p99.9")p=$(i+1); if($i=="=")r=$(i+1)}; printf "%s r %s p50 %s p99.9 %s | ", $1, r, p50, p}')"
