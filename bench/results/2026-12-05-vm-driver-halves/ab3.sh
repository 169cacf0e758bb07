#!/bin/bash
# usage: TAG=x KIBS="256 128" VARIANTS="base split" ab3.sh
cd /work/tmp/s26
T=${TAG:-d}
for r in $(seq 1 ${ROUNDS:-2}); do
  for k in ${KIBS:-256 128}; do
  for v in ${VARIANTS:-base split}; do
    B=/work/tmp/s26/$v
    rm -rf hubm; GONETS_BIN=$B/gonets $B/gonets-loadgen mixed --embedded --hub-cores 1 --cores 0 --rt-cores 0 --security plain --rate 2000 --duration 10 --bulk-unwritten-kib $k --data-dir hubm --json $T-$v-$k-mixed-r$r.json 2>&1 | grep -E "^  (rt-alone|rt-with|bulk-with)" | sed -E 's/\| hub commits.*//;s/peak RSS.*//;s/ok of .* in / in /;s/over 2 s: 0 \| //' | sed "s/^/$v $k r$r /" | cut -c1-200
  done
  done
done
