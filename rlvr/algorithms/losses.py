"""Clipped policy-gradient loss (PPO / GRPO / DAPO / GSPO) and the ways of averaging it over tokens.

Shapes: N completions, T token positions. `mask` is (N, T), 1 on completion tokens and 0 on padding (left
or right, anywhere). Values at masked positions never reach the result or its gradient, even if they are
inf or NaN.
"""

from __future__ import annotations

import torch

from rlvr.algorithms.kl import kl_estimate
from rlvr.algorithms.names import LOSS_AGGS, RATIO_LEVELS


def _masked(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """values * mask, with exact zeros (and zero gradient) where mask == 0, whatever values holds there."""
    return torch.where(mask != 0, values * mask, torch.zeros_like(values))


def _safe_div(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """num / den, 0 where den == 0 (num is then 0 too: nothing was summed)."""
    return num / torch.where(den != 0, den, torch.ones_like(den))


def aggregate(
    values: torch.Tensor, mask: torch.Tensor, loss_agg: str, max_tokens: int | None = None
) -> torch.Tensor:
    """Reduce per-token `values` (N, T) to a scalar over the tokens where `mask` (N, T) is 1.

    - "token_mean":  sum(v * m) / sum(m). Every token weighs the same, so long completions are not
      down-weighted (DAPO, Yu et al. 2025, eq. 12).
    - "seq_mean_token_mean":  1/|S| sum_{i in S} (sum_t v_it m_it / sum_t m_it), S = sequences with at
      least one token (empty ones are skipped). Each completion weighs the same (GRPO, Shao et al. 2024, eq. 3).
    - "seq_mean_token_sum_norm":  sum(v * m) / (N * max_tokens), a constant normaliser so neither length nor
      the number of tokens in the batch rescales a token's weight (Dr. GRPO, Liu et al. 2025). `max_tokens`
      defaults to T; N counts every row, empty ones included.

    A mask that is 0 everywhere gives 0, still connected to `values` in the autograd graph (zero gradient).
    """
    if values.shape != mask.shape or values.dim() != 2:
        raise ValueError(
            f"values and mask must both be (N, T); got {tuple(values.shape)} and {tuple(mask.shape)}"
        )
    mask = mask.to(values.dtype)
    masked = _masked(values, mask)  # (N, T)
    if loss_agg == "token_mean":
        return _safe_div(masked.sum(), mask.sum())
    if loss_agg == "seq_mean_token_mean":
        tokens = mask.sum(dim=-1)  # (N,)
        seq_mean = _safe_div(masked.sum(dim=-1), tokens)  # (N,), 0 for empty rows
        return _safe_div(seq_mean.sum(), (tokens > 0).sum().to(values.dtype))
    if loss_agg == "seq_mean_token_sum_norm":
        norm = values.shape[0] * (values.shape[1] if max_tokens is None else max_tokens)
        return masked.sum() / max(norm, 1)
    raise ValueError(f"unknown loss_agg {loss_agg!r}; valid: {', '.join(LOSS_AGGS)}")


def policy_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    clip_low: float = 0.2,
    clip_high: float = 0.2,
    loss_agg: str = "token_mean",
    ratio_level: str = "token",
    dual_clip: float | None = None,
    max_tokens: int | None = None,
    weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """PPO-clip surrogate (Schulman et al. 2017, eq. 7) with asymmetric clipping, returned as a loss to minimise.

        ratio    = exp(logprobs - old_logprobs)                                   # (N, T)
        pg_loss1 = -A * ratio
        pg_loss2 = -A * clamp(ratio, 1 - clip_low, 1 + clip_high)                 # DAPO "clip-higher"
        loss_t   = max(pg_loss1, pg_loss2)
        dual clip (Ye et al. 2020, "Mastering Complex Control in MOBA Games", eq. 5), for A < 0 only:
        loss_t   = min(loss_t, -A * dual_clip)

    `ratio_level="sequence"` is GSPO (Zheng et al. 2025, eq. 7): the ratio of completion i is the length-
    normalised sequence ratio  s_i = exp(mean_t (logprobs - old_logprobs)) over its masked tokens, clipped as
    a whole. It is written in GSPO-token form (eq. 13), s_it = sg[s_i] * exp(logp_it - sg[logp_it]): the value
    is s_i on every token, and with a per-sequence advantage the gradient equals GSPO's for any aggregation.
    The GSPO paper aggregates with "seq_mean_token_mean".

    logprobs (N, T) current policy (carries the gradient); old_logprobs (N, T) the sampling policy;
    advantages (N,), one per completion, broadcast over its tokens; mask (N, T). `weights` (N, T), optional
    and detached: each token's loss is multiplied by it before aggregation (importance weights of an
    off-policy correction, see rlvr.algorithms.offpolicy); the normaliser is still the mask's.

    Returns (loss, stats); stats are detached 0-dim tensors over masked tokens:
      clip_frac   fraction of tokens whose loss is not pg_loss1 (pg_loss2 > pg_loss1, or the dual clip bound)
      ratio_mean, ratio_max   of the ratio used in the loss (0 when there are no tokens)
      approx_kl   mean k3 estimate of KL(pi_old || pi) per token: (r - 1) - log r, with the token ratio r
                  (as CleanRL's `approx_kl`)
    """
    if ratio_level not in RATIO_LEVELS:
        raise ValueError(f"unknown ratio_level {ratio_level!r}; valid: {', '.join(RATIO_LEVELS)}")
    if loss_agg not in LOSS_AGGS:
        raise ValueError(f"unknown loss_agg {loss_agg!r}; valid: {', '.join(LOSS_AGGS)}")
    if not (logprobs.shape == old_logprobs.shape == mask.shape) or logprobs.dim() != 2:
        raise ValueError(
            f"logprobs, old_logprobs and mask must all be (N, T); got {tuple(logprobs.shape)}, "
            f"{tuple(old_logprobs.shape)} and {tuple(mask.shape)}"
        )
    if advantages.shape != logprobs.shape[:1]:
        raise ValueError(f"advantages must be (N,) = ({logprobs.shape[0]},), got {tuple(advantages.shape)}")

    mask = mask.to(logprobs.dtype)
    keep = mask != 0
    zero = torch.zeros_like(logprobs)
    # Padding may hold -inf log-probs; zero the log-ratio there before exp so no inf/NaN enters the graph.
    log_ratio = torch.where(keep, logprobs - old_logprobs, zero)  # (N, T)
    if ratio_level == "token":
        ratio = torch.exp(log_ratio)
    else:
        seq_log_ratio = _safe_div((log_ratio * mask).sum(dim=-1), mask.sum(dim=-1))  # (N,)
        token_grad = torch.where(keep, logprobs - logprobs.detach(), zero)  # value 0, gradient d logp
        ratio = torch.exp(seq_log_ratio.detach().unsqueeze(-1) + token_grad)  # (N, T), value s_i

    adv = advantages.to(logprobs.dtype).unsqueeze(-1)  # (N, 1)
    pg_loss1 = -adv * ratio
    pg_loss2 = -adv * torch.clamp(ratio, 1.0 - clip_low, 1.0 + clip_high)
    pg_losses = torch.maximum(pg_loss1, pg_loss2)
    clipped = pg_loss2 > pg_loss1
    if dual_clip is not None:
        pg_loss3 = -adv * dual_clip
        dual = (adv < 0) & (pg_loss3 < pg_losses)
        pg_losses = torch.where(dual, pg_loss3.expand_as(pg_losses), pg_losses)
        clipped = clipped | dual
    if weights is not None:
        pg_losses = pg_losses * weights.detach().to(pg_losses.dtype)

    loss = aggregate(pg_losses, mask, loss_agg, max_tokens=max_tokens)

    with torch.no_grad():
        tokens = mask.sum()
        token_ratio_kl = kl_estimate(old_logprobs.detach(), logprobs.detach(), "k3")
        ratio_max = (
            torch.where(keep, ratio, torch.full_like(ratio, -torch.inf)).max() if keep.any() else zero.sum()
        )
        stats = {
            "clip_frac": _safe_div(_masked(clipped.to(mask.dtype), mask).sum(), tokens),
            "ratio_mean": _safe_div(_masked(ratio, mask).sum(), tokens),
            "ratio_max": ratio_max,
            "approx_kl": _safe_div(_masked(token_ratio_kl, mask).sum(), tokens),
        }
    return loss, {k: v.detach() for k, v in stats.items()}
