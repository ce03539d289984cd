"""Quantities read off the policy's logits: per-token entropy and the log-prob of the sampled tokens.

Both upcast to float32 per call (float64 stays float64), so bf16/fp16 logits give float32 results.
"""

from __future__ import annotations

import torch


def _upcast(x: torch.Tensor) -> torch.Tensor:
    return x.to(torch.promote_types(x.dtype, torch.float32))


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of softmax(logits) along the last dim: (..., V) -> (...), in nats.

        H = -sum_v p_v log p_v = logsumexp(z) - sum_v p_v z_v,   p = softmax(z)

    Stable for large logits (computed on z - max(z)) and for -inf logits (masked vocabulary entries, which
    contribute 0).
    """
    z = _upcast(logits)
    # Shift by the max first: logsumexp(z) and sum(p * z) are both ~max(z), and their difference would lose
    # every digit of H to cancellation for large logits. H is shift-invariant, so no gradient is lost.
    top = z.amax(dim=-1, keepdim=True).detach()
    z = z - torch.where(torch.isfinite(top), top, torch.zeros_like(top))
    p = torch.softmax(z, dim=-1)
    pz = torch.where(p > 0, p * z, torch.zeros_like(z))  # 0 * -inf would be NaN
    return torch.logsumexp(z, dim=-1) - pz.sum(dim=-1)


class _ChunkedTokenLogprobs(torch.autograd.Function):
    """log softmax(z)[target] row by row in chunks, recomputing the softmax chunk-wise in backward.

    Saves only the input logits (in their own dtype), so neither pass holds a float32 copy of all of them.
    """

    @staticmethod
    def forward(ctx, logits: torch.Tensor, targets: torch.Tensor, chunk_size: int) -> torch.Tensor:
        # logits (R, V), targets (R,) -> (R,)
        out = torch.empty(
            logits.shape[0], dtype=torch.promote_types(logits.dtype, torch.float32), device=logits.device
        )
        for start in range(0, logits.shape[0], chunk_size):
            z = _upcast(logits[start : start + chunk_size])  # (chunk, V)
            t = targets[start : start + chunk_size].unsqueeze(-1)  # (chunk, 1)
            out[start : start + chunk_size] = z.gather(-1, t).squeeze(-1) - torch.logsumexp(z, dim=-1)
        ctx.save_for_backward(logits, targets)
        ctx.chunk_size = chunk_size
        return out

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        logits, targets = ctx.saved_tensors
        grad = torch.empty_like(logits)
        for start in range(0, logits.shape[0], ctx.chunk_size):
            end = start + ctx.chunk_size
            g = grad_out[start:end].unsqueeze(-1)  # (chunk, 1)
            # d/dz [z_t - logsumexp(z)] = onehot(t) - softmax(z)
            chunk = -torch.softmax(_upcast(logits[start:end]), dim=-1) * g
            chunk.scatter_add_(-1, targets[start:end].unsqueeze(-1), g)
            grad[start:end] = chunk.to(logits.dtype)
        return grad, None, None


def token_logprobs(logits: torch.Tensor, targets: torch.Tensor, chunk_size: int = 1024) -> torch.Tensor:
    """log p(target) under softmax(logits): (N, T, V), (N, T) -> (N, T), float32 (float64 for float64 logits).

        logprob_nt = z_nt[target_nt] - logsumexp_v z_ntv

    Computed over the N*T rows in chunks of `chunk_size` rows, each upcast to float32 on its own, so the
    full (N, T, V) float32 log-softmax is never built, in the forward or the backward pass. Differentiable
    with respect to `logits`.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    if logits.shape[:-1] != targets.shape:
        raise ValueError(
            f"logits (..., V) and targets (...) disagree: {tuple(logits.shape)} vs {tuple(targets.shape)}"
        )
    rows = logits.reshape(-1, logits.shape[-1])  # (N*T, V)
    out = _ChunkedTokenLogprobs.apply(rows, targets.reshape(-1).long(), chunk_size)
    return out.view(targets.shape)
