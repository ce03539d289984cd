"""Rollout engines behind one protocol (`base.Engine`): the torch engine (CPU and GPU) and vLLM (GPU extra).
`build_engine` picks the one the config names; the loop never knows which it got."""

from __future__ import annotations

import torch

from rlvr.rollout.base import Engine


def build_engine(cfg, model: torch.nn.Module, tokenizer, device=None) -> Engine:
    """The engine `rollout.engine` names, sampling from `model`: the torch engine samples from that very
    module (a weight sync copies nothing), vLLM from a copy it loads new weights into."""
    if cfg.rollout.engine == "vllm":
        from rlvr.rollout.vllm_engine import VLLMEngine

        return VLLMEngine.from_model(model, tokenizer, cfg.rollout, seed=cfg.train.seed)
    from rlvr.rollout.torch_engine import TorchEngine

    return TorchEngine(model, tokenizer.pad_token_id, device, cache=cfg.rollout.kv_cache, compile=cfg.rollout.compile)
