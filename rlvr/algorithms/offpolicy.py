"""Off-policy corrections: the rollout engine samples from a behaviour policy mu that is not exactly the learner's
policy (low-precision or quantised rollout weights, another kernel's numerics, top-p, stale weights in async
runs), so the policy gradient is reweighted by importance sampling.

Three policies per token, all log-probs of the sampled tokens, (N, T):
    behaviour  mu          what the engine sampled from (its returned log-probs, after temperature and top-p)
    proximal   pi_prox     the learner's weights before this step's update, detached (the learner's own
                           forward: at the first optimiser pass it is the current log-probs, detached)
    current    pi_theta    the learner's weights now (carries the gradient)

- Truncated importance sampling (TIS; Yao, Liu, Zhang, Gao, Jiao, Zhang, Shen 2025, "Your Efficient RL
  Framework Secretly Brings You Off-Policy RL Training"): per token  w_t = min(pi_prox / mu, C).
- Sequence masking (TRL's `vllm_importance_sampling_mode="sequence_mask"`; the masking idea of IcePop, Ling
  Team 2025, "Every Step Evolves: Scaling RL for Trillion-Scale Thinking Model", applied per sequence): a
  completion whose ratio leaves [1/C_seq, C_seq] is dropped from the loss. Its ratio is the geometric mean
  exp(mean_t log(pi_prox / mu)) (`reduce="mean"`, the default: comparable across lengths) or TRL's product
  exp(sum_t log(pi_prox / mu)) (`reduce="sum"`).
- Decoupled PPO objective (Hilton, Cobbe, Schulman 2021, "Batch size-invariance for policy optimization";
  AReaL, Fu et al. 2025, eq. 5): clip against the proximal policy and weight by proximal / behaviour,
      loss_t = w_t * max(-A * u_t, -A * clip(u_t, 1 - clip_low, 1 + clip_high)),   u_t = pi_theta / pi_prox
  so a stale or low-precision sample moves the policy no further than the trust region around the learner's
  own weights, and its weight corrects for where it was sampled from. With one optimiser pass u_t = 1 in value
  and the gradient is  -A * w_t * grad log pi_theta: TIS-weighted GRPO.
"""

from __future__ import annotations

import math

import torch

from rlvr.algorithms.kl import kl_estimate
from rlvr.algorithms.losses import policy_loss
from rlvr.algorithms.names import SEQ_REDUCES


