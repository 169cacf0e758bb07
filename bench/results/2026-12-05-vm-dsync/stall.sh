#!/bin/bash
# mixed run with the stall tracer; copy the hub log before the loadgen removes it
export GONETS_BIN=/work/tmp/s23/gonets-stall GONETS_EXP_STALL_US=${STALL_US:-1000}
rm -rf hubx hubx.log
timeout 300 /work/main/target/release/gonets-loadgen mixed --embedded --hub-cores 1 --cores 0 --rt-cores 0 --security plain --rate 2000 --duration 10 --data-dir hubx --json $1.json > $1.out 2>&1 &
pid=$!
while kill -0 $pid 2>/dev/null; do [ -f hubx.log ] && cp hubx.log $1.log; sleep 0.2; done
grep -E "^  (rt|bulk)" $1.out | cut -c1-200
grep -c EXPSTALL $1.log
