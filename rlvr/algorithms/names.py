"""The names each algorithm switch takes: one list per switch, read by the functions that dispatch on it
and by the config schema that checks it. No torch here, so loading a config stays light."""

ESTIMATORS = ("grpo", "dr_grpo", "rloo", "reinforce_pp", "reinforce")  # advantages.compute_advantages
SCALES = ("group", "batch", "none")  # reward scaling of the group-relative estimators
LOSS_AGGS = ("token_mean", "seq_mean_token_mean", "seq_mean_token_sum_norm")  # losses.aggregate
RATIO_LEVELS = ("token", "sequence")  # PPO's per-token ratio, or GSPO's per-sequence one
KL_ESTIMATORS = ("k1", "k2", "k3")  # kl.kl_estimate
OFFPOLICY_MODES = ("auto", "on", "off")  # auto: on whenever the engine samples from another form than the learner
SEQ_REDUCES = ("mean", "sum")  # sequence-mask ratio: geometric mean or product over the tokens
