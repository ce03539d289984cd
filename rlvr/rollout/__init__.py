"""Rollout engines behind one protocol (`base.Engine`): the torch engine (CPU and GPU) and vLLM (GPU extra).
`build_engine` picks the one the config names; the loop never knows which it got."""

from __future__ import annotations

import torch

from rlvr.rollout.base import Engine


def build_engine(cfg, model: torch.nn.Module, tokenizer, device=None, dtype: torch.dtype | None = None) -> Engine:
    """The engine `rollout.engine` names, sampling from `model` in the form `rollout.weights` asks for
    (rlvr.rollout.weights; `same`: `dtype`, default the model's own). The torch engine samples from that very
    module when it already computes in `dtype` (a weight sync copies nothing); beside fp32 master weights of
    a bf16 run it samples from a bf16 copy (or an int8 / fp8 one) that each weight sync refreshes. vLLM
    always holds a copy it loads new weights into."""
    from rlvr.rollout.weights import resolve_weights, rollout_model

    dev = torch.device(device) if device is not None else next(model.parameters()).device
    form = resolve_weights(cfg.rollout.weights, dev, cfg.rollout.engine)
    if cfg.rollout.engine == "vllm":
        from rlvr.rollout.vllm_engine import VLLMEngine

        engine = VLLMEngine.from_model(model, tokenizer, cfg.rollout, seed=cfg.train.seed,
                                       dtype=torch.bfloat16 if form == "bf16" else dtype)
        engine.weights = form
        return engine
    from rlvr.rollout.torch_engine import TorchEngine

    return TorchEngine(rollout_model(model, form, dtype), tokenizer.pad_token_id, device,
                       cache=cfg.rollout.kv_cache, compile=cfg.rollout.compile, weights=form,
                       cpu_kernels=cfg.rollout.cpu_kernels, tokenizer=tokenizer, layer_loop=cfg.rollout.layer_loop)


def rollout_form_differs(cfg, model: torch.nn.Module, dtype: torch.dtype | None, device=None) -> bool:
    """Whether `build_engine(cfg, model, dtype=dtype)` would sample from another form of the weights than
    `model`'s own (vLLM's copy, a bf16 copy beside fp32 masters, an int8 or fp8 one), answered without
    building the engine: what a Ray learner asks about the rollout workers' engines, whose copies of its
    weights are in that form (and otherwise hold exactly its values)."""
    from rlvr.rollout.torch_engine import holds_dtype
    from rlvr.rollout.weights import DIFFERS, resolve_weights

    dev = torch.device(device) if device is not None else next(model.parameters()).device
    form = resolve_weights(cfg.rollout.weights, dev, cfg.rollout.engine)
    if cfg.rollout.engine == "vllm" or form in DIFFERS:
        return True
    return not holds_dtype(model, torch.bfloat16 if form == "bf16" else dtype)


def behaviour_differs(engine: Engine, model: torch.nn.Module, top_p: float = 1.0) -> bool:
    """True when the engine does not sample from `model`'s own policy: it holds another copy or form of the
    weights (a bf16 or quantised copy beside fp32 masters, vLLM's), decodes on int8 products of them (`w8a8`,
    which may share `model` itself), or samples from a top-p nucleus. The learner's off-policy correction is then
    on by default (`algorithm.offpolicy_correction: auto`)."""
    from rlvr.rollout.weights import DIFFERS

    return getattr(engine, "model", None) is not model or top_p < 1.0 or getattr(engine, "weights", None) in DIFFERS
