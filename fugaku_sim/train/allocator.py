"""Keep freed memory inside the process, so numpy's temporaries do not page-fault each step.

glibc gives large freed blocks back to the operating system (``munmap`` above the mmap
threshold, heap trimming above the trim threshold). A training step allocates and frees the
same activation-sized arrays every micro-batch, so each allocation then faults its pages in
anew: measured here on gpt-tiny, about 8,000 page faults per micro-batch and ~20% of the step
time. Raising both thresholds (``mallopt``, the same settings as the ``MALLOC_*`` environment
variables) makes glibc reuse the blocks. Elsewhere (not glibc) this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util

# mallopt parameters, from glibc's <malloc.h>
M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2
M_MMAP_THRESHOLD = -3
# the largest mmap threshold glibc accepts on 64-bit systems (DEFAULT_MMAP_THRESHOLD_MAX)
MMAP_THRESHOLD_MAX_BYTES = 32 * 2**20


def keep_freed_memory(trim_threshold_bytes: int = 2**31, top_pad_bytes: int = 2**26) -> bool:
    """Tell glibc to keep freed memory for reuse; returns whether every setting took."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok = mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX_BYTES) == 1
    ok &= mallopt(M_TRIM_THRESHOLD, min(trim_threshold_bytes, 2**31 - 1)) == 1
    ok &= mallopt(M_TOP_PAD, top_pad_bytes) == 1
    return bool(ok)
