# make bench's CPython target: N small objects (strings, tuples, ints, instances) in pymalloc,
# a third of them freed, then "ready" and a wait on stdin that allocates nothing.
import gc
import os
import sys

gc.disable()
n = int(sys.argv[1])


class Obj:
    __slots__ = ("a",)


q = n // 4
heap = ["s%09d" % i for i in range(q)] + [(i, None) for i in range(q)] + \
    [i * 1000003 for i in range(q)] + [Obj() for i in range(n - 3 * q)]
del heap[::3]
os.write(1, b"ready\n")
sys.stdin.buffer.raw.readinto(bytearray(8))
