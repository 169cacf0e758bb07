#!/usr/bin/env python3
"""Report of bench/commit-trace: where a group commit's time goes.

Reads `perf script` output of io_uring:io_uring_submit_req,
io_uring:io_uring_complete, block:block_rq_issue and block:block_rq_complete
events, and the hub's /metrics before and after the recorded window. Prints:

- the kernel's part: for the shard threads' WRITE, WRITE_FIXED and FSYNC
  requests (not glommio's timer eventfd writes), the time from io_uring's
  submission to its completion;
- the device's part: block requests by kind (FF is a cache flush, WS a
  synchronous write, WSM a journal write), issue to completion;
- the hub's part: from a write's completion to the next fdatasync the shard
  submits, and from an fdatasync's completion to the next write it submits
  (the shard thread's ring carries every log's writes, the prewriter's
  zeros included, so these are the gaps on that ring, not of one log);
- the hub's own commit latency (write to fdatasync's return) over the window;
- each lane's share of the shard executor's time over the window, its runs
  and its mean run (gonets_shard_lane_*).

Usage: commit_trace.py PERF_SCRIPT METRICS_BEFORE METRICS_AFTER
"""
import collections
import re
import sys

EVENT = re.compile(r"\s*(.+?)\s+(\d+)\s+\[(\d+)\]\s+([\d.]+):\s+(\S+):\s+(.*)")
REQ = re.compile(r"req(?:uest)? (0x[0-9a-f]+)")
OPCODE = re.compile(r"opcode (\w+)")
FLAGS = re.compile(r"flags (0x[0-9a-f]+)")
RING = re.compile(r"ring (0x[0-9a-f]+)")
# IOSQE_IO_LINK: glommio links its throughput timer's TIMEOUT to an eventfd
# WRITE, which completes when the timer fires; that WRITE is no disk write.
IO_LINK = 0x4
BLOCK = re.compile(r"\S+ (\S+) (?:\d+ )?\(\) (\d+) \+ (\d+)")
BUCKET = re.compile(r'(\w+)_bucket\{(.*),le="([^"]+)"\} (\S+)')
SUM_COUNT = re.compile(r"(\w+)_(sum|count)\{(.*)\} (\S+)")
LANE = re.compile(r'gonets_shard_lane_(busy_seconds|runs)_total\{shard="(\d+)",lane="(\w+)"\} (\S+)')
DISK_OPS = ("WRITE", "WRITE_FIXED", "FSYNC")


def quantiles(values):
    """p50, p90, p99, max and mean of `values` (ms), as one line."""
    v = sorted(values)
    n = len(v)
    if n == 0:
        return "none"
    at = lambda q: v[min(n - 1, int(n * q))]
    return "n %d, p50 %.3f, p90 %.3f, p99 %.3f, max %.3f, mean %.3f ms" % (
        n, at(0.5), at(0.9), at(0.99), v[-1], sum(v) / n)


def read_events(path):
    """Every io_uring and block event as (time s, comm, event, rest)."""
    events = []
    with open(path, errors="replace") as f:
        for line in f:
            m = EVENT.match(line)
            if m:
                comm, _tid, _cpu, t, event, rest = m.groups()
                events.append((float(t), comm, event, rest))
    events.sort(key=lambda e: e[0])
    return events


def io_uring_part(events):
    """Kernel time per opcode, and the shard's gaps between its disk ops."""
    submitted, kernel, timeline = {}, collections.defaultdict(list), []
    linked_after = {}
    for t, comm, event, rest in events:
        req = REQ.search(rest)
        if not req:
            continue
        req = req.group(1)
        if event == "io_uring:io_uring_submit_req" and comm.startswith("gonets-shard"):
            op, flags, ring = OPCODE.search(rest), FLAGS.search(rest), RING.search(rest)
            if not (op and flags and ring):
                continue
            op, ring = op.group(1), ring.group(1)
            timer_write = linked_after.get(ring, False)
            linked_after[ring] = op == "TIMEOUT" and int(flags.group(1), 16) & IO_LINK != 0
            if op in DISK_OPS and not timer_write:
                submitted[req] = (t, op)
                timeline.append((t, "submit", op))
        elif event == "io_uring:io_uring_complete" and req in submitted:
            t0, op = submitted.pop(req)
            kernel[op].append((t - t0) * 1e3)
            timeline.append((t, "done", op))
    gaps = collections.defaultdict(list)
    last_done = {}
    for t, what, op in timeline:
        writes = op in ("WRITE", "WRITE_FIXED")
        if what == "done":
            last_done["write" if writes else "sync"] = t
        elif op == "FSYNC" and "write" in last_done:
            gaps["a write's completion to the next fdatasync submitted"].append(
                (t - last_done["write"]) * 1e3)
        elif writes and "sync" in last_done:
            gaps["an fdatasync's completion to the next write submitted"].append(
                (t - last_done["sync"]) * 1e3)
    return kernel, gaps


