import sys, re
def load(f):
    d={}
    for l in open(f):
        if l.startswith('gonets_rt_stage_seconds_'):
            name,v=l.rsplit(' ',1)
            m=re.match(r'gonets_rt_stage_seconds_(sum|count|bucket)\{(.*)\}',name)
            kind,labels=m.groups()
            lab=dict(re.findall(r'(\w+)="([^"]*)"',labels))
            key=(lab['op'],lab['stage'],kind,lab.get('le'))
            d[key]=d.get(key,0)+float(v)  # sum over shards
    return d
pre=sys.argv[1]
a=load(pre+'-m1.txt'); b=load(pre+'-m2.txt')
for op in ('call','answer'):
    for st in ('spawn','inbox','shard','out','hub'):
        n=b.get((op,st,'count',None),0)-a.get((op,st,'count',None),0)
        s=b.get((op,st,'sum',None),0)-a.get((op,st,'sum',None),0)
        bk=sorted([(float(k[3]) if k[3]!='+Inf' else 1e9, b[k]-a.get(k,0)) for k in b if k[:3]==(op,st,'bucket')])
        def pct(p):
            for le,c in bk:
                if c>=n*p: return le*1e3
        if n: print(f"{op:7}{st:6} n={int(n):6} mean={s/n*1e3:7.3f} ms  p50<={pct(.5):.3f} p90<={pct(.9):.3f} p99<={pct(.99):.3f} p999<={pct(.999):.3f}")
# The shard's holds (gonets_shard_hold_seconds, from 2026-12-06): what held
# the shard while calls waited in its inbox.
def load_holds(f):
    d={}
    for l in open(f):
        if l.startswith('gonets_shard_hold_seconds_'):
            name,v=l.rsplit(' ',1)
            m=re.match(r'gonets_shard_hold_seconds_(sum|count|bucket)\{(.*)\}',name)
            kind,labels=m.groups()
            lab=dict(re.findall(r'(\w+)="([^"]*)"',labels))
            key=(lab['hold'],kind,lab.get('le'))
            d[key]=d.get(key,0)+float(v)
    return d
ha=load_holds(pre+'-m1.txt'); hb=load_holds(pre+'-m2.txt')
for hold in ('rt_turn','bulk_turn','snapshot'):
    n=hb.get((hold,'count',None),0)-ha.get((hold,'count',None),0)
    s=hb.get((hold,'sum',None),0)-ha.get((hold,'sum',None),0)
    bk=sorted([(float(k[2]) if k[2]!='+Inf' else 1e9, hb[k]-ha.get(k,0)) for k in hb if k[:2]==(hold,'bucket')])
    def pct(p):
        for le,c in bk:
            if c>=n*p: return le*1e3
    if n: print(f"hold   {hold:9} n={int(n):6} mean={s/n*1e3:7.3f} ms  p50<={pct(.5):.3f} p99<={pct(.99):.3f} p999<={pct(.999):.3f} max<={pct(1.0):.3f}")
