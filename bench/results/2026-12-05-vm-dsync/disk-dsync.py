import os, mmap, time, statistics as S
def run(size, mode, n=400):
    fn='/work/tmp/s23/dsync.dat'
    flags=os.O_RDWR|os.O_CREAT|os.O_DIRECT|(os.O_DSYNC if mode=='odsync' else 0)
    fd=os.open(fn, flags); os.posix_fallocate(fd,0,size*n)
    os.fsync(fd)
    buf=mmap.mmap(-1,size); buf.write(b'x'*size)
    t=[]
    for i in range(n):
        a=time.perf_counter()
        if mode=='rwf': os.pwritev(fd,[buf],i*size,os.RWF_DSYNC)
        else: os.pwrite(fd,buf,i*size)
        if mode=='fdatasync': os.fdatasync(fd)
        t.append((time.perf_counter()-a)*1e6)
    os.close(fd); os.unlink(fn)
    t.sort(); return f"{mode:10s} {size//1024:4d}K p50 {t[len(t)//2]:7.0f} p99 {t[int(len(t)*.99)]:7.0f} us"
for size in (4096, 262144):
    for m in ('fdatasync','rwf','odsync'):
        print(run(size,m))
