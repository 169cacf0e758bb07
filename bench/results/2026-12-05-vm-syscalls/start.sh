#!/bin/bash
# Sourced by op.sh and sc.sh: start_rt RATE TAG DURATION_S SETTLE_S starts
# `./N/gonets-loadgen rt --embedded` (hub on core 1, generator on core 0)
# at RATE for DURATION_S, waits SETTLE_S, and sets LG (the loadgen's pid)
# and HUB (the hub's pid). Run from a directory holding N/ with a gonets
# and a gonets-loadgen build.
start_rt() {
    local rate=$1 tag=$2 duration_s=$3 settle_s=$4
    taskset -c 0 ./N/gonets-loadgen rt --embedded --hub-cores 1 --cores 0 --security plain \
        --rate "$rate" --duration "$duration_s" \
        --data-dir "./data-$tag" --json "./$tag.json" > "./$tag.out" 2>&1 &
    LG=$!
    sleep "$settle_s"
    HUB=$(pgrep -x gonets | head -1)
}
