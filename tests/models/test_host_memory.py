"""The learner's large per-step tensors reuse freed memory instead of faulting fresh pages in every step."""

import subprocess
import sys
import textwrap

import pytest

from rlvr.models.host_memory import _glibc

pytestmark = pytest.mark.skipif(_glibc() is None, reason="mallopt is glibc's")

# Allocates, fills and frees a 64 MiB tensor (above glibc's largest dynamic mmap threshold, 32 MiB) ten times;
# prints the minor page faults of the last five rounds (64 MiB is 16,384 pages of 4 KiB). The first rounds may
# fault: PyTorch asks for 64-byte-aligned blocks (posix_memalign), which a freed block of exactly the size
# cannot serve until it has merged with a neighbour, so the heap grows by a block or two before it settles.
ROUNDS = """
import resource, sys, torch
from rlvr.models.loading import load_policy
from rlvr.config.schema import ModelConfig
from rlvr.models.host_memory import keeps_freed_memory
load_policy(ModelConfig(kind="tiny", device="cpu", keep_host_memory=sys.argv[1] == "1"))
faults = []
for _ in range(10):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    x = torch.empty(16 * 2**20).fill_(1.0)
    del x
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(int(keeps_freed_memory()), sum(faults[5:]))
"""


def _rounds(keep: bool) -> tuple[bool, int]:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(ROUNDS), "1" if keep else "0"],
                         capture_output=True, text=True, check=True).stdout.split()
    return out[0] == "1", int(out[1])


def test_a_cpu_policy_keeps_freed_memory_so_a_step_s_large_tensors_fault_no_fresh_pages():
    kept, faults = _rounds(keep=True)
    assert kept and faults < 1_000  # the freed block is reused: no page of it is faulted again
    kept, faults = _rounds(keep=False)  # model.keep_host_memory: false leaves glibc's defaults
    assert not kept and faults > 5 * 16_384 * 0.9  # each round maps and faults 64 MiB anew


# glibc's own malloc and free (no alignment), after keep_freed_memory: 2.5 GiB allocated, touched and freed at
# once, three times; prints the minor page faults of the last two rounds.
FREE_TOP = """
import ctypes, resource
from rlvr.models.host_memory import keep_freed_memory
assert keep_freed_memory()
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes, libc.memset.argtypes = [ctypes.c_void_p], [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
faults = []
for _ in range(3):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    blocks = [libc.malloc(256 * 2**20) for _ in range(10)]
    for b in blocks:
        libc.memset(b, 1, 256 * 2**20)
    for b in reversed(blocks):
        libc.free(b)
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(sum(faults[1:]))
"""


def test_a_free_top_larger_than_2_gib_is_kept_too():
    # a trim threshold of INT_MAX (the largest positive int) still hands back a free heap top past 2 GiB, which
    # rlvr and TRL in one benchmark process freed every step: -1 turns trimming off
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(FREE_TOP)], capture_output=True, text=True,
                         check=True).stdout
    assert int(out) < 1_000  # with INT_MAX: 1,048,512 (the heap trimmed each time, 2 GiB faulted again a round)
