import ctypes, struct, sys, os
libc = ctypes.CDLL(None, use_errno=True)
SYS_sched_setattr, SYS_sched_getattr = 314, 315
def setslice(tid, ns):
    attr = struct.pack('IIQiIQQQII', 56, 0, 0, 0, 0, ns, 0, 0, 0, 0)
    buf = ctypes.create_string_buffer(attr, 56)
    r = libc.syscall(SYS_sched_setattr, tid, buf, 0)
    if r != 0: print('setattr', tid, os.strerror(ctypes.get_errno())); return
    out = ctypes.create_string_buffer(56)
    libc.syscall(SYS_sched_getattr, tid, out, 56, 0)
    f = struct.unpack('IIQiIQQQII', out.raw)
    print('tid', tid, 'policy', f[1], 'nice', f[3], 'runtime(slice) ns', f[5])
ns = int(sys.argv[1])
for t in sys.argv[2:]: setslice(int(t), ns)
