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
    # Shift by the max first: logsumexp(z) and sum(p * z) are both ~max(z), and their difference would lose
    # every digit of H to cancellation for large logits. H is shift-invariant, so no gradient is lost.
    z, _ = _shifted_copy(logits)
    p = torch.softmax(z, dim=-1)
    # A -inf entry has p = 0 and adds 0; its z is read as 0 in the product, where 0 * -inf would be NaN in the
    # value and, through the product's gradient, in every entry's gradient (masking the product's output
    # instead leaves 0 * -inf in its backward)
    finite_z = z.masked_fill(z == -torch.inf, 0.0)
    return torch.logsumexp(z, dim=-1) - (p * finite_z).sum(dim=-1)


class _ChunkedTokenLogprobs(torch.autograd.Function):
    """log softmax(z)[target] row by row in chunks, and with `want_entropy` each row's entropy from the same
    pass (no gradient); backward recomputes the softmax chunk-wise from the saved row log-normalisers.

    Saves the input logits (in their own dtype) and one float32 per row, so neither pass holds a float32 copy
    of all of them. Each chunk is shifted by its row max once; the log-prob, the normaliser and the entropy
    are read off that one shifted copy and its exponentials (three passes over the chunk, where separate
    log-prob and entropy functions took about ten).
    """

    @staticmethod
    def forward(ctx, logits: torch.Tensor, targets: torch.Tensor, chunk_size: int, want_entropy: bool):
        # logits (R, V), targets (R,) -> (R,) log-probs, and (R,) entropies or None
        dtype = torch.promote_types(logits.dtype, torch.float32)
        out = torch.empty(logits.shape[0], dtype=dtype, device=logits.device)
        lse = torch.empty_like(out)
        entropy = torch.empty_like(out) if want_entropy else None
        for start in range(0, logits.shape[0], chunk_size):
            rows = slice(start, start + chunk_size)
            z, top = _shifted_copy(logits[rows])  # (chunk, V): z - max(z), -inf where z is -inf
            e = torch.exp(z)
            total = e.sum(dim=-1)
            log_total = total.log()
            out[rows] = z.gather(-1, targets[rows].unsqueeze(-1)).squeeze(-1) - log_total
            lse[rows] = top + log_total
            if entropy is not None:
                # H = log sum e - sum(e * z) / sum e on the shifted z; masked entries (e = 0) add 0, not 0 * -inf
                z.clamp_(min=torch.finfo(z.dtype).min)
                entropy[rows] = log_total - e.mul_(z).sum(dim=-1) / total
        ctx.save_for_backward(logits, targets, lse)
        ctx.chunk_size = chunk_size
        if entropy is not None:
            ctx.mark_non_differentiable(entropy)
        return out, entropy

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor, _grad_entropy):
        logits, targets, lse = ctx.saved_tensors
        grad = torch.empty_like(logits)
        for start in range(0, logits.shape[0], ctx.chunk_size):
            rows = slice(start, start + ctx.chunk_size)
            g = grad_out[rows].unsqueeze(-1)  # (chunk, 1)
            # d/dz [z_t - logsumexp(z)] = onehot(t) - softmax(z),  softmax(z) = exp(z - logsumexp(z))
            x = logits[rows]
            z = _upcast(x)
            chunk = (z - lse[rows].unsqueeze(-1)) if z is x else z.sub_(lse[rows].unsqueeze(-1))
            chunk.exp_().mul_(-g).scatter_add_(-1, targets[rows].unsqueeze(-1), g)
            grad[rows] = chunk
        return grad, None, None, None


def _shifted_copy(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(z, top): a float32 (float64 stays) copy of `x` (..., V) minus each row's max, and that max (0 for a
    row that is all -inf, which stays -inf rather than NaN). The max is taken without gradient: a shift."""
    z = _upcast(x)
    z = z.clone() if z is x else z
    top = z.detach().amax(dim=-1)
    top = torch.where(torch.isfinite(top), top, torch.zeros_like(top))
    return z.sub_(top.unsqueeze(-1)), top


# Rows a chunk of `token_logprobs` takes by default: on a CPU small chunks keep each float32 copy in cache
# (forward and backward of 1,024 x 49,152 bf16 logits: 115 ms in chunks of 16 rows, 131 in 64, 159 in 1,024;
# one thread, AVX-512 EPYC); a GPU gets large ones (each chunk is a few kernel launches).
CPU_CHUNK, DEVICE_CHUNK = 16, 1024


def token_logprobs(logits: torch.Tensor, targets: torch.Tensor, chunk_size: int | None = None) -> torch.Tensor:
    """log p(target) under softmax(logits): (N, T, V), (N, T) -> (N, T), float32 (float64 for float64 logits).

        logprob_nt = z_nt[target_nt] - logsumexp_v z_ntv

    Computed over the N*T rows in chunks of `chunk_size` rows (by default `CPU_CHUNK` on a CPU, `DEVICE_CHUNK`
    elsewhere), each upcast to float32 on its own, so the
    full (N, T, V) float32 log-softmax is never built, in the forward or the backward pass. Differentiable
    with respect to `logits`.
    """
    return _token_pass(logits, targets, chunk_size, want_entropy=False)[0]


def token_logprobs_and_entropy(logits: torch.Tensor, targets: torch.Tensor,
                               chunk_size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """`token_logprobs` and, from the same pass over the logits, `entropy_from_logits` of every row:
    (N, T, V), (N, T) -> ((N, T), (N, T)). The log-probs are differentiable; the entropy is not (it is the
    logged diagnostic: an entropy bonus needs `entropy_from_logits`, which is)."""
    return _token_pass(logits, targets, chunk_size, want_entropy=True)


def _token_pass(logits: torch.Tensor, targets: torch.Tensor, chunk_size: int | None, want_entropy: bool):
    if chunk_size is None:
        chunk_size = CPU_CHUNK if logits.device.type == "cpu" else DEVICE_CHUNK
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    if logits.shape[:-1] != targets.shape:
        raise ValueError(
            f"logits (..., V) and targets (...) disagree: {tuple(logits.shape)} vs {tuple(targets.shape)}"
        )
    rows = logits.reshape(-1, logits.shape[-1])  # (N*T, V)
    out, entropy = _ChunkedTokenLogprobs.apply(rows, targets.reshape(-1).long(), chunk_size, want_entropy)
    return out.view(targets.shape), None if entropy is None else entropy.view(targets.shape)
