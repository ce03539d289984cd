"""Per-token KL estimators (Schulman 2020, "Approximating KL Divergence", http://joschu.net/blog/kl-approx.html).

With samples x ~ pi and log-ratio  log_r = log pi_ref(x) - log pi(x):

    k1 = -log_r                      unbiased, high variance, can be negative
    k2 = 0.5 * log_r^2               biased (low for close policies), always >= 0
    k3 = exp(log_r) - log_r - 1      unbiased, always >= 0 (GRPO's choice, DeepSeekMath eq. 4)

The penalty goes either into the loss (the learner adds kl_coef * the aggregated estimate) or, with
`kl_in_reward`, into the reward before advantages are computed (`kl_penalized_rewards`).
"""

from __future__ import annotations

import torch

from rlvr.algorithms.names import KL_ESTIMATORS


def kl_estimate(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, estimator: str = "k3") -> torch.Tensor:
    """Per-token estimate of KL(pi || pi_ref) from tokens sampled from pi; same shape as the inputs, e.g. (N, T).

    `logprobs` are log pi of the sampled tokens, `ref_logprobs` log pi_ref of the same tokens. No masking
    and no clamping: callers mask padding and may clamp k3 (exp overflows for log-ratios above ~88 in float32).
    """
    log_r = ref_logprobs - logprobs
    if estimator == "k1":
        return -log_r
    if estimator == "k2":
        return 0.5 * log_r.pow(2)
    if estimator == "k3":
        return torch.exp(log_r) - log_r - 1.0
    raise ValueError(f"unknown KL estimator {estimator!r}; valid: {', '.join(KL_ESTIMATORS)}")


def kl_penalized_rewards(rewards: torch.Tensor, logprobs: torch.Tensor, ref_logprobs: torch.Tensor,
                         completion_mask: torch.Tensor, kl_coef: float, estimator: str = "k3") -> torch.Tensor:
    """Rewards with the KL penalty folded in, one sum per sequence (`kl_in_reward`):

        r_i' = r_i - kl_coef * sum_t mask_it * k(logp_it, ref_it)

    rewards (N,); logprobs, ref_logprobs, completion_mask (N, T): the sampling log-probs of the completion
    tokens, the reference policy's log-probs of the same tokens, and 1 on completion tokens. The penalised
    rewards then go through the advantage estimator like any reward, and the loss takes no KL term.
    REINFORCE++ (Hu et al. 2025, eq. 7-9) puts the penalty on each token's reward, so that token t's return
    holds the KL of tokens t.. only; folding the whole sum into the sequence reward gives every token the
    sum from the first token on, the return of the whole completion.
    """
    seq_kl = (kl_estimate(logprobs, ref_logprobs, estimator) * completion_mask).sum(-1)  # (N,)
    return rewards - kl_coef * seq_kl
