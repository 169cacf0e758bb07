import sys,re
act={};st={};d1=[];d2=[]
for l in sys.stdin:
    m=re.search(r'\s(\d+\.\d+):\s+workqueue:(\w+): work struct (0x[0-9a-f]+).*function[= ](\w+)',l)
    if not m or m.group(4)!='iomap_dio_complete_work': continue
    t=float(m.group(1)); ev=m.group(2); w=m.group(3)
    if ev=='workqueue_activate_work': act[w]=t
    elif ev=='workqueue_execute_start' and w in act: st[w]=t; d1.append((t-act.pop(w))*1e3)
    elif ev=='workqueue_execute_end' and w in st: d2.append((t-st.pop(w))*1e3)
def q(a,p): a=sorted(a); return a[min(len(a)-1,int(p*len(a)))]
print(sys.argv[1], 'n',len(d1),'queue->start ms p50 %.3f p90 %.3f p99 %.3f max %.3f'%(q(d1,.5),q(d1,.9),q(d1,.99),max(d1)), '| run ms p50 %.3f p90 %.3f p99 %.3f max %.3f'%(q(d2,.5),q(d2,.9),q(d2,.99),max(d2)))
