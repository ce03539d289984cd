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

Linears that read the same input can be packed as one (`groups`): the layer loop (`rlvr.rollout.layer_loop`)
runs each layer's query, key and value projections as one product and its MLP's gate and up projections as
another, their weights stacked, then splits the output. 4 products a layer instead of 7; bit for bit the same
outputs in bf16 (each output column is the same dot product). All 30 layers' q/k/v and gate/up products of a
16-row SmolLM2-135M decode step took 11.1 ms fused against 12.0 ms apart (bf16, one thread, AVX-512 BF16). A
grouped layer holds only the stacked copy: during the prefill (transformers' forward) it runs on its own
kernels. Groups are stacked only for a generate the loop will decode (the engine checks the model's sliding
windows against the cache first).

With `int8` (`rollout.weights: w8a8`) each weight is packed for oneDNN's int8 product instead: int8 per output
channel (symmetric, scale = the row's largest magnitude / 127), and each product quantises its input rows to int8
as it runs (one scale per row, its largest magnitude / 127), multiplies on VNNI / AMX-INT8 (int32 sums), and
scales back to the input's dtype. Half the bytes of bf16 weights read per decode step, where decode is bound by
reading them.

`packed_linear` (the custom op `rlvr::packed_linear`) runs a packed weight named by a string handle
(`PackedLinears.handle`), so a graph compiled by torch.compile can call the packed kernels: the layer loop's
compiled step (`rlvr.rollout.layer_loop`) does. A handle stays with its module; each repack points it at the
new packed weight.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import weakref
from typing import NamedTuple

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


@functools.cache
def packs_int8() -> bool:
    """Whether oneDNN's int8 product (`onednn::qlinear_pointwise`) runs on this CPU: tried once on a small weight."""
    if not can_pack(torch.device("cpu")) or not hasattr(torch.ops.onednn, "qlinear_pointwise"):
        return False
    try:
        run_int8(torch.ones(2, 16), pack_int8(torch.ones(16, 16), 2), None)
    except RuntimeError:
        return False
    return True


class Int8Packed(NamedTuple):
    """A weight packed for oneDNN's int8 product: int8 values (symmetric per output channel) and their scales."""

    weight: torch.Tensor  # `qlinear_prepack`ed (out, in) int8
    scale: torch.Tensor  # (out,) float32: W ~ scale[:, None] * int8 values
    zero: torch.Tensor  # (out,) int64 zeros (symmetric)


def pack_int8(weight: torch.Tensor, rows: int) -> Int8Packed:
    """`weight` (out, in) as int8 per output channel (symmetric: its largest magnitude maps to 127), packed by
    oneDNN for products of about `rows` rows."""
    w = weight.detach().float()
    scale = w.abs().amax(dim=1).clamp_(min=torch.finfo(torch.float32).tiny).div_(127)
    q = torch.round(w / scale[:, None]).clamp_(-127, 127).to(torch.int8)
    return Int8Packed(torch.ops.onednn.qlinear_prepack(q, [rows, w.shape[1]]), scale,
                      torch.zeros(w.shape[0], dtype=torch.long))


def quantize_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(int8 values, float32 scales (..., 1)) of `x`'s rows, symmetric: x ~ scale * values, one scale a row (its
    largest magnitude / 127). Plain ops, so a compiled step fuses them into what computed `x`."""
    flat = x.float()
    scale = flat.abs().amax(dim=-1, keepdim=True).clamp(min=torch.finfo(torch.float32).tiny) / 127
    return torch.round(flat / scale).clamp(-127, 127).to(torch.int8), scale


def int8_product(q: torch.Tensor, scale: torch.Tensor, packed: Int8Packed,
                  bias: torch.Tensor | None) -> torch.Tensor:
    """float32 (q @ W^T) * the rows' scales + b: oneDNN's int32 sums times the weight's scales, then the rows'."""
    y = torch.ops.onednn.qlinear_pointwise(q.reshape(-1, q.shape[-1]), 1.0, 0, packed.weight, packed.scale,
                                           packed.zero, None, 1.0, 0, torch.float32, "none", [], "")
    y = y.mul_(scale.reshape(-1, 1))
    if bias is not None:
        y += bias
    return y.view(*q.shape[:-1], y.shape[-1])


def run_int8(x: torch.Tensor, packed: Int8Packed, bias: torch.Tensor | None) -> torch.Tensor:
    """x @ W^T + b on int8 weights, with x's rows quantised to int8 as it runs (`quantize_rows`), in x's dtype."""
    return int8_product(*quantize_rows(x), packed, bias).to(x.dtype)


def _packable(module: torch.nn.Module) -> bool:
    w = getattr(module, "weight", None)
    return (type(module) is torch.nn.Linear and type(w) is torch.nn.Parameter  # not a quantised tensor subclass
            and w.device.type == "cpu" and w.dim() == 2 and packs(w.dtype)
            and (module.bias is None or module.bias.dtype == w.dtype))


class PackedLinears:
    """oneDNN-packed copies of `model`'s plain `nn.Linear` weights (bf16 or fp32, CPU), used in place of
    `F.linear` inside `active()`."""

    def __init__(self, model: torch.nn.Module, int8: bool = False):
        self.model = model
        self.int8 = int8  # pack for oneDNN's int8 product (rollout.weights: w8a8), not in the weights' dtype
        self._packed: dict[int, tuple[tuple, torch.Tensor]] = {}  # id(module) -> (weight's identity, packed)
        # ids of a group's modules -> (their weights' identities, packed stacked weight, stacked bias or None)
        self._stacked: dict[tuple[int, ...], tuple[tuple, torch.Tensor, torch.Tensor | None]] = {}
        self._policy: int | None = None  # the engine's policy version the packed copies were made at
        self.repacks = 0  # weights packed since construction (each sync that changed them repacks them)
        # ids of a module (or a group's modules) -> its handle for `packed_linear`: fixed for the module's life,
        # while what the handle points at follows each repack
        self._handles: dict[tuple[int, ...], str] = {}
        weakref.finalize(self, _forget, self._handles)

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

    def refresh(self, batch_hint: int, policy: int,
                groups: tuple[tuple[torch.nn.Module, ...], ...] = ()) -> list[torch.nn.Module]:
        """Pack every weight that changed since it was last packed (or never was), all of them at a new
        `policy` version; each of `groups` (linears that read the same input) that can be stacked is packed as
        one weight. Returns the packable layers outside those groups (`layers`)."""
        if policy != self._policy:
            self._packed.clear()
            self._stacked.clear()
            self._policy = policy
        grouped: set[int] = set()
        for group in groups:
            if not stackable(group):
                continue
            ids = tuple(id(m) for m in group)
            grouped.update(ids)
            key = tuple(self._key(m.weight) for m in group)
            held = self._stacked.get(ids)
            if held is None or held[0] != key:
                weight = torch.cat([m.weight.detach() for m in group])
                bias = None if group[0].bias is None else torch.cat([m.bias.detach() for m in group])
                self._stacked[ids] = (key, self._pack(weight, batch_hint), bias)
                self.repacks += len(group)
                self._point(ids, self._stacked[ids][1], bias, weight.shape[0])
        modules = [m for m in self.layers() if id(m) not in grouped]
        for m in modules:
            key = self._key(m.weight)
            held = self._packed.get(id(m))
            if held is None or held[0] != key:
                self._packed[id(m)] = (key, self._pack(m.weight.detach(), batch_hint))
                self.repacks += 1
                self._point((id(m),), self._packed[id(m)][1], m.bias, m.out_features)
        return modules

    def _pack(self, weight: torch.Tensor, rows: int):
        return pack_int8(weight, rows) if self.int8 else torch.ops.mkldnn._reorder_linear_weight(weight, rows)

    def _point(self, ids: tuple[int, ...], packed: torch.Tensor, bias: torch.Tensor | None, width: int) -> None:
        if ids in self._handles:
            _WEIGHTS[self._handles[ids]] = (packed, bias, width)

    def handle(self, modules: tuple[torch.nn.Module, ...]) -> str | None:
        """The handle under which `packed_linear` runs `modules` (one linear, or a group packed as one) on
        their packed weight, whatever policy version it was packed at; None where they are not packed so (call
        after `refresh`)."""
        ids = tuple(id(m) for m in modules)
        held = self._stacked.get(ids) if len(ids) > 1 else self._packed.get(ids[0])
        if held is None:
            return None
        if ids not in self._handles:  # a new handle; `refresh` repoints it at every repack from now on
            self._handles[ids] = f"packed-{next(_HANDLES)}"
            packed, bias = (held[1], held[2]) if len(ids) > 1 else (held[1], modules[0].bias)
            self._point(ids, packed, bias, sum(m.out_features for m in modules))
        return self._handles[ids]

    @property
    def stacks(self) -> int:
        """Groups of linears held packed as one weight."""
        return len(self._stacked)

    def stacked(self, group: tuple[torch.nn.Module, ...]):
        """Inside `active`: x -> the outputs of `group`'s linears side by side (one product on their stacked
        weight), or None where the group was not packed as one."""
        held = self._stacked.get(tuple(id(m) for m in group))
        return None if held is None else _packed_forward(held[1], held[2])

    @contextlib.contextmanager
    def active(self, batch_hint: int, policy: int, groups: tuple[tuple[torch.nn.Module, ...], ...] = ()):
        """Within: each packable linear runs on its packed weight of policy version `policy` (no autograd:
        decode runs under no_grad); `groups` that can be stacked are packed as one weight each (`stacked`),
        their members left on their own kernels."""
        modules = self.refresh(batch_hint, policy, groups)
        for m in modules:
            m.forward = _packed_forward(self._packed[id(m)][1], m.bias)
        try:
            yield
        finally:
            for m in modules:
                m.__dict__.pop("forward", None)


def stackable(group: tuple[torch.nn.Module, ...]) -> bool:
    """Linears that can run as one product: all packable, of one dtype and input width, with a bias on all or
    none."""
    return (len(group) > 1 and all(_packable(m) for m in group)
            and len({(m.weight.dtype, m.weight.shape[1], m.bias is None) for m in group}) == 1)


def _run_packed(x: torch.Tensor, packed, bias: torch.Tensor | None) -> torch.Tensor:
    """x @ W^T + b on oneDNN's packed copy of W (no fused activation; int8 for an `Int8Packed` one)."""
    if isinstance(packed, Int8Packed):
        return run_int8(x, packed, bias)
    return torch.ops.mkldnn._linear_pointwise(x.contiguous(), packed, bias, "none", [], "")


