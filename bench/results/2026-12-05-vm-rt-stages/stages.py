import sys, re
# usage: stages.py PREFIX — each series over the window between PREFIX-m1.txt and
# PREFIX-m2.txt (two /metrics scrapes): the rt stages (gonets_rt_stage_seconds) and,
# from 2026-12-06, the shard's holds (gonets_shard_hold_seconds: what held the shard
# while calls waited in its inbox). Means exact, percentiles power-of-two bucket bounds.
def load(f, family, names):
    d={}
    for l in open(f):
        if l.startswith(family+'_'):
            name,v=l.rsplit(' ',1)
            m=re.match(family+r'_(sum|count|bucket)\{(.*)\}',name)
            kind,labels=m.groups()
            lab=dict(re.findall(r'(\w+)="([^"]*)"',labels))
            key=tuple(lab[n] for n in names)+(kind,lab.get('le'))
            d[key]=d.get(key,0)+float(v)  # sum over shards
    return d
def window(a, b, series):
    n=b.get(series+('count',None),0)-a.get(series+('count',None),0)
    s=b.get(series+('sum',None),0)-a.get(series+('sum',None),0)
    w=len(series)
    bk=sorted([(float(k[w+1]) if k[w+1]!='+Inf' else 1e9, b[k]-a.get(k,0)) for k in b if k[:w+1]==series+('bucket',)])
    def pct(p):
        for le,c in bk:
            if c>=n*p: return le*1e3
    return n, s, pct
pre=sys.argv[1]
fam='gonets_rt_stage_seconds'
a=load(pre+'-m1.txt', fam, ('op','stage')); b=load(pre+'-m2.txt', fam, ('op','stage'))
for op in ('call','answer'):
    for st in ('spawn','inbox','shard','out','hub'):
        n,s,pct=window(a,b,(op,st))
        if n: print(f"{op:7}{st:6} n={int(n):6} mean={s/n*1e3:7.3f} ms  p50<={pct(.5):.3f} p90<={pct(.9):.3f} p99<={pct(.99):.3f} p999<={pct(.999):.3f}")
fam='gonets_shard_hold_seconds'
a=load(pre+'-m1.txt', fam, ('hold',)); b=load(pre+'-m2.txt', fam, ('hold',))
for hold in ('rt_turn','bulk_turn','snapshot'):
    n,s,pct=window(a,b,(hold,))
    if n: print(f"hold   {hold:9} n={int(n):6} mean={s/n*1e3:7.3f} ms  p50<={pct(.5):.3f} p99<={pct(.99):.3f} p999<={pct(.999):.3f} max<={pct(1.0):.3f}")