def block_part(events):
    """Device time per block request kind (rwbs)."""
    issued, device = {}, collections.defaultdict(list)
    flushes = []
    for t, _comm, event, rest in events:
        m = BLOCK.match(rest)
        if not m:
            continue
        rwbs, sector, sectors = m.groups()
        if rwbs.startswith("FF"):
            # A flush carries no sector: issue and completion pair in order.
            if event == "block:block_rq_issue":
                flushes.append(t)
            elif flushes:
                device["FF"].append((t - flushes.pop(0)) * 1e3)
            continue
        key = (rwbs, sector, sectors)
        if event == "block:block_rq_issue":
            issued[key] = t
        elif key in issued:
            device[rwbs].append((t - issued.pop(key)) * 1e3)
    return device


def read_metrics(path):
    buckets, sums = collections.defaultdict(dict), {}
    with open(path) as f:
        for line in f:
            m = BUCKET.match(line)
            if m:
                le = float("inf") if m.group(3) == "+Inf" else float(m.group(3))
                buckets[(m.group(1), m.group(2))][le] = float(m.group(4))
                continue
            m = SUM_COUNT.match(line)
            if m:
                sums[(m.group(1), m.group(3), m.group(2))] = float(m.group(4))
    return buckets, sums


def commit_latency(before, after):
    """The hub's commit-latency histogram over the window, per log."""
    (b0, s0), (b1, s1) = read_metrics(before), read_metrics(after)
    lines = []
    for (name, labels), counts in sorted(b1.items()):
        if name != "gonets_log_commit_latency_seconds":
            continue
        les = sorted(counts)
        n = counts[les[-1]] - b0.get((name, labels), {}).get(les[-1], 0)
        if n <= 0:
            continue
        total = s1.get((name, labels, "sum"), 0) - s0.get((name, labels, "sum"), 0)
        bounds = []
        for q in (0.5, 0.9, 0.99):
            for le in les:
                if counts[le] - b0.get((name, labels), {}).get(le, 0) >= q * n:
                    bounds.append("p%g <= %.3g ms" % (q * 100, le * 1e3))
                    break
        lines.append("  %s: %d commits, mean %.2f ms, %s" % (
            labels, n, total / n * 1e3, ", ".join(bounds)))
    return lines


def lane_usage(before, after):
    """Each shard's lanes over the window: busy share, runs, mean run."""
    def load(path):
        figures = {}
        with open(path) as f:
            for line in f:
                m = LANE.match(line)
                if m:
                    what, shard, lane, value = m.groups()
                    figures[(shard, lane, what)] = float(value)
        return figures
    b0, b1 = load(before), load(after)
    lines = []
    for shard in sorted({k[0] for k in b1}):
        lanes = sorted({k[1] for k in b1 if k[0] == shard})
        busy = {l: b1.get((shard, l, "busy_seconds"), 0) - b0.get((shard, l, "busy_seconds"), 0)
                for l in lanes}
        total = sum(busy.values()) or 1.0
        for lane in lanes:
            runs = b1.get((shard, lane, "runs"), 0) - b0.get((shard, lane, "runs"), 0)
            lines.append("  shard %s %-10s busy %.3f s (%2.0f %%), runs %d, mean run %.3f ms" % (
                shard, lane, busy[lane], busy[lane] / total * 100, runs,
                busy[lane] / max(runs, 1) * 1e3))
    return lines


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    events = read_events(sys.argv[1])
    if not events:
        sys.exit("commit_trace: no events in %s (was perf recording?)" % sys.argv[1])
    kernel, gaps = io_uring_part(events)
    print("\nThe kernel's part (io_uring submission to completion, the shard threads' requests):")
    for op in DISK_OPS:
        print("  %-11s %s" % (op, quantiles(kernel.get(op, []))))
    print("The device's part (block request issue to completion, by kind):")
    for rwbs, values in sorted(block_part(events).items(), key=lambda kv: -len(kv[1]))[:6]:
        print("  %-11s %s" % (rwbs, quantiles(values)))
    print("The hub's part (on the shard's ring):")
    for what, values in gaps.items():
        print("  %s: %s" % (what, quantiles(values)))
    print("The hub's commit latency over the window (write to fdatasync's return):")
    for line in commit_latency(sys.argv[2], sys.argv[3]) or ["  none read"]:
        print(line)
    print("The shard executor's lanes over the window:")
    for line in lane_usage(sys.argv[2], sys.argv[3]) or ["  none read"]:
        print(line)


if __name__ == "__main__":
    main()
