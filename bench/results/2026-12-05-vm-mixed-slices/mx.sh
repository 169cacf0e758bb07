#!/bin/bash
# mx.sh VARIANT TAG -- mixed: rt 2,000/s alone, then beside bulk flat out (10 s each).
# VARIANT: P = 6986479 (before sliced reads and sends), N = HEAD's hub (sliced reads and sends, 10 us pauses while rt calls come).
V=$1; TAG=$2
# Run from a directory holding P/ and N/, each with a gonets and a gonets-loadgen build.
taskset -c 0 ./$V/gonets-loadgen mixed --embedded --hub-cores 1 --cores 0 --rt-cores 0 --security plain \
  --rate 2000 --duration 10 --data-dir ./data-$TAG --json ./$TAG.json > ./$TAG.out 2>&1
rm -rf ./data-$TAG
python3 - "$TAG" <<'PY'
import json,sys
d=json.load(open(f"{sys.argv[1]}.json"))
ph={p['name']:p for p in d['phases']}
a=ph['rt-alone']['latency'];b=ph['rt-with-bulk']['latency']
bw=ph.get('bulk-with-rt',{})
print(sys.argv[1],"alone p999",a['p999_us'],"| beside p50",b['p50_us'],"p999",b['p999_us'],"| bulk beside rt",round(bw.get('ok_per_s',0)))
PY
