#!/usr/bin/env bash
# How these figures were made (2026-12-02, the 2-core VM, issue 14): the
# tree before the issue (1524f38) and after it, each with its own
# `bench/run --quick --no-nats` (hub on core 1, generator on core 0),
# alternating before/after three times, same hour. Then:
#   python3 compare.py before-1 before-2 before-3 after-1 after-2 after-3 > compare.md
set -euo pipefail
for i in 1 2 3; do
  (cd /work/wt/before && bash bench/run --quick --no-nats --out /tmp/bench-before-$i --data /tmp/bd-before)
  (cd /work/main && bash bench/run --quick --no-nats --out /tmp/bench-after-$i --data /tmp/bd-after)
done
