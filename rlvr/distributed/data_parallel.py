"""Data-parallel gradients over a torch.distributed group (gloo on CPU, NCCL on GPUs).

Each learner runs its own rows of the batch with every row weighted by its share of the whole batch's loss,
so the sum of the learners' gradients is the one-process gradient. `reduce_gradients` sums them (one
all-reduce per dtype over a flat buffer, after gradient accumulation: what DDP does, once per optimiser
step), after which every learner takes the same optimiser step and the replicas stay identical.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

# Learner diagnostics that are already weighted by their share of the whole batch: summed over learners.
SUMMED = ("loss", "kl", "entropy", "clip_frac", "ratio_mean", "approx_kl", "logprob_gap")
# Maxima, and wall times (the learners run side by side, so the step waits for the slowest).
MAXED = ("ratio_max", "time/forward", "time/backward", "time/grad_reduce", "time/optimizer")


class DataParallel:
    def __init__(self, device: torch.device, group=None):
        self.device = device
        self.group = group

    def reduce_gradients(self, model: torch.nn.Module) -> None:
        params = [p for p in model.parameters() if p.requires_grad]
        by_dtype: dict[torch.dtype, list[torch.nn.Parameter]] = {}
        for p in params:
            by_dtype.setdefault(p.dtype, []).append(p)
        for group in by_dtype.values():
            # A learner with no rows (or a parameter no row reached) adds zeros.
            flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in group])
            dist.all_reduce(flat, op=dist.ReduceOp.SUM, group=self.group)
            offset = 0
            for p in group:
                n = p.numel()
                p.grad = flat[offset : offset + n].view_as(p).clone()
                offset += n

    def reduce_stats(self, sums: dict[str, float]) -> dict[str, float]:
        """Sum (or max) the diagnostics over the group; a key any learner reported is kept."""
        out = dict(sums)
        for keys, op in ((SUMMED, dist.ReduceOp.SUM), (MAXED, dist.ReduceOp.MAX)):
            values = torch.tensor([[sums.get(k, 0.0), float(k in sums)] for k in keys], dtype=torch.float64,
                                  device=self.device)
            dist.all_reduce(values, op=op, group=self.group)
            for k, (value, present) in zip(keys, values.tolist()):
                if present > 0:
                    out[k] = value
        return out
