#!/bin/bash
# il.sh VARIANT TAG [DUR] [W] -- rt 2,000/s for DUR s; a 1 GiB attachment (dropped halfway, read back) moving
# only in every other W s window; p99 of calls issued while it moved against the others. Hub default paces.
# VARIANT: H = 4b58340, S = sends in 256 KiB slices with a pause while rt calls come.
V=$1; TAG=$2; DUR=${3:-280}; W=${4:-5}
# Run from a directory holding H/ and S/, each with a gonets and a gonets-loadgen build.
taskset -c 0 ./$V/gonets-loadgen attachment --embedded --hub-cores 1 --cores 0 --security plain \
  --rate 2000 --warmup 1 --duration $DUR --attachment-mib 1024 --attachment-interleave-s $W \
  --data-dir ./data-$TAG --json ./$TAG.json > ./$TAG.out 2>&1
rm -rf ./data-$TAG
python3 - "$TAG" <<'PY'
import json,sys
d=json.load(open(f"{sys.argv[1]}.json"))
ph={p['name']:p for p in d['phases']}
a=ph['rt-transfer-still']['latency'];b=ph['rt-transfer-moving']['latency'];t=ph['attachment-transfer']
e=ph['rt-transfer-moving']['extra']
print(sys.argv[1],"still p99",a['p99_us'],"p999",a['p999_us'],"| moving p99",b['p99_us'],"p999",b['p999_us'],"ratio p99",e.get('p99_ratio_to_still'),"p999",e.get('p999_ratio_to_still'),"within",e.get('transfer_within_rt_window'),"xfer_s",round(t['seconds'],1),"read_s",round(t['extra']['read_s'],2))
PY
