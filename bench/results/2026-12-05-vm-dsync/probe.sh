#!/bin/bash
# mixed run, record the probes 18 s in (inside rt+bulk) for 2 s
unset GONETS_EXP_STALL_US
export GONETS_BIN=/work/tmp/s23/gonets-stall
rm -rf hubp
timeout 300 /work/main/target/release/gonets-loadgen mixed --embedded --hub-cores 1 --cores 0 --rt-cores 0 --security plain --rate 2000 --duration 10 --data-dir hubp --json $1.json > $1.out 2>&1 &
pid=$!
sleep ${AT:-18}
perf record -a -e probe_gonets:react -e probe_gonets:rtq -e io_uring:io_uring_complete -e io_uring:io_uring_submit_req -o $1.data -- sleep 2 > /dev/null 2>&1
perf script -i $1.data 2>/dev/null > $1.txt
wait $pid
grep -E "^  (rt|bulk)" $1.out | cut -c1-160
grep -n "rt+bulk" $1.out | head -2
