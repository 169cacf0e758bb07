import ctypes, sys, os
# usage: slice.py TID SLICE_US: gives thread TID an EEVDF slice (sched_setattr, SCHED_OTHER, sched_runtime; NICE env sets its nice)

class attr(ctypes.Structure):
    _fields_=[('size',ctypes.c_uint32),('policy',ctypes.c_uint32),('flags',ctypes.c_uint64),('nice',ctypes.c_int32),('prio',ctypes.c_uint32),('runtime',ctypes.c_uint64),('deadline',ctypes.c_uint64),('period',ctypes.c_uint64),('util_min',ctypes.c_uint32),('util_max',ctypes.c_uint32)]
libc=ctypes.CDLL(None,use_errno=True)
a=attr(); a.size=ctypes.sizeof(attr); a.policy=0; a.nice=int(os.environ.get('NICE','0')); a.runtime=int(sys.argv[2])*1000
r=libc.syscall(314, int(sys.argv[1]), ctypes.byref(a), 0)
if r!=0: print('sched_setattr failed', ctypes.get_errno()); sys.exit(1)
b=attr(); r=libc.syscall(315, int(sys.argv[1]), ctypes.byref(b), ctypes.sizeof(attr), 0)
print('tid',sys.argv[1],'policy',b.policy,'runtime_us',b.runtime//1000,'nice',b.nice)
