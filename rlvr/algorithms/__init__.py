"""The math of RL on verifiable rewards: advantages, policy losses, KL, entropy, DAPO tricks, presets.

Pure tensor functions, no I/O and no knowledge of the trainer.
"""

from rlvr.algorithms.advantages import (
    compute_advantages,
    dr_grpo_advantages,
    grpo_advantages,
    reinforce_advantages,
    reinforce_pp_advantages,
    rloo_advantages,
)
from rlvr.algorithms.dapo import nonconstant_groups, overlong_penalty
from rlvr.algorithms.entropy import entropy_from_logits, token_logprobs
from rlvr.algorithms.kl import kl_estimate
from rlvr.algorithms.losses import aggregate, policy_loss
from rlvr.algorithms.presets import PRESETS, apply_preset

__all__ = [
    "PRESETS",
    "aggregate",
    "apply_preset",
    "compute_advantages",
    "dr_grpo_advantages",
    "entropy_from_logits",
    "grpo_advantages",
    "kl_estimate",
    "nonconstant_groups",
    "overlong_penalty",
    "policy_loss",
    "reinforce_advantages",
    "reinforce_pp_advantages",
    "rloo_advantages",
    "token_logprobs",
]
