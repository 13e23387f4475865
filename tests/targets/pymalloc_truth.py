# Ground truth for the pymalloc plugin (tests/check_pymalloc.c). Builds a known heap, then prints
# CPython's own figures: sys._debugmallocstats() (its C fprintf to fd 2, pointed at stdout here)
# and sys.getallocatedblocks(), then "ready", and blocks in FileIO.readinto on a preallocated
# buffer, which allocates nothing (os.read would allocate its result first: one block off), bound
# before the figures (a method lookup after them can free a block: see below).
#   usage: python pymalloc_truth.py MODE [N] [M]
#   MODE basic     strings, tuples and ints, then every other one deleted
#        census    N instances of Small (managed dict), M of Slotted (__slots__), L of Big (> 512 B)
#        threads   4 threads allocate, then idle blocked on a lock
#        subinterp (3.12+) an isolated subinterpreter builds its own heap
#        fork      the basic heap, then a fork: the child (its arenas copy-on-write shared with the
#                  parent) prints "child_pid", its figures and "ready"; the parent waits for it
#        corrupt-loop / corrupt-header / corrupt-out   damage a pool after the truth
import gc
import os
import sys

gc.disable()
mode = sys.argv[1]
N = int(sys.argv[2]) if len(sys.argv) > 2 else 0
M = int(sys.argv[3]) if len(sys.argv) > 3 else 0
L = int(sys.argv[4]) if len(sys.argv) > 4 else 0
out = os.write
keep = []
n = None  # every global exists before the figures: a new name could resize the module dict


class Small:
    def __init__(self, i):
        self.i = i


class Big:  # 70 slots: 592 bytes with its GC head, above pymalloc's 512: a glibc chunk
    __slots__ = tuple("s%d" % i for i in range(70))


class Slotted:
    __slots__ = ("a", "b", "c")

    def __init__(self, i):
        self.a = i
        self.b = None
        self.c = None


if mode in ("basic", "fork"):
    strs = ["s%07d" % i for i in range(200000)]
    tups = [(i, i + 1) for i in range(50000)]
    keep = strs[::2] + tups[::3]
    del strs, tups
elif mode == "census":
    keep = [Small(i) for i in range(N)] + [Slotted(i) for i in range(M)] + [Big() for i in range(L)]
elif mode == "threads":
    import threading
    lock = threading.Lock()
    lock.acquire()
    results = []

    def work(k):
        results.append(["t%d-%d" % (k, i) for i in range(20000)])
        lock.acquire()

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    while len(results) < 4:
        pass
    import time
    time.sleep(0.2)  # every worker is now parked in lock.acquire()
elif mode == "subinterp":
    try:
        import _xxsubinterpreters as si
        sid = si.create(isolated=True)
    except ImportError:
        try:
            import _interpreters as si  # 3.13: isolated by default
            sid = si.create()
        except ImportError:
            out(1, b"skip no subinterpreter module\n")
            sys.exit(0)
    si.run_string(sid, "import gc\ngc.disable()\nx = [tuple(range(i % 5)) for i in range(100000)]\n")
    keep = ["m%d" % i for i in range(30000)]
elif mode.startswith("corrupt"):
    import ctypes
    objs = [Small(i) for i in range(5000)]
    victim = objs[2000]
    del objs[1000:3000:2]   # free blocks in the victim's pool
    keep = objs

stdin = open(0, "rb", buffering=0)
# Bound before the figures: the first lookup of FileIO.readinto, at the wait, went through the
# type's method cache, and replacing a cache entry can free the last reference to the old entry's
# name (3.11 keeps strong references there; the slot depends on addresses): under the debug hooks,
# a 4-character str "name" (an 80-byte block) freed after the figures in about half the runs.
readinto = stdin.readinto
buf = bytearray(64)
devnull = os.open(os.devnull, os.O_WRONLY)
tail = b"ready\n"
if mode == "fork":
    child = os.fork()
    if child:
        os.waitpid(child, 0)
        os._exit(0)
    tail = b"child_pid %d\nready\n" % os.getpid()
if mode.startswith("corrupt"):
    pool = id(victim) & ~(16384 - 1)
    fb = ctypes.c_uint64.from_address(pool + 8).value           # the pool's free list head
    if mode == "corrupt-header":
        where, value = pool + 36, (0x7777).to_bytes(4, "little")  # szidx
    elif mode == "corrupt-loop":
        where, value = fb, fb.to_bytes(8, "little")              # next = itself
    else:
        where, value = fb, (0x10).to_bytes(8, "little")          # next outside the pool
    src = ctypes.create_string_buffer(value, len(value))
    tail = b"pool_addr %d\nready\n" % pool
    memmove = ctypes.memmove


def figures(fd):
    global n
    os.dup2(fd, 2)
    sys._debugmallocstats()
    n = sys.getallocatedblocks()
    out(fd, b"allocated_blocks %d\n" % n)
    n = None
    os.dup2(1, 2)


# A first pass warms every cache the second pass touches (method cache, specialised bytecode, the
# module dict's keys): the second pass then allocates nothing that outlives it.
figures(devnull)
out(1, b"version %d.%d\n" % sys.version_info[:2])
figures(1)
if mode.startswith("corrupt"):
    memmove(where, src, len(value))  # after the figures: they describe the heap before the damage
out(1, tail)
readinto(buf)