def _log_ratio(proximal_logprobs: torch.Tensor, behaviour_logprobs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """log(pi_prox / mu) on masked tokens, 0 elsewhere (padding may hold anything, -inf included). (N, T)"""
    keep = mask != 0
    return torch.where(keep, proximal_logprobs - behaviour_logprobs, torch.zeros_like(proximal_logprobs))


def truncated_is_weights(proximal_logprobs: torch.Tensor, behaviour_logprobs: torch.Tensor, mask: torch.Tensor,
                         cap: float) -> tuple[torch.Tensor, torch.Tensor]:
    """TIS weights  w_t = min(pi_prox / mu, cap)  (N, T), detached, 0 off the mask; and which tokens were
    truncated (ratio above `cap`), (N, T) bool. `cap` >= 1; `math.inf` only reweights."""
    log_r = _log_ratio(proximal_logprobs.detach(), behaviour_logprobs.detach(), mask)
    log_cap = math.log(cap) if math.isfinite(cap) else math.inf
    truncated = (log_r > log_cap) & (mask != 0)
    weights = torch.exp(torch.clamp(log_r, max=log_cap)) * (mask != 0)  # clamp before exp: no overflow
    return weights, truncated


def sequence_keep(proximal_logprobs: torch.Tensor, behaviour_logprobs: torch.Tensor, mask: torch.Tensor,
                  cap: float | None, reduce: str = "mean") -> torch.Tensor:
    """(N,) bool: True where the completion's ratio lies in [1/cap, cap] (always True with `cap=None` and for
    rows without tokens). The ratio is exp(mean_t log(pi_prox/mu)) with `reduce="mean"` (geometric mean) or
    exp(sum_t log(pi_prox/mu)) with `reduce="sum"` (the product, as TRL's sequence mask)."""
    if reduce not in SEQ_REDUCES:
        raise ValueError(f"unknown reduce {reduce!r}; valid: {', '.join(SEQ_REDUCES)}")
    n = mask.shape[0]
    if cap is None:
        return torch.ones(n, dtype=torch.bool, device=mask.device)
    log_r = _log_ratio(proximal_logprobs.detach(), behaviour_logprobs.detach(), mask)
    seq = log_r.sum(-1)  # (N,)
    if reduce == "mean":
        seq = seq / mask.sum(-1).clamp(min=1).to(seq.dtype)
    return seq.abs() <= math.log(cap)


def offpolicy_weights(proximal_logprobs: torch.Tensor, behaviour_logprobs: torch.Tensor, mask: torch.Tensor, *,
                      tis_cap: float, seq_mask_cap: float | None, seq_reduce: str = "mean"
                      ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Per-token weights (N, T) = TIS weight x sequence keep (0 for a masked sequence), detached, and their
    diagnostics as 0-dim tensors:
      kl              mean k3 estimate per token of KL(mu || pi_prox): the engine/learner gap
      truncated_frac  share of masked tokens whose TIS weight was capped
      masked_frac     share of the completions with tokens that the sequence mask dropped
    A masked sequence's tokens keep their place in the loss normaliser (weight 0, mask unchanged), so the
    loss of a micro-batch stays its exact share of the batch's."""
    weights, truncated = truncated_is_weights(proximal_logprobs, behaviour_logprobs, mask, tis_cap)
    keep = sequence_keep(proximal_logprobs, behaviour_logprobs, mask, seq_mask_cap, seq_reduce)  # (N,)
    weights = weights * keep.unsqueeze(-1).to(weights.dtype)
    m = (mask != 0).to(weights.dtype)
    tokens = m.sum().clamp(min=1)
    rows = (m.sum(-1) > 0)
    with torch.no_grad():
        kl = kl_estimate(behaviour_logprobs, proximal_logprobs, "k3")  # samples from mu
        kl = torch.where(mask != 0, kl, torch.zeros_like(kl))
        stats = {
            "kl": kl.sum() / tokens,
            "truncated_frac": truncated.to(m.dtype).sum() / tokens,
            "masked_frac": (rows & ~keep).sum().to(m.dtype) / rows.sum().clamp(min=1).to(m.dtype),
        }
    return weights.detach(), stats


def decoupled_policy_loss(logprobs: torch.Tensor, proximal_logprobs: torch.Tensor, behaviour_logprobs: torch.Tensor,
                          advantages: torch.Tensor, mask: torch.Tensor, *, tis_cap: float = 2.0,
                          seq_mask_cap: float | None = 2.0, seq_reduce: str = "mean", **clip_kwargs
                          ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The decoupled PPO objective (module docstring) with TIS weights and the sequence mask:

        u_t    = exp(logprobs - proximal_logprobs)                    # clipped as PPO's ratio
        w_t    = min(exp(proximal_logprobs - behaviour_logprobs), tis_cap) * keep_i
        loss_t = w_t * max(-A_i * u_t, -A_i * clip(u_t, 1 - clip_low, 1 + clip_high))

    aggregated by `policy_loss` (`clip_kwargs`: clip_low, clip_high, loss_agg, ratio_level, dual_clip,
    max_tokens). Returns (loss, stats): policy_loss's stats (of u) and `offpolicy_weights`' under
    `offpolicy/`."""
    weights, ostats = offpolicy_weights(proximal_logprobs, behaviour_logprobs, mask, tis_cap=tis_cap,
                                        seq_mask_cap=seq_mask_cap, seq_reduce=seq_reduce)
    loss, stats = policy_loss(logprobs, proximal_logprobs.detach(), advantages, mask, weights=weights, **clip_kwargs)
    return loss, {**stats, **{f"offpolicy/{k}": v for k, v in ostats.items()}}