def _packed_forward(packed: torch.Tensor, bias: torch.Tensor | None):
    def forward(x: torch.Tensor) -> torch.Tensor:
        return _run_packed(x, packed, bias)
    return forward


# handle -> (packed weight, bias or None, output width): what `packed_linear` reads, kept by each PackedLinears
_WEIGHTS: dict[str, tuple[torch.Tensor, torch.Tensor | None, int]] = {}
_HANDLES = itertools.count()


def _forget(handles: dict[tuple[int, ...], str]) -> None:
    for h in handles.values():
        _WEIGHTS.pop(h, None)


def _packed_linear(x: torch.Tensor, handle: str) -> torch.Tensor:
    packed, bias, _ = _WEIGHTS[handle]
    return _run_packed(x, packed, bias)


# A plain operator definition with a CPU kernel, not `torch.library.custom_op`: the custom op's wrapper (its
# autograd and dispatch layers, in Python) cost about 8 us of a call's 25, at 121 calls a SmolLM2-135M decode
# step (one thread, AVX-512 BF16 EPYC; the kernel alone 17 us at q/k/v's shape). Decode runs without autograd.
_LIB = torch.library.Library("rlvr", "FRAGMENT")
_LIB.define("packed_linear(Tensor x, str handle) -> Tensor")
_LIB.impl("packed_linear", _packed_linear, "CPU")
packed_linear = torch.ops.rlvr.packed_linear.default
packed_linear.__doc__ = """x @ W^T + b on the packed weight of `handle` (`PackedLinears.handle`): one op that a compiled
graph calls as it is (oneDNN's packed tensors cannot be a graph's inputs; the handle, a string, is a constant of
the graph, and what it points at moves with each repack, so a weight sync needs no recompile)."""


