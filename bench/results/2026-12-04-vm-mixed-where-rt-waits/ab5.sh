#!/bin/bash
# C = before (0d69730), D = rt connections' front ends in the rt queue
out=/work/tmp/s21/ab5; mkdir -p $out
for r in 1 2 3; do for v in C D; do
  echo "== $v run $r"
  timeout 120 /work/tmp/s21/$v/gonets-loadgen mixed --embedded --security plain --hub-cores 1 --cores 0 --rate 2000 --duration 10 --data-dir /tmp/lgab --json $out/mixed-$v-$r.json 2>&1 | grep -E "^  (rt|bulk)" | cut -c1-20,60-150
done; done
