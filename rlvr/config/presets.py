"""Named algorithm presets, as data: each sets the `algorithm:` config fields the way its paper does.

`algorithm.name: dapo` in a YAML (or `--set algorithm.name=dapo`) fills every field below that the user did
not set; anything set explicitly wins. Keys are the fields of `rlvr.config.schema.AlgorithmConfig` (this
module does not import it: the schema takes its list of names from `PRESETS`).
"""

from __future__ import annotations

import copy
from typing import Any

# What every preset shares unless it says otherwise: PPO's symmetric 0.2 clip, one update per rollout batch
# (on-policy, as DeepSeekMath's GRPO), no KL, no entropy bonus, none of DAPO's reward-side tricks.
_COMMON: dict[str, object] = {
    "scale_rewards": "group",
    "ratio_level": "token",
    "clip_low": 0.2,
    "clip_high": 0.2,
    "dual_clip": None,
    "kl_coef": 0.0,
    "kl_estimator": "k3",
    "kl_in_reward": False,
    "ppo_epochs": 1,
    "entropy_coef": 0.0,
    "dynamic_sampling": False,
    "max_sampling_draws": 3,
    "overlong_buffer": 0,
    "overlong_penalty": 1.0,
    "mask_truncated": False,
    # the engine/learner gap (rlvr.algorithms.offpolicy) is corrected whenever the engine samples from another
    # form than the learner; not a paper setting, so every preset shares it
    "offpolicy_correction": "auto",
    "tis_cap": 2.0,
    "seq_mask_cap": 2.0,
    "seq_mask_reduce": "mean",
    "screening": False,  # prompt screening (rlvr.screening) is no preset's own: turn it on by hand
    "screen_samples": 4,
    "screen_rounds": 4,
    "screen_oversample": 2,
}


def _preset(**fields: object) -> dict[str, object]:
    return {**_COMMON, **fields}


PRESETS: dict[str, dict[str, object]] = {
    # Shao et al. 2024, DeepSeekMath (GRPO): group-std advantages, per-sequence token mean (eq. 3), k3 KL.
    # The paper uses kl_coef 0.04; current RLVR practice (DAPO, Dr. GRPO, TRL's default beta=0) drops it.
    "grpo": _preset(advantage="grpo", scale_rewards="group", loss_agg="seq_mean_token_mean"),
    # Liu et al. 2025, "Understanding R1-Zero-Like Training": no std scaling and a constant normaliser
    # instead of the per-sequence length, removing GRPO's difficulty and length biases; no KL.
    "dr_grpo": _preset(advantage="dr_grpo", scale_rewards="none", loss_agg="seq_mean_token_sum_norm"),
    # Yu et al. 2025, DAPO: clip-higher (0.2 / 0.28), token-level mean, dynamic sampling, soft overlong
    # punishment, no KL. The paper's buffer is 4096 of 20480 tokens; the right size is task dependent
    # (1/4..1/8 of the length limit), 8 tokens suits the short completions of the built-in tasks
    # (max_new_tokens 48): raise it with the length limit.
    "dapo": _preset(
        advantage="grpo",
        scale_rewards="group",
        loss_agg="token_mean",
        clip_low=0.2,
        clip_high=0.28,
        dynamic_sampling=True,
        overlong_buffer=8,
        overlong_penalty=1.0,
    ),
    # Ahmadian et al. 2024, "Back to Basics" (RLOO): leave-one-out baseline, no std. The objective is
    # A_i * log pi(y_i), a sum over the completion's tokens; seq_mean_token_sum_norm is that sum up to a
    # constant. The paper's KL-in-reward is an RLHF safeguard; with a verifier we leave it at 0.
    "rloo": _preset(advantage="rloo", scale_rewards="none", loss_agg="seq_mean_token_sum_norm"),
    # Hu et al. 2025, REINFORCE++: batch mean and batch-std normalisation, PPO clip, token-level loss.
    # Its KL is a per-token k2 penalty folded into the reward: estimator and placement are set so that a
    # positive kl_coef reproduces it; kl_coef stays 0 like every other preset here.
    "reinforce_pp": _preset(
        advantage="reinforce_pp",
        scale_rewards="batch",
        loss_agg="token_mean",
        kl_estimator="k2",
        kl_in_reward=True,
    ),
    # Zheng et al. 2025, GSPO: length-normalised sequence ratio, clipped as a whole with the paper's tiny
    # ranges (3e-4 / 4e-4), group-std advantages, per-sequence mean; no KL.
    "gspo": _preset(
        advantage="grpo",
        scale_rewards="group",
        loss_agg="seq_mean_token_mean",
        ratio_level="sequence",
        clip_low=3e-4,
        clip_high=4e-4,
    ),
    # Williams 1992, REINFORCE with a batch-mean baseline: A_i * sum_t log pi(y_it), hence the token-sum loss.
    "reinforce": _preset(advantage="reinforce", scale_rewards="none", loss_agg="seq_mean_token_sum_norm"),
}


def apply_preset(data: dict[str, Any]) -> dict[str, Any]:
    """Fill `data["algorithm"]` from the preset named by `data["algorithm"]["name"]` (default "grpo").

    `data` is the raw nested config dict (YAML + overrides). Returns a deep copy; `data` is not changed.
    Keys already in `data["algorithm"]` win. A missing section is created (the grpo preset); an unknown
    name or a section that is not a mapping is left as it is, for config validation to report.
    """
    out = copy.deepcopy(data)
    section = out.setdefault("algorithm", {})
    if not isinstance(section, dict):
        return out
    name = section.get("name", "grpo")
    if not isinstance(name, str) or name not in PRESETS:
        return out
    for key, value in PRESETS[name].items():
        section.setdefault(key, copy.deepcopy(value))
    return out
