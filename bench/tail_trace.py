#!/usr/bin/env python3
"""Where the rt tail comes from: reads `perf script` output of a run traced
by `bench/tail-trace` (cpu-clock samples with call graphs, block-layer
request issues, scheduler switches, all CPUs) and reports every window in
which no disk request was issued for longer than --gap-ms while the hub was
under load, with what the hub's shard thread and the other tasks on the
hub's and the generator's cores were doing in it.

Why gaps in disk requests: under rt load every call writes and syncs, so a
window without any request issued is a window in which no call could
finish; the calls waiting in it make the tail.

Classes of a window (the first that fits):
  page faults      most of the shard's samples in it are in a page fault
                   ("huge-page faults" when a 2 MiB page was being zeroed)
  hub busy         the shard ran for most of the window (top frames named)
  other task       another task ran on the hub's core for most of it
  hub idle         the shard slept: it waited for the network (the
                   generator), a wake-up or a completion
"""

import argparse
import bisect
import collections
import re
import sys

HEAD = re.compile(r"^\s*(\S.*?)\s+(\d+)\s+\[(\d+)\]\s+([\d.]+):\s+(\S+?):?\s+(.*)$")


def parse(path):
    """Samples as [time, comm, cpu, event, rest, frames]."""
    samples, cur = [], None
    with open(path, errors="replace") as f:
        for line in f:
            if line.startswith("\t") or line.startswith("      "):
                if cur is not None and line.strip():
                    cur[5].append(line.strip().split(" ", 1)[-1])
                continue
            m = HEAD.match(line)
            if not m:
                continue
            comm, _tid, cpu, t, ev, rest = m.groups()
            cur = [float(t), comm, int(cpu), ev, rest, []]
            samples.append(cur)
    return samples


def top(frames, n=4):
    return " < ".join(x[:48] for x in frames[:n]) or "(no stack)"


def first_user_frame(frames):
    """The first frame that is not the kernel's (for faults: who touched)."""
    for i, fr in enumerate(frames):
        if "asm_exc_page_fault" in fr:
            return top(frames[i + 1:], 2)
    return top(frames, 2)


def classify(window, hz, hub_core, gap_s):
    shard = [s for s in window if s[3] == "cpu-clock" and s[1].startswith("gonets-shard")]
    faults = [s for s in shard if any("exc_page_fault" in x for x in s[5])]
    on_core = [s for s in window if s[3] == "cpu-clock" and s[2] == hub_core
               and not s[1].startswith(("gonets", "iou-wrk", "swapper"))]
    run_s = len(shard) / hz
    if shard and len(faults) * 2 > len(shard) and run_s > gap_s / 4:
        c = collections.Counter(first_user_frame(s[5]) for s in faults)
        huge = any(any("do_huge_pmd" in x for x in s[5]) for s in faults)
        return ("huge-page faults" if huge else "page faults"), c.most_common(2)
    if run_s > gap_s / 2:
        c = collections.Counter(top(s[5], 3) for s in shard)
        return "hub busy", c.most_common(3)
    if len(on_core) / hz > gap_s / 2:
        c = collections.Counter(s[1] for s in on_core)
        return "other task", c.most_common(3)
    c = collections.Counter(s[1] for s in window if s[3] == "cpu-clock"
                            and not s[1].startswith("swapper"))
    return "hub idle", c.most_common(4)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("perf_script")
    ap.add_argument("--gap-ms", type=float, default=5.0)
    ap.add_argument("--hz", type=float, default=1999.0)
    ap.add_argument("--hub-core", type=int, default=1)
    ap.add_argument("--shown-max", type=int, default=15)
    a = ap.parse_args()
    samples = parse(a.perf_script)
    issues = [s[0] for s in samples if s[3].startswith("block:block_rq_issue")]
    if len(issues) < 2:
        sys.exit("tail_trace: fewer than two disk requests in the trace; was the hub loaded?")
    span = issues[-1] - issues[0]
    gaps = [(b - a_, a_) for a_, b in zip(issues, issues[1:]) if b - a_ > a.gap_ms / 1000]
    shard = [s for s in samples if s[3] == "cpu-clock" and s[1].startswith("gonets-shard")]
    faults = sum(1 for s in shard if any("exc_page_fault" in x for x in s[5]))
    print(f"trace: {span:.1f} s, {len(issues)} disk requests issued, "
          f"shard on CPU {len(shard) / a.hz / span:.0%} of the time, "
          f"{faults / max(1, len(shard)):.1%} of its samples in page faults")
    print(f"windows with no disk request for more than {a.gap_ms:g} ms: {len(gaps)}")
    by_class = collections.defaultdict(lambda: [0, 0.0])
    rows = []
    samples.sort(key=lambda s: s[0])
    times = [s[0] for s in samples]
    for g, start in sorted(gaps, reverse=True):
        lo, hi = bisect.bisect_left(times, start), bisect.bisect_right(times, start + g)
        kind, what = classify(samples[lo:hi], a.hz, a.hub_core, g)
        by_class[kind][0] += 1
        by_class[kind][1] += g
        rows.append((g, start, kind, what))
    for kind, (n, total) in sorted(by_class.items(), key=lambda kv: -kv[1][1]):
        print(f"  {kind:16} {n:4} windows, {total * 1000:8.1f} ms in all")
    print(f"\nthe {min(a.shown_max, len(rows))} longest:")
    for g, start, kind, what in rows[: a.shown_max]:
        detail = "; ".join(f"{n}x {w}" for w, n in what)
        print(f"  {g * 1000:7.1f} ms at {start - issues[0]:7.3f} s  {kind:16} {detail}")


if __name__ == "__main__":
    main()
