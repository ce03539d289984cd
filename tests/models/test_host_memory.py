"""The learner's large per-step tensors reuse freed memory instead of faulting fresh pages in every step."""

import subprocess
import sys
import textwrap

import pytest

from rlvr.models.host_memory import _glibc

pytestmark = pytest.mark.skipif(_glibc() is None, reason="mallopt is glibc's")

# Allocates, fills and frees a 64 MiB tensor (above glibc's largest dynamic mmap threshold, 32 MiB) five
# times; prints the minor page faults of the last four rounds. 64 MiB is 16,384 pages of 4 KiB.
ROUNDS = """
import resource, sys, torch
from rlvr.models.loading import load_policy
from rlvr.config.schema import ModelConfig
from rlvr.models.host_memory import keeps_freed_memory
load_policy(ModelConfig(kind="tiny", device="cpu", keep_host_memory=sys.argv[1] == "1"))
faults = []
for _ in range(5):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    x = torch.empty(16 * 2**20).fill_(1.0)
    del x
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(int(keeps_freed_memory()), sum(faults[1:]))
"""


def _rounds(keep: bool) -> tuple[bool, int]:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(ROUNDS), "1" if keep else "0"],
                         capture_output=True, text=True, check=True).stdout.split()
    return out[0] == "1", int(out[1])


def test_a_cpu_policy_keeps_freed_memory_so_a_step_s_large_tensors_fault_no_fresh_pages():
    kept, faults = _rounds(keep=True)
    assert kept and faults < 1_000  # the freed block is reused: no page of it is faulted again
    kept, faults = _rounds(keep=False)  # model.keep_host_memory: false leaves glibc's defaults
    assert not kept and faults > 4 * 16_384 * 0.9  # each round maps and faults 64 MiB anew
