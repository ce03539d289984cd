"""Keep freed host memory in the process, so a training step's large tensors do not page-fault fresh memory.

PyTorch's CPU allocator takes every tensor from the C library's `malloc` and gives it back with `free`; it has
no cache of its own (the CUDA allocator does). glibc serves blocks above its mmap threshold (128 KiB, raised
on the fly up to 32 MiB) with a fresh `mmap` and unmaps them when freed, and trims the heap's free top above
128 KiB. So every step's large tensors come back as new pages that the kernel must fault in and zero: for
SmolLM2-135M in a training step (16 rows, 64 completion tokens, one learner micro-batch) the (1024, 49152)
logits, their float32 copies and gradients, the (49152, 576) embedding gradient and the activations, about
430,000 minor faults (1.7 GB) and 2.35 s of system time a step; kept, 3 faults and 1.49x the step rate
(`benchmarks/host_memory.py`, `benchmarks/results/host_memory.json`).

`keep_freed_memory` sets glibc's `M_MMAP_MAX` to 0 (every block from the heap, which `free` recycles) and
`M_TRIM_THRESHOLD` to -1, which `mallopt(3)` documents as turning trimming off: after the first steps the heap
holds the step's peak and no page is faulted again. Not INT_MAX, the largest positive value: that still hands
back a free top past 2 GiB, which a process that frees more than that at once (rlvr and TRL in one benchmark
process) meets every step: 2.5 GiB allocated, touched and freed three times faulted 1,048,512 pages in the
two later rounds with INT_MAX and none with -1 (`tests/models/test_host_memory.py`). PyTorch asks for 64-byte
aligned blocks (`posix_memalign`), which a freed block of exactly the same size cannot serve until it has
merged with a neighbour: a loop over one 64 MiB tensor grew the heap by 128 MiB before it settled. The cost
is that the process keeps its peak footprint (the OS gets nothing back until it exits), as a GPU caching
allocator does. The same thing other libraries get from preloading jemalloc or tcmalloc, done at run time with
no preload and nothing to install. Elsewhere than glibc (musl, macOS) it does nothing and returns False (the
run's header then does not list it).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
M_MMAP_MAX = -4
_NO_TRIM = -1  # mallopt(3): -1 turns trimming off (glibc reads it as the largest size_t)

_applied = False


@functools.lru_cache(maxsize=1)
def _glibc() -> ctypes.CDLL | None:
    """The process's C library when it is glibc (it has `gnu_get_libc_version` and `mallopt`), else None."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        libc.gnu_get_libc_version  # noqa: B018 (raises AttributeError outside glibc)
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.mallopt.restype = ctypes.c_int
    except (OSError, AttributeError):
        return None
    return libc


def keep_freed_memory() -> bool:
    """Have glibc's `malloc` keep freed memory for reuse (no mmap'd blocks, no heap trimming), from now on in
    this process. True when it is in force (set now or before), False where the C library is not glibc or
    refused a setting. Blocks allocated before keep their own kind; everything after comes from the heap."""
    global _applied
    if _applied:
        return True
    libc = _glibc()
    if libc is None:
        return False
    # trim first: were the mmap limit set alone, a large free top would still be handed back
    _applied = bool(libc.mallopt(M_TRIM_THRESHOLD, _NO_TRIM)) and bool(libc.mallopt(M_MMAP_MAX, 0))
    return _applied


def keeps_freed_memory() -> bool:
    """Whether `keep_freed_memory` is in force in this process."""
    return _applied
