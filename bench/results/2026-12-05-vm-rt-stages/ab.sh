#!/bin/bash
# interleaved A/B: mixed (with stage scrape) and bulk alone, variants in dirs
T=${TAG:-a}
for r in 1 2 3; do
  for v in "$@"; do
    GONETS_BIN=$PWD/$v/gonets L=$PWD/$v/gonets-loadgen ./scrape2.sh $T-$v-r$r rt+bulk -- mixed --embedded --hub-cores 1 --cores 0 --rt-cores 0 --security plain --rate 2000 --duration 10 > /dev/null
    echo "== $v r$r"; grep -E "^  (rt|bulk)" s-$T-$v-r$r.log | sed -E 's/\| hub commits.*//' | cut -c1-150
    python3 stages.py s-$T-$v-r$r | grep -E "answer shard|call +hub"
    if [ -n "$BULK" ]; then
      rm -rf hubb; GONETS_BIN=$PWD/$v/gonets $PWD/$v/gonets-loadgen bulk --embedded --hub-cores 1 --cores 0 --security plain --messages 300000 --message-bytes 4096 --data-dir hubb --json b-$T-$v-r$r.json 2>&1 | grep -E "^  bulk" | cut -c1-150
    fi
  done
done
