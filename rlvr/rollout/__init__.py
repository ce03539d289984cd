"""Rollout engines behind one protocol (`base.Engine`): the torch engine (CPU and GPU) and vLLM (GPU extra).
`build_engine` picks the one the config names; the loop never knows which it got."""

from __future__ import annotations

import torch

from rlvr.rollout.base import Engine


def build_engine(cfg, model: torch.nn.Module, tokenizer, device=None, dtype: torch.dtype | None = None) -> Engine:
    """The engine `rollout.engine` names, sampling from `model` in `dtype` (default: the model's own). The
    torch engine samples from that very module when it already computes in `dtype` (a weight sync copies
    nothing); beside fp32 master weights of a bf16 run it samples from a bf16 copy that each weight sync
    refreshes. vLLM always holds a copy it loads new weights into."""
    if cfg.rollout.engine == "vllm":
        from rlvr.rollout.vllm_engine import VLLMEngine

        return VLLMEngine.from_model(model, tokenizer, cfg.rollout, seed=cfg.train.seed, dtype=dtype)
    from rlvr.rollout.torch_engine import TorchEngine, inference_copy

    return TorchEngine(inference_copy(model, dtype), tokenizer.pad_token_id, device, cache=cfg.rollout.kv_cache,
                       compile=cfg.rollout.compile)
