"""Faster CPU decode for the torch engine: linear layers on oneDNN-packed weights.

`F.linear` on a CPU hands oneDNN the weight in PyTorch's (out, in) layout, which it reorders into its blocked
layout inside every call; a skinny decode product (a few rows, every weight) pays that reorder each token.
`torch.ops.mkldnn._reorder_linear_weight` does it once (what inductor's weight prepacking does when it freezes
a graph) and `_linear_pointwise` runs the product on the packed copy: bit for bit the same in bf16, within
fp32 rounding in fp32. Measured with `benchmarks/cpu_linears.py` (all of SmolLM2-135M's linear layers of one
16-row decode step, each weight read from memory as decode reads it, one thread): fp32 179 -> 141 ms a step on a
2-core AVX2-only EPYC. On an AVX-512-BF16 EPYC a one-off script measured bf16 51.6 -> 31.2 ms and the engine
158 -> 200 tokens/s.

The packed copies are used only while the engine decodes (`TorchEngine.decoding`), so a learner sharing the
engine's model trains through its own kernels. They are redone at every new policy version (each weight sync,
`load_weights`) and whenever a tensor's in-place version counter moved (a `load_state_dict` or an optimiser
step outside the sync). The counter alone is not enough: the fused AdamW kernel (rlvr's optimiser) and
`.data` writes change a weight without moving it, so a learner that shares the engine's model would leave the
engine sampling from the weights of the step before. They cost the weights' memory once more, and a repack
per sync (~0.2 s for SmolLM2-135M in bf16 on the AVX-512 EPYC, 0.4-0.5 s in fp32 on the AVX2 one).

oneDNN packs bf16 weights only on CPUs with AVX-512 (BW, VL, DQ) or AVX-NE-CONVERT; elsewhere (AVX2-only
CPUs) a bf16 model decodes on its own kernels and only fp32 weights are packed (`packs`).
"""

from __future__ import annotations

import contextlib
import functools

import torch


def can_pack(device: torch.device) -> bool:
    """oneDNN packed linears exist in this torch build and the engine runs on the CPU."""
    return (device.type == "cpu" and torch.backends.mkldnn.is_available()
            and hasattr(torch.ops.mkldnn, "_reorder_linear_weight") and hasattr(torch.ops.mkldnn, "_linear_pointwise"))


@functools.cache
def packs(dtype: torch.dtype) -> bool:
    """Whether oneDNN packs weights of `dtype` on this CPU: tried once on a small weight (the op itself checks
    the CPU's features; bf16 needs AVX-512 BW/VL/DQ or AVX-NE-CONVERT)."""
    if dtype not in (torch.float32, torch.bfloat16) or not can_pack(torch.device("cpu")):
        return False
    try:
        torch.ops.mkldnn._reorder_linear_weight(torch.zeros(16, 16, dtype=dtype), 1)
    except RuntimeError:
        return False
    return True


def _packable(module: torch.nn.Module) -> bool:
    w = getattr(module, "weight", None)
    return (type(module) is torch.nn.Linear and type(w) is torch.nn.Parameter  # not a quantised tensor subclass
            and w.device.type == "cpu" and w.dim() == 2 and packs(w.dtype)
            and (module.bias is None or module.bias.dtype == w.dtype))


class PackedLinears:
    """oneDNN-packed copies of `model`'s plain `nn.Linear` weights (bf16 or fp32, CPU), used in place of
    `F.linear` inside `active()`."""

    def __init__(self, model: torch.nn.Module):
        self.model = model
        self._packed: dict[int, tuple[tuple, torch.Tensor]] = {}  # id(module) -> (weight's identity, packed)
        self._policy: int | None = None  # the engine's policy version the packed copies were made at
        self.repacks = 0  # weights packed since construction (each sync that changed them repacks them)

    def layers(self) -> list[torch.nn.Module]:
        """The model's layers that run on packed weights, listed anew each time: a weight sync may have quantised
        some (those run their own kernels)."""
        return [m for m in self.model.modules() if _packable(m)]

    def covers(self) -> bool:
        """Whether any of the model's layers runs on a packed weight (none do for a bf16 model on a CPU that
        cannot pack bf16, or for quantised weights)."""
        return bool(self.layers())

    @staticmethod
    def _key(w: torch.Tensor) -> tuple:
        return (w.data_ptr(), w._version, w.dtype, tuple(w.shape))

    def refresh(self, batch_hint: int, policy: int) -> list[torch.nn.Module]:
        """Pack every weight that changed since it was last packed (or never was), all of them at a new
        `policy` version; returns the packable layers (`layers`)."""
        if policy != self._policy:
            self._packed.clear()
            self._policy = policy
        modules = self.layers()
        for m in modules:
            key = self._key(m.weight)
            held = self._packed.get(id(m))
            if held is None or held[0] != key:
                self._packed[id(m)] = (key, torch.ops.mkldnn._reorder_linear_weight(m.weight.detach(), batch_hint))
                self.repacks += 1
        return modules

    @contextlib.contextmanager
    def active(self, batch_hint: int, policy: int):
        """Within: each packable linear runs on its packed weight of policy version `policy` (no autograd:
        decode runs under no_grad)."""
        modules = self.refresh(batch_hint, policy)
        for m in modules:
            m.forward = _packed_forward(self._packed[id(m)][1], m.bias)
        try:
            yield
        finally:
            for m in modules:
                m.__dict__.pop("forward", None)


def _packed_forward(packed: torch.Tensor, bias: torch.Tensor | None):
    def forward(x: torch.Tensor) -> torch.Tensor:
        return torch.ops.mkldnn._linear_pointwise(x.contiguous(), packed, bias, "none", [], "")
    return forward
