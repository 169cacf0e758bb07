#!/bin/bash
# att2.sh TAG RTPACE [DURATION]  -- rt 2000/s beside a 1 GiB attachment; RTPACE MiB/s beside rt (0 = unpaced)
TAG=$1; PACE=$2; DUR=${3:-40}
cd "${REPO:-.}"
taskset -c 0 ./target/release/gonets-loadgen attachment --embedded --hub-cores 1 --cores 0 --security plain \
  --rate 2000 --warmup 1 --duration $DUR --attachment-mib 1024 --attachment-beside-rt-write-mib-per-s $PACE \
  --json ${OUT:-.}/$TAG.json > ${OUT:-.}/$TAG.out 2>&1
echo "rc=$?"
