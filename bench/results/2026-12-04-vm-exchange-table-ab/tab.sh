#!/bin/bash
# A = Box<Exchange> (b242f24), B = ExchangeTable pages (9975896); same settings
out=/work/tmp/s20/tab; mkdir -p $out
for r in 1 2 3; do
 for v in A B; do
  for rate in 10000 2000; do
   echo "== round $r $v rate $rate"
   timeout 120 /work/tmp/s20/$v/gonets-loadgen rt --embedded --security plain --hub-cores 1 --cores 0 --rate $rate --duration 10 --data-dir /tmp/lgtab --json $out/rt-$rate-$v-$r.json 2>&1 | grep -E "^  rt" | sed 's/receipt.*//'
  done
 done
done
