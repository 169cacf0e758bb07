#!/bin/bash
# interleaved A/B of --dsync-writes inline|worker on one build (dir w): mixed with stage scrape,
# rt 10,000/s, bulk alone; ROUNDS rounds
T=${TAG:-g}
for r in $(seq 1 ${ROUNDS:-3}); do
  for v in ${VARIANTS:-inline worker}; do
    GONETS_BIN=$PWD/w/gonets L=$PWD/w/gonets-loadgen ./scrape2.sh $T-$v-r$r rt+bulk -- mixed --embedded --hub-cores 1 --cores 0 --rt-cores 0 --security plain --rate 2000 --duration 10 --dsync-writes $v > /dev/null
    echo "== $v r$r"; grep -E "^  (rt|bulk)" s-$T-$v-r$r.log | sed -E 's/\| hub commits.*//' | cut -c1-175
    python3 stages.py s-$T-$v-r$r | grep -E "answer shard|call +hub"
    rm -rf hubr; GONETS_BIN=$PWD/w/gonets w/gonets-loadgen rt --embedded --hub-cores 1 --cores 0 --security plain --rate 10000 --duration 10 --dsync-writes $v --data-dir hubr --json $T-rt-$v-r$r.json 2>&1 | grep -E "^  rt" | sed -E 's/\| hub commits.*//' | cut -c1-175
    rm -rf hubb; GONETS_BIN=$PWD/w/gonets w/gonets-loadgen bulk --embedded --hub-cores 1 --cores 0 --security plain --messages 300000 --message-bytes 4096 --dsync-writes $v --data-dir hubb --json $T-bulk-$v-r$r.json 2>&1 | grep -E "^  bulk" | cut -c1-130
  done
done
