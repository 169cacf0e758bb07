import sys
def h(f, pat):
    d={}
    for l in open(f):
        if l.startswith(pat) and '_bucket' in l:
            name,v=l.rsplit(' ',1); d[name]=float(v)
    return d
pre=sys.argv[1]
for pat in ('gonets_log_commit_latency_seconds_bucket{shard="0",log="messages"','gonets_kind_answer_time_seconds_bucket{kind="urn:gonets:loadgen:rt-p1:1",provider="LGP1",traffic="live"'):
    a=h(pre+'-m1.txt',pat); b=h(pre+'-m2.txt',pat)
    rows=[(k.split('le="')[1].split('"')[0], b[k]-a.get(k,0)) for k in b]
    tot=rows[-1][1]
    p50=next(le for le,c in rows if c>=tot*.5); p90=next(le for le,c in rows if c>=tot*.9)
    print(pat.split('{')[0].replace('gonets_',''), 'n',int(tot),'p50<=',p50,'p90<=',p90, ' '.join(f"{le}:{c/tot:.2f}" for le,c in rows if 0<c<tot))
