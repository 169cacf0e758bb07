#!/bin/bash
# usage: TAG=x VARIANTS="base split" ab.sh ; each variant is a dir under /work/tmp/s26 with both binaries
cd /work/tmp/s26
T=${TAG:-a}
for r in $(seq 1 ${ROUNDS:-3}); do
  for v in ${VARIANTS:-base split}; do
    B=/work/tmp/s26/$v
    rm -rf hubm; GONETS_BIN=$B/gonets $B/gonets-loadgen mixed --embedded --hub-cores 1 --cores 0 --rt-cores 0 --security plain --rate 2000 --duration 10 --data-dir hubm --json $T-$v-mixed-r$r.json 2>&1 | grep -E "^  (rt-alone|rt-with|bulk-with)" | sed -E 's/\| hub commits.*//;s/peak RSS.*//' | sed "s/^/$v r$r /" | cut -c1-200
  done
done
