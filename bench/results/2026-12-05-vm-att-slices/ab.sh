#!/bin/bash
# ab.sh VARIANT TAG PACE DUR -- rt 2,000/s alone, then beside an attachment of
# ${MIB:-1024} MiB paced at PACE MiB/s beside rt; DUR s measured windows.
# VARIANT is a directory holding a `gonets` and a `gonets-loadgen` build:
#   D: hub reads large frames in 256 KiB slices, yield_if_needed between them
#   E: D plus a 10 us pause between slices while rt calls come (landed, f22be56)
#   F: E plus the frame's place zeroed 256 KiB at a time (tried, not landed)
#   G: f22be56 as committed (the 8 MiB/s rows)
# Tags r16i*/r16n*: hub D, uploader SCHED_IDLE / normal (EXTRA="--attachment-uploader-priority normal").
V=$1; TAG=$2; PACE=$3; DUR=${4:-6}
taskset -c 0 ./$V/gonets-loadgen attachment --embedded --hub-cores 1 --cores 0 --security plain \
  --rate 2000 --warmup 1 --duration $DUR --attachment-mib ${MIB:-1024} --attachment-beside-rt-write-mib-per-s $PACE $EXTRA \
  --data-dir ./data-$TAG --json ./$TAG.json > ./$TAG.out 2>&1
