#!/bin/bash
# usage: sched.sh TAG nice|slice VALUE : mixed run; once the hub runs, its shard threads get
# `renice -n VALUE` (nice) or a custom EEVDF slice of VALUE ns (slice, slice.py); stage scrape.
# (ab-nice.log ran it as `nice.sh TAG N`, ab-slice.log as `slice.sh TAG NS`: the same script
# before the two were one.)
tag=$1; mode=$2; n=$3
export GONETS_BIN=/work/main/target/release/gonets
L=/work/main/target/release/gonets-loadgen
rm -rf hubs hubs.toml
$L mixed --embedded --hub-cores 1 --cores 0 --rt-cores 0 --security plain --rate 2000 --duration 10 --data-dir hubs --json s-$tag.json > s-$tag.log 2>&1 &
pid=$!
until grep -Fq "[rt-alone   1.0s]" s-$tag.log 2>/dev/null; do sleep 0.1; done
for t in $(ps -eLo tid,comm | awk '$2 ~ /gonets-shard/ {print $1}'); do
  case $mode in
    nice) renice -n $n -p $t >/dev/null ;;
    slice) python3 slice.py $n $t >/dev/null ;;
    *) echo "sched.sh: mode nice or slice" >&2; exit 2 ;;
  esac
done
op=$(grep operator_listen hubs.toml | cut -d'"' -f2)
until grep -Fq "[rt+bulk   3.0s]" s-$tag.log 2>/dev/null; do sleep 0.1; done; curl -s http://$op/metrics > s-$tag-m1.txt
until grep -Fq "[rt+bulk   9.0s]" s-$tag.log 2>/dev/null; do sleep 0.1; done; curl -s http://$op/metrics > s-$tag-m2.txt
wait $pid
grep -E "^  (rt|bulk)" s-$tag.log | sed -E 's/\| hub commits.*//' | cut -c1-160
python3 stages.py s-$tag | grep -E "answer shard|call +hub"
python3 ../s23/hist.py s-$tag | head -1 | cut -c1-120
