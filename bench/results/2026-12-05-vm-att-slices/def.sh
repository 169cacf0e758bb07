#!/bin/bash
# def.sh TAG DUR -- rt 2,000/s alone, then beside a 1 GiB attachment at the hub's default paces
TAG=$1; DUR=${2:-135}
taskset -c 0 ./target/release/gonets-loadgen attachment --embedded --hub-cores 1 --cores 0 --security plain \
  --rate 2000 --warmup 1 --duration $DUR --attachment-mib 1024 \
  --data-dir ./data-$TAG --json ./$TAG.json > ./$TAG.out 2>&1
python3 - "$TAG" <<'PY'
import json,sys
d=json.load(open(f"{sys.argv[1]}.json"))
ph={p['name']:p for p in d['phases']}
a=ph['rt-alone']['latency'];b=ph['rt-with-attachment']['latency'];t=ph['attachment-transfer']
print(sys.argv[1],"alone p99",a['p99_us'],"p999",a['p999_us'],"| beside p99",b['p99_us'],"p999",b['p999_us'],ph['rt-with-attachment']['extra'],"xfer_s",round(t['seconds'],1),t['extra'].get('upload_mib_per_s'))
PY
