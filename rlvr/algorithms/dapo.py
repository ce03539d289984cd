"""DAPO's reward-side tricks (Yu et al. 2025, "DAPO: An Open-Source LLM Reinforcement Learning System at Scale").

Clip-higher and the token-mean loss live in `losses.py`; here are the soft overlong punishment and the
group filter behind dynamic sampling.
"""

from __future__ import annotations

import torch


def overlong_penalty(
    lengths: torch.Tensor, max_new_tokens: int, buffer: int, penalty: float = 1.0
) -> torch.Tensor:
    """Soft overlong punishment (DAPO eq. 13), added to the task reward; (N,) lengths in tokens -> (N,) float.

        R_length(L) = 0                                        if L <= max - buffer
                    = (max - buffer - L) / buffer * penalty     if max - buffer < L <= max
                    = -penalty                                  if L > max

    The penalty ramps linearly from 0 to -penalty over the last `buffer` tokens before the limit.
    `buffer=0` turns it off (all zeros).
    """
    lengths = lengths.to(torch.promote_types(lengths.dtype, torch.float32))
    if buffer <= 0:
        return torch.zeros_like(lengths)
    start = max_new_tokens - buffer
    ramp = (start - lengths) / buffer * penalty
    out = torch.where(lengths <= start, torch.zeros_like(lengths), ramp)
    return torch.where(lengths > max_new_tokens, torch.full_like(lengths, -penalty), out)


def nonconstant_groups(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """(N,) rewards in contiguous groups of `group_size` -> (num_groups,) bool, True where not all rewards are equal.

    DAPO dynamic sampling (eq. 11) keeps only these groups: an all-correct or all-wrong group has zero
    advantage under group baselines and only dilutes the batch. A group of one is always constant.
    """
    if rewards.dim() != 1 or group_size < 1 or rewards.numel() % group_size != 0:
        raise ValueError(
            f"rewards of shape {tuple(rewards.shape)} is not a whole number of groups of group_size={group_size}"
        )
    grouped = rewards.view(-1, group_size)  # (num_groups, G)
    return grouped.amax(dim=-1) != grouped.amin(dim=-1)
