#!/bin/bash
# A = before, C = the hub keeps freed memory (mallopt in gonets serve)
out=/work/tmp/s21/ab4; mkdir -p $out
unset GLIBC_TUNABLES
run() { # v rate r
  timeout 120 /work/tmp/s21/$1/gonets-loadgen rt --embedded --security plain --hub-cores 1 --cores 0 --rate $2 --duration 12 --data-dir /tmp/lgab --json $out/rt-$2-$1-$3.json > $out/rt-$2-$1-$3.log 2>&1 &
  sleep 4; p=$(pgrep -f "gonets serve --config /tmp/lgab.toml"); f1=$(awk '{print $10}' /proc/$p/stat)
  sleep 7; f2=$(awk '{print $10}' /proc/$p/stat); wait
  echo "$1 $2 r$3 minflt(4-11s)=$((f2-f1)) $(grep -E '^  rt' $out/rt-$2-$1-$3.log | sed 's/receipt.*//; s/.*| p50/p50/')"
}
for r in 1 2 3; do for v in A C; do for rate in 2000 10000; do run $v $rate $r; done; done; done
