#!/bin/bash
B=/work/tmp/s25/turn
T=${TAG:-u}
for r in $(seq 1 ${ROUNDS:-3}); do
  for v in ${VARIANTS:-base cut}; do
    if [ $v = cut ]; then export GONETS_EXP_TURN_PREEMPT=1; else unset GONETS_EXP_TURN_PREEMPT; fi
    rm -rf hubm; GONETS_BIN=$B/gonets $B/gonets-loadgen mixed --embedded --hub-cores 1 --cores 0 --rt-cores 0 --security plain --rate 2000 --duration 10 --data-dir hubm --json $T-$v-mixed-r$r.json 2>&1 | grep -E "^  (rt-with|bulk-with)" | sed -E 's/\| hub commits.*//;s/peak RSS.*//' | sed "s/^/$v r$r /" | cut -c1-190
  done
done
