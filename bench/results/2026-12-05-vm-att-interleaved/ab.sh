#!/bin/bash
# ab.sh VARIANT TAG [DUR] -- rt 2,000/s alone, then beside a 1 GiB attachment at the hub's default paces.
# VARIANT: H = 4b58340, S = sends in 256 KiB slices with a pause while rt calls come.
V=$1; TAG=$2; DUR=${3:-135}
# Run from a directory holding H/ and S/, each with a gonets and a gonets-loadgen build.
taskset -c 0 ./$V/gonets-loadgen attachment --embedded --hub-cores 1 --cores 0 --security plain \
  --rate 2000 --warmup 1 --duration $DUR --attachment-mib 1024 \
  --data-dir ./data-$TAG --json ./$TAG.json > ./$TAG.out 2>&1
rm -rf ./data-$TAG
python3 - "$TAG" <<'PY'
import json,sys
d=json.load(open(f"{sys.argv[1]}.json"))
ph={p['name']:p for p in d['phases']}
a=ph['rt-alone']['latency'];b=ph['rt-with-attachment']['latency'];t=ph['attachment-transfer']
print(sys.argv[1],"alone p99",a['p99_us'],"p999",a['p999_us'],"| beside p99",b['p99_us'],"p999",b['p999_us'],"ratio",ph['rt-with-attachment']['extra'].get('p99_ratio_to_alone'),"xfer_s",round(t['seconds'],1),"read_s",round(t['extra']['read_s'],2))
PY
