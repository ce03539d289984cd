"""Optimiser and learning-rate schedule, shared by the RL learner and the imitation (pretraining) phase."""

from __future__ import annotations

import contextlib
import math

import torch


def build_optimizer(model: torch.nn.Module, lr: float, weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """AdamW over trainable parameters; no decay on biases, norms and embeddings-sized vectors (dim < 2)."""
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    # The fused kernel (one pass over each tensor) where this torch and device have it.
    # Not for sharded (FSDP) parameters: the fused kernel mixes their DTensors with plain step counters.
    from torch.distributed.tensor import DTensor

    fused = bool(params) and all(p.device.type in ("cuda", "cpu") for p in params) and \
        all(p.dtype in (torch.float32, torch.bfloat16, torch.float16) for p in params) and \
        not any(isinstance(p, DTensor) for p in params)
    try:
        return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.99), eps=1e-8, fused=fused)
    except (RuntimeError, TypeError):
        return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.99), eps=1e-8)


def build_scheduler(optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int,
                    kind: str = "constant") -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up for `warmup_steps`, then constant, cosine (to 10%) or linear (to 0) decay."""

    def factor(step: int) -> float:
        if warmup_steps and step < warmup_steps:
            return (step + 1) / warmup_steps
        if kind == "constant" or total_steps <= warmup_steps:
            return 1.0
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        if kind == "cosine":
            return 0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress))
        return max(0.0, 1.0 - progress)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def clip_and_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                  scheduler: torch.optim.lr_scheduler.LRScheduler | None, grad_clip: float,
                  scaler: torch.amp.GradScaler | None = None) -> float:
    """Clip gradients (when `grad_clip > 0`), step, zero; returns the pre-clip gradient norm. With an fp16
    loss `scaler`, the gradients are unscaled first and a step with inf/nan gradients is skipped."""
    if scaler is not None:
        scaler.unscale_(optimizer)
    params = [p for p in model.parameters() if p.grad is not None]
    if grad_clip > 0:
        norm = torch.nn.utils.clip_grad_norm_(params, grad_clip)
    else:
        norm = torch.norm(torch.stack([p.grad.detach().norm() for p in params])) if params else torch.tensor(0.0)
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    if scheduler is not None:
        scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return float(norm)


def autocast(device: torch.device, dtype: torch.dtype | None):
    """Autocast to `dtype` for a forward (and the backward that follows it) on `device`: matrix products
    run in `dtype` while fp32 weights stay the masters and receive fp32 gradients (PyTorch AMP). No-op for
    fp32 or None."""
    if dtype is None or dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def low_precision_params(model: torch.nn.Module) -> bool:
    """True when some trainable weight is stored below fp32: its updates can round away."""
    return any(p.requires_grad and p.is_floating_point() and p.element_size() < 4 for p in model.parameters())


@torch.no_grad()
def changed_fraction(before: list[torch.Tensor], params: list[torch.Tensor]) -> float:
    """Share of elements of `params` that differ from their copies in `before` (the update that landed)."""
    total = sum(p.numel() for p in params)
    changed = sum(int((p.detach() != b).sum()) for b, p in zip(before, params))
    return changed / max(total, 1)


def loss_scaler(model: torch.nn.Module, dtype: torch.dtype | None) -> torch.amp.GradScaler | None:
    """A dynamic loss scaler for fp16 autocast over fp32 master weights (whose small gradients would
    underflow in fp16); none otherwise (bf16 and fp32 need none, and low-precision weights cannot be unscaled)."""
    if dtype != torch.float16 or low_precision_params(model):
        return None
    return torch.amp.GradScaler(next(model.parameters()).device.type)
