#!/bin/bash
# op.sh RATE TAG -- rt at RATE for 14 s; perf records the hub's io_uring submissions and waits for 4 s in the middle.
RATE=$1; TAG=$2
# Run from a directory holding N/ with a gonets and a gonets-loadgen build.
taskset -c 0 ./N/gonets-loadgen rt --embedded --hub-cores 1 --cores 0 --security plain --rate $RATE --duration 14 \
  --data-dir ./data-$TAG --json ./$TAG.json > ./$TAG.out 2>&1 &
LG=$!
sleep 8
HUB=$(pgrep -x gonets | head -1)
perf record -q -e io_uring:io_uring_submit_req -e io_uring:io_uring_cqring_wait -e raw_syscalls:sys_enter --filter 'id == 426' -p $HUB -o ./$TAG.data -- sleep 4 2>/dev/null
wait $LG
rm -rf ./data-$TAG
perf script -i ./$TAG.data -F event,trace 2>/dev/null > ./$TAG.txt
