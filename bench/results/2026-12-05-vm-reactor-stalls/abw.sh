#!/bin/bash
# rt 10k for 40 s: hub from coop/ (before) vs warm/ (runs mapped, not read back; merges warmed)
T=${TAG:-w}
for r in $(seq 1 ${ROUNDS:-2}); do
  for v in ${VARIANTS:-coop warm}; do
    rm -rf hubw; GONETS_BIN=/work/tmp/s25/$v/gonets /work/tmp/s25/coop/gonets-loadgen rt --embedded --hub-cores 1 --cores 0 --security plain --rate 10000 --duration ${DUR:-40} --data-dir hubw --json $T-$v-r$r.json 2>&1 | grep -E "^  rt" | sed -E 's/\| hub commits.*//;s/peak RSS.*//' | sed "s/^/$v r$r /" | cut -c1-190
  done
done
