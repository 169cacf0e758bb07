#!/bin/bash
# usage: mixargs.sh DIR TAG [extra loadgen args]: one mixed run, summary line
D=$1; T=$2; shift 2
taskset -c 0 $D/gonets-loadgen mixed --embedded --hub-cores 1 --cores 0 --rt-cores 0 --security plain --rate 2000 --duration 10 "$@" > mx-$T.log 2>&1
echo "$T $*: $(grep -E '^\s+(rt-alone|rt-with|bulk-with)' mx-$T.log | awk '{for(i=1;i<=NF;i++){if($i=="p50")p50=$(i+1); if($i=="p99.9")p=$(i+1); if($i=="=")r=$(i+1)}; printf "%s r %s p50 %s p99.9 %s | ", $1, r, p50, p}')"
