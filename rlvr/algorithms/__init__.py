"""The math of RL on verifiable rewards: pure tensor functions, no I/O and no knowledge of the trainer.

- `advantages`: GRPO, Dr. GRPO, RLOO, REINFORCE++ and REINFORCE baselines (`compute_advantages`);
- `losses`: PPO-clip (asymmetric, dual clip) and GSPO sequence ratios, token/sequence aggregation;
- `kl`: the k1/k2/k3 estimators, and the KL penalty folded into the reward;
- `entropy`: entropy and chunked log-probs from logits;
- `dapo`: dynamic sampling's group filter and overlong shaping;
- `names`: the names each switch takes (shared with the config schema; no torch).

Import from the modules (`from rlvr.algorithms.advantages import compute_advantages`): this package
imports nothing itself, so reading a config (which needs `names`) does not load torch. The presets that
set these switches the way each paper does are configuration data: `rlvr.config.presets`.
"""
