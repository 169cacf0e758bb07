#!/bin/bash
# usage: ab.sh ROUNDS  — rt 10k with prewrite settings interleaved
for r in $(seq 1 $1); do
for cfg in $CFGS; do
  tag=${cfg%%:*}; v=${cfg#*:}
  GONETS_PROBE_PREWRITE=$v GONETS_BIN=/work/tmp/s35/PW/gonets L=/work/tmp/s35/PW/gonets-loadgen bash /work/main/bench/results/2026-12-05-vm-rt-stages/scrape2.sh $tag-$r rt -- rt --embedded --hub-cores 1 --cores 0 --security plain --rate 10000 --duration 12 > /dev/null 2>&1
  c=$(python3 - s-$tag-$r <<'PY'
import sys,re
def g(f,k):
    for l in open(f):
        if l.startswith(k): return float(l.split()[-1])
pre=sys.argv[1]
a=pre+'-m1.txt'; b=pre+'-m2.txt'
k1='gonets_log_commit_latency_seconds_sum{shard="0",log="messages"}'
k2='gonets_log_commit_latency_seconds_count{shard="0",log="messages"}'
k3='gonets_log_written_bytes_total{shard="0",log="messages"}'
k4='gonets_log_commit_batch_bytes_sum{shard="0",log="messages"}'
n=g(b,k2)-g(a,k2); s=g(b,k1)-g(a,k1)
print(f"commit mean {s/n*1e3:.3f} ms n={int(n)} written {(g(b,k3)-g(a,k3))/1e6:.0f} MB batches {(g(b,k4)-g(a,k4))/1e6:.0f} MB")
PY
)
  l=$(grep -E "^  rt " s-$tag-$r.log | grep -o "p50.*hub CPU [0-9.]*")
  echo "$tag r$r | $l | $c"
done; done
