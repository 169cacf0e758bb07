#!/bin/bash
# C = generator with rt and bulk in one glommio queue, E = the generator's rt half in a Latency::Matters queue; same hub binary
out=/work/tmp/s21/ab6; mkdir -p $out
for r in 1 2 3; do for v in C E; do
  echo "== $v run $r"
  timeout 120 /work/tmp/s21/$v/gonets-loadgen mixed --embedded --security plain --hub-cores 1 --cores 0 --rate 2000 --duration 10 --data-dir /tmp/lgab --json $out/mixed-$v-$r.json 2>&1 | grep -E "^  (rt|bulk)" | cut -c1-20,60-150
done; done
