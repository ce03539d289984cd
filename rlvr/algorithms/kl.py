"""Per-token KL estimators (Schulman 2020, "Approximating KL Divergence", http://joschu.net/blog/kl-approx.html).

With samples x ~ pi and log-ratio  log_r = log pi_ref(x) - log pi(x):

    k1 = -log_r                      unbiased, high variance, can be negative
    k2 = 0.5 * log_r^2               biased (low for close policies), always >= 0
    k3 = exp(log_r) - log_r - 1      unbiased, always >= 0 (GRPO's choice, DeepSeekMath eq. 4)
"""

from __future__ import annotations

import torch

KL_ESTIMATORS = ("k1", "k2", "k3")


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
