#!/bin/bash
# usage: mixswap.sh DIR TAG RQ [extra]: mixed with the hub on core 0 and the generator on core 1, rq_affinity=RQ during the run
D=$1; T=$2; RQ=$3; shift 3
echo $RQ > /sys/block/vda/queue/rq_affinity
taskset -c 1 $D/gonets-loadgen mixed --embedded --hub-cores 0 --cores 1 --rt-cores 1 --security plain --rate 2000 --duration 10 "$@" > mx-$T.log 2>&1
echo 1 > /sys/block/vda/queue/rq_affinity
echo "$T rq=$RQ $*: $(grep -E '^\s+(rt-alone|rt-with|bulk-with)' mx-$T.log | awk '{for(i=1;i<=NF;i++){if($i=="p50")p50=$(i+1); if($i=="p99.9")p=$(i+1); if($i=="=")r=$(i+1)}; printf "%s r %s p50 %s p99.9 %s | ", $1, r, p50, p}')"
