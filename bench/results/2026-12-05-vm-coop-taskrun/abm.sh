#!/bin/bash
B=/work/tmp/s25/coop
T=${TAG:-m}
for r in $(seq 1 ${ROUNDS:-3}); do
  for v in ${VARIANTS:-coop nocoop}; do
    if [ $v = nocoop ]; then export GONETS_EXP_NO_COOP=1; else unset GONETS_EXP_NO_COOP; fi
    rm -rf hubm; GONETS_BIN=$B/gonets $B/gonets-loadgen mixed --embedded --hub-cores 1 --cores 0 --rt-cores 0 --security plain --rate 2000 --duration 10 --data-dir hubm --json $T-$v-mixed-r$r.json 2>&1 | grep -E "^  (rt|bulk)" | sed -E 's/\| hub commits.*//;s/peak RSS.*//' | sed "s/^/$v r$r /" | cut -c1-190
    rm -rf hubb; GONETS_BIN=$B/gonets $B/gonets-loadgen bulk --embedded --hub-cores 1 --cores 0 --security plain --messages 300000 --message-bytes 4096 --data-dir hubb --json $T-$v-bulk-r$r.json 2>&1 | grep -E "^  bulk" | sed "s/^/$v r$r /" | cut -c1-150
  done
done
