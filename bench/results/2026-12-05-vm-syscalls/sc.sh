#!/bin/bash
# sc.sh RATE TAG -- rt at RATE for 16 s; perf stat counts the hub's system calls and switches for 6 s in the middle.
RATE=$1; TAG=$2
source "$(dirname "$0")/start.sh"
start_rt "$RATE" "$TAG" 16 9
perf stat -e 'raw_syscalls:sys_enter,context-switches,cpu-migrations,syscalls:sys_enter_io_uring_enter,syscalls:sys_enter_sendmsg,syscalls:sys_enter_sendto,syscalls:sys_enter_recvfrom,syscalls:sys_enter_recvmsg,syscalls:sys_enter_write,syscalls:sys_enter_read,syscalls:sys_enter_futex,syscalls:sys_enter_tgkill,syscalls:sys_enter_timerfd_settime,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_clock_nanosleep,syscalls:sys_enter_sched_yield' \
  -p $HUB -o ./$TAG.perf -- sleep 6
wait $LG
rm -rf ./data-$TAG
grep -E "rt  |hub CPU" ./$TAG.out | tail -1 | cut -c1-250
