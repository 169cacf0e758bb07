#!/usr/bin/env python3
"""Medians of `bench/run --quick --no-nats` runs before and after, from their
REPORT.md "Every run" tables and limits: python3 compare.py DIR..."""
import re, statistics, sys, json, os

def rows(path):
    out = {}
    lines = open(path).read().split('\n')
    i = lines.index('## Every run')
    head = [c.strip() for c in lines[i + 2].strip('|').split('|')]
    for l in lines[i + 4:]:
        if not l.startswith('|'):
            break
        cells = [c.strip() for c in l.strip('|').split('|')]
        out[(cells[0], cells[1])] = dict(zip(head, cells))
    return out

def num(s):
    m = re.match(r'([\d,\.]+)', s)
    return float(m.group(1).replace(',', '')) if m else None

def findmax(path):
    m = re.search(r'rt find-max[^|]*\| ([\d,]+) /s', open(path).read())
    return num(m.group(1)) if m else None

def recovery(path):
    m = re.search(r'([\d,]+) ms to listening', open(path).read())
    return num(m.group(1)) if m else None

def limit(d, key):
    return json.load(open(os.path.join(d, 'limits.json'))).get(key) if os.path.exists(os.path.join(d, 'limits.json')) else None

def summarize(dirs):
    per = {}
    extra = {'find-max /s': [], 'recovery to listening ms': [], 'limit: 4 KiB write+fdatasync p50 us': []}
    for d in dirs:
        r = rows(os.path.join(d, 'REPORT.md'))
        for k, v in r.items():
            for col in ('ok/s', 'p50', 'p99', 'p99.9', 'hub CPU s/1000', 'hub peak RSS'):
                per.setdefault((k, col), []).append(num(v[col]))
        extra['find-max /s'].append(findmax(os.path.join(d, 'REPORT.md')))
        extra['recovery to listening ms'].append(recovery(os.path.join(d, 'REPORT.md')))
        lim = json.load(open(os.path.join(d, 'limits.json')))
        flat = json.dumps(lim)
        m = re.search(r'"write4k_fdatasync_p50_us": ([\d\.]+)', flat)
        extra['limit: 4 KiB write+fdatasync p50 us'].append(float(m.group(1)) if m else None)
    return per, extra

before = [a for a in sys.argv[1:] if 'before' in a]
after = [a for a in sys.argv[1:] if 'after' in a]
pb, eb = summarize(before)
pa, ea = summarize(after)
med = lambda xs: statistics.median([x for x in xs if x is not None]) if any(x is not None for x in xs) else None
print(f"| run / phase | figure | before (median of {len(before)}) | after (median of {len(after)}) | before runs | after runs |")
print("|---|---|---|---|---|---|")
for key in sorted(pb):
    (run, phase), col = key
    if col not in ('ok/s', 'p50', 'p99.9', 'hub CPU s/1000', 'hub peak RSS'):
        continue
    b, a = pb[key], pa.get(key, [])
    print(f"| {run} {phase} | {col} | {med(b)} | {med(a)} | {b} | {a} |")
for k in eb:
    print(f"| — | {k} | {med(eb[k])} | {med(ea[k])} | {eb[k]} | {ea[k]} |")
