#!/bin/bash
(timeout 60 /work/tmp/s21/C/gonets-loadgen mixed --embedded --security plain --hub-cores 1 --cores 0 --rate 2000 --duration 10 --data-dir /tmp/lgm > /tmp/lgm.out 2>&1 &)
sleep 3; port=$(grep operator_listen /tmp/lgm.toml | sed 's/.*:\([0-9]*\)"/\1/')
curl -s http://127.0.0.1:$port/metrics > /tmp/a0.txt; sleep 8; curl -s http://127.0.0.1:$port/metrics > /tmp/a1.txt
sleep 4; curl -s http://127.0.0.1:$port/metrics > /tmp/a2.txt; sleep 7; curl -s http://127.0.0.1:$port/metrics > /tmp/a3.txt
python3 - <<'PY'
def parse(f):
    d={}
    for l in open(f):
        if l.startswith('#') or not l.strip(): continue
        k,v=l.rsplit(' ',1)
        try: d[k]=float(v)
        except: pass
    return d
m=[parse(f'/tmp/a{i}.txt') for i in range(4)]
for (x,y,label) in [(0,1,'alone'),(2,3,'beside bulk')]:
    a,b=m[x],m[y]
    rows={}
    for k in b:
        if k.startswith('gonets_kind_answer_time_seconds_bucket'):
            kind=k.split('kind="')[1].split('"')[0]
            le=k.split('le="')[1].split('"')[0]
            rows.setdefault(kind,[]).append((float('inf') if le=='+Inf' else float(le), b[k]-a.get(k,0)))
    for kind,bk in rows.items():
        bk.sort(); tot=bk[-1][1]
        if tot<100: continue
        def q(p):
            for le,c in bk:
                if c>=p*tot: return le*1e3
        print(f"{label}: kind {kind}: {int(tot)} answers; hub-side answer time p50 <= {q(0.5):.0f} ms, p99 <= {q(0.99):.0f} ms, p99.9 <= {q(0.999):.0f} ms")
PY
sleep 6; grep -E "^  (rt|bulk)" /tmp/lgm.out | cut -c1-20,60-150
