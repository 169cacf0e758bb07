import sys
ts=[]
for l in open(sys.argv[1]):
    if 'probe_gonets:react' in l and 'gonets-shard' in l:
        ts.append(float(l.split()[3].rstrip(':')))
iv=sorted((b-a)*1000 for a,b in zip(ts,ts[1:]))
n=len(iv)
q=lambda p: iv[min(n-1,int(p*n))]
print(f"react calls {len(ts)} intervals ms p50 {q(.5):.2f} p90 {q(.9):.2f} p99 {q(.99):.2f} max {iv[-1]:.2f}; share of time in gaps >2ms {sum(x for x in iv if x>2)/sum(iv)*100:.0f}%")
