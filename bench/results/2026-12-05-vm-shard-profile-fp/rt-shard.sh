#!/bin/bash
# Sourced by the scripts here: rt_shard BINDIR RATE TAG DURATION_S SETTLE_S
# starts `gonets-loadgen rt --embedded` (hub on core 1, generator on core 0)
# at RATE for DURATION_S, waits SETTLE_S, and sets OUT (the run's folder
# under $S31, default /work/tmp/s31), LG (the loadgen's pid), HUB (the
# hub's pid) and TID (the shard thread's ids, comma-separated).
rt_shard() {
    local b=$1 r=$2 tag=$3 duration_s=$4 settle_s=$5
    OUT=${S31:-/work/tmp/s31}/$tag
    mkdir -p "$OUT"
    taskset -c 0 "$b/gonets-loadgen" rt --embedded --hub-cores 1 --cores 0 --security plain \
        --rate "$r" --warmup 1 --duration "$duration_s" > "$OUT/log" 2>&1 &
    LG=$!
    sleep "$settle_s"
    HUB=$(pgrep -x gonets | head -1)
    TID=$(for t in /proc/$HUB/task/*; do [ "$(cat "$t/comm")" = gonets-shard-0 ] && basename "$t"; done | paste -sd,)
}
