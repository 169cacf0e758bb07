import json,glob,sys,statistics as st
# usage: summ.py GLOB...  prints per file rt alone p99.9, rt with bulk p50/p99.9, bulk/s, ratio
rows={}
for pat in sys.argv[1:]:
  for f in sorted(glob.glob(pat)):
    d=json.load(open(f)); ph={p['name']:p for p in d['phases']}
    if 'rt-with-bulk' in ph:
      a=ph['rt-alone']['latency']; w=ph['rt-with-bulk']['latency']; b=ph['bulk-with-rt']
      r=(a['p999_us']/1e3, w['p50_us']/1e3, w['p999_us']/1e3, b['ok_per_s'], w['p999_us']/a['p999_us'])
      print(f"{f:36} alone p99.9 {r[0]:6.2f} | with p50 {r[1]:6.2f} p99.9 {r[2]:6.2f} | bulk {r[3]:8.0f} | ratio {r[4]:5.2f}")
    else:
      p=d['phases'][0]; l=p['latency']
      print(f"{f:36} {p['name']} {p['ok_per_s']:8.0f}/s p50 {l['p50_us']/1e3:6.2f} p99.9 {l['p999_us']/1e3:6.2f} cpu {p['hub']['cpu_s_per_1000']}")
