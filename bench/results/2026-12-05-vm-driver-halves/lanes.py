import sys,re
def load(f):
    d={}
    for l in open(f):
        if l.startswith('gonets_shard_lane'):
            name,v=l.rsplit(' ',1); d[name]=float(v)
    return d
a=load(sys.argv[1]+'-m1.txt'); b=load(sys.argv[1]+'-m2.txt')
for k in sorted(b):
    if k in a and b[k]-a[k]: print(f"{k:70} {b[k]-a[k]:12.3f}")
