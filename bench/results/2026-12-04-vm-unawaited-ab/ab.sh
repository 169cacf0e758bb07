#!/bin/bash
# interleaved A/B: unawaited delay 0 vs 5, same binary
cd /work/main
lg=./target/release/gonets-loadgen
out=/work/tmp/s20/ab; mkdir -p $out
for r in 1 2 3; do
 for rate in 2000 10000; do
  for u in 0 5; do
   echo "== round $r rate $rate u=$u"
   timeout 120 $lg rt --embedded --security plain --hub-cores 1 --cores 0 --rate $rate --duration 10 --unawaited-commit-ms $u --data-dir /tmp/lgab --json $out/rt-$rate-u$u-$r.json 2>&1 | grep -E "^  rt|idle"
  done
 done
 for u in 0 5; do
   echo "== round $r bulk batch u=$u"
   timeout 200 $lg bulk --embedded --security plain --hub-cores 1 --cores 0 --messages 100000 --message-bytes 4096 --batch 100 --window 4 --unawaited-commit-ms $u --data-dir /tmp/lgab --json $out/bulk-u$u-$r.json 2>&1 | grep -E "^  (bulk|send|drain)" | head -3
 done
done
