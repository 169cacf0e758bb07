#!/bin/bash
# op.sh RATE TAG -- rt at RATE for 14 s; perf records the hub's io_uring submissions and waits for 4 s in the middle.
RATE=$1; TAG=$2
source "$(dirname "$0")/start.sh"
start_rt "$RATE" "$TAG" 14 8
perf record -q -e io_uring:io_uring_submit_req -e io_uring:io_uring_cqring_wait -e raw_syscalls:sys_enter --filter 'id == 426' -p $HUB -o ./$TAG.data -- sleep 4 2>/dev/null
wait $LG
rm -rf ./data-$TAG
perf script -i ./$TAG.data -F event,trace 2>/dev/null > ./$TAG.txt
