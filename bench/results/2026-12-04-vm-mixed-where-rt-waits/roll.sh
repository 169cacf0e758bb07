#!/bin/bash
# segment rolls during mixed's bulk phase: /metrics before and after
for seg in 64 64; do
(timeout 60 /work/main/target/release/gonets-loadgen mixed --embedded --security plain --hub-cores 1 --cores 0 --rate 2000 --duration 10 --segment-mib $seg --data-dir /tmp/lgm > /tmp/lgm.out 2>&1 &)
sleep 12; port=$(grep operator_listen /tmp/lgm.toml | sed 's/.*:\([0-9]*\)"/\1/')
curl -s http://127.0.0.1:$port/metrics > /tmp/m1.txt; sleep 6; curl -s http://127.0.0.1:$port/metrics > /tmp/m2.txt
python3 - <<'PY'
def parse(f):
    d={}
    for l in open(f):
        if l.startswith('#') or not l.strip(): continue
        k,v=l.rsplit(' ',1)
        try: d[k]=float(v)
        except: pass
    return d
a=parse('/tmp/m1.txt'); b=parse('/tmp/m2.txt')
for log in ['messages','history']:
    pre=f'gonets_log_roll_latency_seconds'
    c=b.get(f'{pre}_count{{shard="0",log="{log}"}}',0)-a.get(f'{pre}_count{{shard="0",log="{log}"}}',0)
    s=b.get(f'{pre}_sum{{shard="0",log="{log}"}}',0)-a.get(f'{pre}_sum{{shard="0",log="{log}"}}',0)
    bk=[]
    for k in b:
        if k.startswith(pre+'_bucket') and f'log="{log}"' in k:
            le=k.split('le="')[1].split('"')[0]
            d=b[k]-a.get(k,0)
            bk.append((float('inf') if le=='+Inf' else float(le), d))
    bk.sort()
    prev=0; dist=[]
    for le,cum in bk:
        if cum>prev: dist.append(f"<= {le*1e3:.2f} ms: {int(cum-prev)}")
        prev=cum
    cc=b.get(f'gonets_log_commit_latency_seconds_count{{shard="0",log="{log}"}}',0)-a.get(f'gonets_log_commit_latency_seconds_count{{shard="0",log="{log}"}}',0)
    cs=b.get(f'gonets_log_commit_latency_seconds_sum{{shard="0",log="{log}"}}',0)-a.get(f'gonets_log_commit_latency_seconds_sum{{shard="0",log="{log}"}}',0)
    print(f"{log}: rolls in 6 s {int(c)}, mean {1e3*s/max(c,1):.1f} ms; {dist}; commits {int(cc)} mean {1e3*cs/max(cc,1):.2f} ms")
PY
sleep 8; grep -E "^  (rt|bulk)" /tmp/lgm.out | cut -c1-20,60-150
done
