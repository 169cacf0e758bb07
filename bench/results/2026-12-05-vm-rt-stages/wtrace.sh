#!/bin/bash
n=$1
export GONETS_BIN=/work/main/target/release/gonets
rm -rf hubs hubs.toml; /work/main/target/release/gonets-loadgen mixed --embedded --hub-cores 1 --cores 0 --rt-cores 0 --security plain --rate 2000 --duration 8 --data-dir hubs > q.log 2>&1 &
until grep -Fq "[rt-alone   1.0s]" q.log 2>/dev/null; do sleep 0.1; done
for t in $(ps -eLo tid,comm | awk '$2 ~ /gonets-shard/ {print $1}'); do renice -n $n -p $t >/dev/null; ps -o tid,ni,comm -p $t -L | grep $t; done
until grep -Fq "[rt+bulk   2.0s]" q.log 2>/dev/null; do sleep 0.1; done; perf record -q -a -e sched:sched_wakeup -e sched:sched_switch -o /dev/shm/sw.data -- sleep 1 >/dev/null 2>&1; wait; perf script -i /dev/shm/sw.data -F comm,tid,cpu,time,event,trace 2>/dev/null > sw-$n.txt; python3 wake.py sw-$n.txt | head -3
