"""The policy of an RL run, built from its config: the model to train, its tokenizer and the frozen KL
reference, fresh or from a checkpoint. One builder for the single-process trainer, the Ray driver and
every learner replica, so they all start from the same weights."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

from rlvr.config import Config
from rlvr.models.loading import compute_dtype, load_policy
from rlvr.models.lora import is_lora


def build_policy(cfg: Config, checkpoint: Path | None, with_reference: bool = True):
    """(model, tokenizer, ref_model) of a run: from config, or the weights (or LoRA adapter) of `checkpoint`.
    The model holds the trainable weights in fp32 (master weights) unless `train.master_weights` is off.
    The KL reference is the starting policy in the compute dtype, rebuilt from config on resume (checkpoints
    do not store it); with LoRA it is the policy with its adapter off, so `ref_model` is None."""
    model_cfg, adapter = cfg.model, None
    if checkpoint is not None and cfg.model.lora_r > 0:  # the base from config, the adapter from the checkpoint
        adapter = checkpoint / "model"
    elif checkpoint is not None:
        model_cfg = dataclasses.replace(cfg.model, kind="hf", path=str(checkpoint / "model"))
    model, tokenizer = load_policy(model_cfg, seed=cfg.train.seed, adapter=adapter,
                                   master_weights=cfg.train.master_weights)
    ref_model = None
    if with_reference and cfg.algorithm.kl_coef > 0 and not is_lora(model):
        dtype = compute_dtype(cfg.model, model)
        ref = load_policy(cfg.model, seed=cfg.train.seed, training=False)[0] if checkpoint is not None \
            else copy.deepcopy(model).to(dtype)
        ref_model = ref.eval().requires_grad_(False)
    return model, tokenizer, ref_model
