#!/bin/bash
# interleaved A/B: coop (default) vs nocoop (GONETS_EXP_NO_COOP=1), same build in coop/
B=/work/tmp/s25/coop
T=${TAG:-a}
for r in $(seq 1 ${ROUNDS:-3}); do
  for v in ${VARIANTS:-coop nocoop}; do
    if [ $v = nocoop ]; then export GONETS_EXP_NO_COOP=1; else unset GONETS_EXP_NO_COOP; fi
    for rate in ${RATES:-10000 2000}; do
      rm -rf hubr; GONETS_BIN=$B/gonets $B/gonets-loadgen rt --embedded --hub-cores 1 --cores 0 --security ${SEC:-plain} --rate $rate --duration 10 --data-dir hubr --json $T-$v-$rate-r$r.json 2>&1 | grep -E "^  rt" | sed -E 's/\| hub commits.*//;s/peak RSS.*//' | sed "s/^/$v r$r /" | cut -c1-190
    done
  done
done
