import re,sys
t=open(sys.argv[1]).read()
for blk in t.split('EXPSTALL ')[1:]:
    over=re.search(r'over-budget: ([0-9.]+[mµ]?s)',blk).group(1)
    names=re.findall(r'^\s+(?:\d+:\s+0x[0-9a-f]+ - )?([A-Za-z_<][^\n]*?)(?:::h[0-9a-f]{16})?$',blk,re.M)
    keep=[]
    for n in names:
        if n.startswith('at '): continue
        if any(x in n for x in ('backtrace','stall','signal_hook','glommio::executor','core::ptr','core::pin','std::','scoped_tls','glommio::task','alloc::','futures_lite','{{vtable','unknown')): continue
        n=n.replace('{{closure}}','').replace('gonets_engine::','').replace('gonets_storage::','st::')
        keep.append(n[-60:])
    print(f"{over:>12}  "+' < '.join(keep[:int(sys.argv[2]) if len(sys.argv)>2 else 7]))
