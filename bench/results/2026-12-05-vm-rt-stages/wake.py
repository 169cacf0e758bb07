import re,sys
lat={};woken={}
for l in open(sys.argv[1]):
    m=re.search(r'\[(\d+)\]\s+([\d.]+):\s+sched:(sched_wakeup|sched_switch):\s*(.*)',l)
    if not m: continue
    cpu,t,ev,rest=m.groups(); t=float(t)
    if ev=='sched_wakeup':
        mm=re.search(r'comm=(\S+) pid=(\d+) prio=(\d+) target_cpu=(\d+)',rest)
        if mm: woken[mm.group(2)]=(t,mm.group(1),mm.group(4))
    else:
        mm=re.search(r'next_comm=(\S+) next_pid=(\d+)',rest)
        if mm and mm.group(2) in woken:
            t0,c,tc=woken.pop(mm.group(2))
            key=re.sub(r'\d+$','N',c)+'@cpu'+tc
            lat.setdefault(key,[]).append((t-t0)*1e3)
for k,v in sorted(lat.items(), key=lambda kv:-len(kv[1]))[:12]:
    v.sort(); n=len(v)
    print(f"{k:28} n={n:6} p50 {v[n//2]:.3f} p90 {v[int(n*.9)]:.3f} p99 {v[int(n*.99)]:.3f} mean {sum(v)/n:.3f} ms")
