#!/usr/bin/env python3
"""Medians of bench/rt-rows' runs beside the limits of the same run, with
issue 16's targets: `python3 bench/rt_rows.py DIR`."""

import glob
import json
import os
import statistics
import sys


def load(path):
    with open(path) as f:
        return json.load(f)


def runs(out, name):
    """The JSON of every run of `name` (name-1.json, name-2.json, ...)."""
    files = sorted(glob.glob(os.path.join(out, f"{name}-[0-9]*.json")))
    return [load(f) for f in files]


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x, unit="", digits=2):
    return "—" if x is None else f"{x:.{digits}f}{unit}"


def rt_figures(run):
    p = run["phases"][0]
    lat = p.get("latency") or {}
    return {
        "p50_ms": lat.get("p50_us", 0) / 1e3 if lat else None,
        "p999_ms": lat.get("p999_us", 0) / 1e3 if lat else None,
        "over_2s": lat.get("over_2s") if lat else None,
        "cpu_us": p["hub"]["cpu_s_per_1000"] * 1e3 if p.get("hub") else None,
        "ok_per_s": p["ok_per_s"],
        "idle_pct": (run.get("findings") or {}).get("idle_hub_cpu_cores", 0) * 100,
    }


def rt_rows(out, lines):
    plain = [rt_figures(r) for r in runs(out, "rt-plain")]
    tls = [rt_figures(r) for r in runs(out, "rt-tls")]
    for label, rs in (("plain", plain), ("TLS", tls)):
        if not rs:
            continue
        each = " / ".join(f"{fmt(r['p50_ms'])}, {fmt(r['p999_ms'], '', 1)}" for r in rs)
        lines.append(
            f"rt 10,000/s {label}: p50, p99.9 ms per run {each}; "
            f"medians p50 {fmt(median(r['p50_ms'] for r in rs))} ms, "
            f"p99.9 {fmt(median(r['p999_ms'] for r in rs), '', 1)} ms; "
            f"over 2 s {sum((r['over_2s'] or 0) for r in rs)}; "
            f"hub CPU a call {fmt(median(r['cpu_us'] for r in rs), ' µs', 1)}; "
            f"idle hub {fmt(median(r['idle_pct'] for r in rs), ' %')}"
        )
    if plain and tls:
        p50 = median(r["p50_ms"] for r in plain)
        t50 = median(r["p50_ms"] for r in tls)
        pc = median(r["cpu_us"] for r in plain)
        tc = median(r["cpu_us"] for r in tls)
        if p50 and t50 and pc and tc:
            lines.append(
                f"TLS against plain (medians): p50 {100 * (t50 / p50 - 1):+.0f} %, "
                f"CPU a call {100 * (tc / pc - 1):+.0f} % (target: within 20 %)"
            )
    return plain


def findmax_rows(out, lines):
    fm = [((r.get("findings") or {}).get("max_rate_per_s")) for r in runs(out, "findmax")]
    if fm:
        each = " / ".join(fmt(x, "", 0) for x in fm)
        lines.append(f"find-max (p99.9 <= 10 ms): {each} calls/s, median {fmt(median(fm), '', 0)} (target >= 10,000)")


def mixed_rows(out, lines):
    alone, beside, bulk_beside = [], [], []
    for r in runs(out, "mixed"):
        ph = {p["name"]: p for p in r["phases"]}
        if "rt-alone" in ph and "rt-with-bulk" in ph and "bulk-with-rt" in ph:
            alone.append(ph["rt-alone"]["latency"]["p999_us"] / 1e3)
            beside.append(ph["rt-with-bulk"]["latency"]["p999_us"] / 1e3)
            bulk_beside.append(ph["bulk-with-rt"]["ok_per_s"])
    bulk_alone = [r["phases"][0]["ok_per_s"] for r in runs(out, "bulk-alone")]
    if alone:
        lines.append(
            "mixed: rt p99.9 alone / beside bulk per run "
            + " / ".join(f"{a:.1f}, {b:.1f}" for a, b in zip(alone, beside))
            + f" ms; medians {median(alone):.1f} and {median(beside):.1f} ms, "
            f"ratio {median(beside) / median(alone):.2f} (target <= 2)"
        )
    if bulk_beside and bulk_alone:
        lines.append(
            f"bulk beside rt {' / '.join(f'{x:,.0f}' for x in bulk_beside)} msg/s, "
            f"alone {' / '.join(f'{x:,.0f}' for x in bulk_alone)}; medians keep "
            f"{100 * median(bulk_beside) / median(bulk_alone):.0f} % (target >= 80 %)"
        )


def limits_rows(out, lines, plain):
    path = os.path.join(out, "limits.json")
    if not os.path.exists(path):
        return
    lim = load(path)
    w50 = lim.get("write4k_written_fdatasync_p50_us") or lim.get("write4k_fdatasync_p50_us")
    w999 = lim.get("write4k_written_fdatasync_p999_us") or lim.get("write4k_fdatasync_p999_us")
    lines.append(
        f"limits: 4 KiB write+fdatasync (written blocks) p50 {fmt(w50, ' µs', 0)}, p99.9 {fmt(w999, ' µs', 0)}; "
        f"fallocated blocks p50 {fmt(lim.get('write4k_fdatasync_p50_us'), ' µs', 0)}; "
        f"1 KiB loopback round trip p50 {fmt(lim.get('rtt_1k_p50_us'), ' µs', 1)}"
    )
    p50 = median(r["p50_ms"] for r in plain) if plain else None
    f50 = lim.get("write4k_fdatasync_p50_us")
    if p50 and f50 and w50:
        lines.append(
            f"rt p50 against the disk: {p50 * 1e3 / f50:.1f} x one 4 KiB write+fdatasync into "
            f"fallocated blocks, {p50 * 1e3 / w50:.1f} x into written blocks (target <= 3 x)"
        )


def main():
    out = sys.argv[1]
    lines = []
    plain = rt_rows(out, lines)
    findmax_rows(out, lines)
    mixed_rows(out, lines)
    limits_rows(out, lines, plain)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
