"""Advantage estimators: one scalar per completion from the verifier's rewards.

Every function takes `rewards` of shape (N,), N = num_groups * group_size, with each prompt's group of
completions contiguous (rows 0..G-1 are group 0), and returns (N,) advantages of the same dtype.

Conventions shared by all estimators:
- std is the *unbiased* (Bessel, divide by n-1) std. TRL's GRPOTrainer and verl both call `Tensor.std()`,
  which is unbiased; DeepSeekMath only says "normalised by the standard deviation". A group or batch of
  one reward has no std: its advantage is 0 (it is also 0 before scaling, so nothing is lost).
- A group (or batch, for batch baselines) whose rewards are all equal gets exactly 0, never NaN and never
  the float residue of `x - mean(x)`: it carries no learning signal.
- `eps` is added to the std before dividing (as TRL does), so a tiny spread cannot blow up.
"""

from __future__ import annotations

import torch

from rlvr.algorithms.names import ESTIMATORS, SCALES


def _groups(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """(N,) -> (num_groups, G), with a readable error when the shapes do not fit."""
    if rewards.dim() != 1:
        raise ValueError(f"rewards must be 1-D (N,), got shape {tuple(rewards.shape)}")
    if group_size < 1 or rewards.numel() % group_size != 0:
        raise ValueError(
            f"rewards has {rewards.numel()} entries, not a whole number of groups of group_size={group_size}"
        )
    return rewards.view(-1, group_size)


def _center(x: torch.Tensor) -> torch.Tensor:
    """x - mean(x) along the last dim; exactly 0 where every entry along that dim is equal."""
    if x.numel() == 0:
        return x.clone()
    centered = x - x.mean(dim=-1, keepdim=True)
    constant = x.amax(dim=-1, keepdim=True) == x.amin(dim=-1, keepdim=True)
    return torch.where(constant, torch.zeros_like(centered), centered)


def _std(x: torch.Tensor) -> torch.Tensor:
    """Unbiased std along the last dim (keepdim); 0 when there is a single entry (instead of NaN)."""
    if x.shape[-1] < 2:
        return torch.zeros_like(x[..., :1])
    return x.std(dim=-1, unbiased=True, keepdim=True)


def grpo_advantages(
    rewards: torch.Tensor, group_size: int, scale: str = "group", eps: float = 1e-6
) -> torch.Tensor:
    """GRPO outcome advantage (Shao et al. 2024, DeepSeekMath, sec. 4.1.2):

        A_i = (r_i - mean(r_group)) / (std + eps)

    `scale="group"`: std of the group's rewards (the paper); `"batch"`: std of all N rewards (TRL's
    `scale_rewards="batch"`, Hu et al. 2025); `"none"`: not divided (then equal to Dr. GRPO).
    """
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; valid: {', '.join(SCALES)}")
    grouped = _groups(rewards, group_size)  # (num_groups, G)
    centered = _center(grouped)
    if scale == "group":
        centered = centered / (_std(grouped) + eps)
    elif scale == "batch":
        centered = centered / (_std(rewards.view(1, -1)) + eps)
    return centered.view(-1)


def dr_grpo_advantages(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """Dr. GRPO (Liu et al. 2025, "Understanding R1-Zero-Like Training", eq. 3): A_i = r_i - mean(r_group).

    No std division: dividing by the group std up-weights questions that are nearly all right or all wrong.
    """
    return _center(_groups(rewards, group_size)).view(-1)


def rloo_advantages(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """RLOO leave-one-out baseline (Kool et al. 2019; Ahmadian et al. 2024, "Back to Basics", eq. 6):

        A_i = r_i - 1/(G-1) * sum_{j != i} r_j          (= G/(G-1) * (r_i - mean(r_group)))

    G = 1 has no other sample to compare with: A = 0.
    """
    grouped = _groups(rewards, group_size)  # (num_groups, G)
    if group_size < 2:
        return torch.zeros_like(rewards)
    return (_center(grouped) * (group_size / (group_size - 1))).view(-1)


def reinforce_pp_advantages(rewards: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """REINFORCE++ (Hu et al. 2025, eq. 9-10): global batch normalisation, no per-prompt baseline.

        A_i = (r_i - mean(r_batch)) / (std(r_batch) + eps)

    The paper folds a per-token KL penalty into r before this step; here `rewards` is whatever the caller
    passes (with `kl_in_reward` the trainer folds the KL in first, see `kl.kl_penalized_rewards`).
    Groups play no role.
    """
    batch = rewards.view(1, -1)  # (1, N)
    return (_center(batch) / (_std(batch) + eps)).view(-1)


def reinforce_advantages(rewards: torch.Tensor) -> torch.Tensor:
    """REINFORCE with a mean baseline (Williams 1992): A_i = r_i - mean(r_batch), not scaled."""
    return _center(rewards.view(1, -1)).view(-1)


def compute_advantages(
    rewards: torch.Tensor, group_size: int, estimator: str = "grpo", scale: str = "group", eps: float = 1e-6
) -> torch.Tensor:
    """(N,) rewards -> (N,) advantages with the named estimator (see the functions above).

    `scale` only affects "grpo" (group | batch | none). "dr_grpo" never divides by a std, "reinforce_pp"
    always divides by the batch std, "rloo" and "reinforce" are never scaled. `group_size` is checked for
    every estimator, so a batch that is not whole groups is refused even where groups play no role.
    """
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; valid: {', '.join(SCALES)}")
    _groups(rewards, group_size)
    if estimator == "grpo":
        return grpo_advantages(rewards, group_size, scale=scale, eps=eps)
    if estimator == "dr_grpo":
        return dr_grpo_advantages(rewards, group_size)
    if estimator == "rloo":
        return rloo_advantages(rewards, group_size)
    if estimator == "reinforce_pp":
        return reinforce_pp_advantages(rewards, eps=eps)
    if estimator == "reinforce":
        return reinforce_advantages(rewards)
    raise ValueError(f"unknown advantage estimator {estimator!r}; valid: {', '.join(ESTIMATORS)}")
