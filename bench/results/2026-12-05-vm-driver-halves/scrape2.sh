#!/bin/bash
# usage: scrape2.sh TAG PHASE -- loadgen args...   scrapes /metrics at PHASE 3.0s and 9.0s
export GONETS_BIN=${GONETS_BIN:-/work/main/target/release/gonets}
L=${L:-/work/main/target/release/gonets-loadgen}
tag=$1; phase=$2; shift 3
rm -rf hubs hubs.toml
$L "$@" --data-dir hubs --json s-$tag.json > s-$tag.log 2>&1 &
pid=$!
op=""
for t in 3.0 9.0; do
  for i in $(seq 1 900); do
    [ -z "$op" ] && [ -f hubs.toml ] && op=$(grep operator_listen hubs.toml | cut -d'"' -f2)
    if grep -Fq "[$phase   ${t}s]" s-$tag.log 2>/dev/null || grep -Fq "[$phase    ${t}s]" s-$tag.log 2>/dev/null; then curl -s http://$op/metrics > s-$tag-m$([ $t = 3.0 ] && echo 1 || echo 2).txt; break; fi
    sleep 0.1
  done
done
wait $pid
grep -E "^  (rt|bulk)" s-$tag.log | cut -c1-200