@torch.library.register_fake("rlvr::packed_linear")
def _packed_linear_shape(x: torch.Tensor, handle: str) -> torch.Tensor:
    return x.new_empty((*x.shape[:-1], _WEIGHTS[handle][2]))


def _packed_linear_int8(q: torch.Tensor, scale: torch.Tensor, handle: str) -> torch.Tensor:
    packed, bias, _ = _WEIGHTS[handle]
    return int8_product(q, scale, packed, bias)


_LIB.define("packed_linear_int8(Tensor q, Tensor scale, str handle) -> Tensor")
_LIB.impl("packed_linear_int8", _packed_linear_int8, "CPU")
packed_linear_int8 = torch.ops.rlvr.packed_linear_int8.default
packed_linear_int8.__doc__ = """float32 (q @ W^T) * scale + b on the int8 weight of `handle` (a `PackedLinears(int8=True)` handle),
for rows `q`, `scale` = `quantize_rows(x)`: what `packed_linear` runs for x on such a weight, with the
quantisation left to the caller, so a compiled step fuses it into the ops before it."""


@torch.library.register_fake("rlvr::packed_linear_int8")
def _packed_linear_int8_shape(q: torch.Tensor, scale: torch.Tensor, handle: str) -> torch.Tensor:
    return q.new_empty((*q.shape[:-1], _WEIGHTS[handle][2]), dtype=torch.float32)
