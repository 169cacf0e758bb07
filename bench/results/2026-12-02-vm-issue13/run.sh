#!/usr/bin/env bash
# Same-hour comparison of the hub before (4f6b2cd) and after issue 13, driven by the same loadgen.
set -u
lg=/work/main/target/release/gonets-loadgen
out=/tmp/cmp
common=(--embedded --hub-cores 1 --cores 0 --security plain)
for r in 1 2 3; do
  for v in old new; do
    if [ $v = old ]; then bin=/tmp/oldtarget/release/gonets; else bin=/work/main/target/release/gonets; fi
    rm -rf /tmp/cmp/data-$v
    GONETS_BIN=$bin $lg rt "${common[@]}" --data-dir /tmp/cmp/data-$v --rate 10000 --duration 20 --json $out/rt-$v-$r.json > $out/rt-$v-$r.log 2>&1
    rm -rf /tmp/cmp/data-$v
    GONETS_BIN=$bin $lg bulk "${common[@]}" --data-dir /tmp/cmp/data-$v --messages 100000 --message-bytes 4096 --json $out/bulk-$v-$r.json > $out/bulk-$v-$r.log 2>&1
    rm -rf /tmp/cmp/data-$v
  done
done
echo finished
