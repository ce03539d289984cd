"""LoRA through PEFT: adapters on the policy, the base (adapter off) as the KL reference, saving merged or
as an adapter.

With LoRA the reference policy is the same module with its adapter switched off, so KL costs no second copy
of the weights. A checkpoint holds only the adapter; resuming rebuilds the base from `model` config and loads
the adapter onto it.
"""

from __future__ import annotations

import contextlib
import copy
from pathlib import Path

import torch


def is_lora(model: torch.nn.Module) -> bool:
    return hasattr(model, "peft_config") and hasattr(model, "disable_adapter")


def transformers_model(model: torch.nn.Module) -> torch.nn.Module:
    """The transformers model inside a PEFT wrapper (which passes keyword arguments through to it, and whose
    LoRA layers sit inside this model's modules); `model` itself when it is not wrapped."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def apply_lora(model: torch.nn.Module, cfg, adapter: str | Path | None = None) -> torch.nn.Module:
    """Wrap `model` with a trainable LoRA adapter from `cfg` (a ModelConfig), or load `adapter` (a directory
    saved by `save_policy`) onto it."""
    from peft import LoraConfig, PeftModel, get_peft_model

    if adapter is not None:
        model = PeftModel.from_pretrained(model, str(adapter), is_trainable=True)
    else:
        targets = cfg.lora_targets.strip()
        target_modules = targets if targets == "all-linear" else [t.strip() for t in targets.split(",") if t.strip()]
        config = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                            target_modules=target_modules, task_type="CAUSAL_LM")
        try:
            model = get_peft_model(model, config)
        except ValueError as e:
            raise ValueError(f"model.lora_targets: {e}") from e
    if getattr(cfg, "gradient_checkpointing", False):
        model.enable_input_require_grads()
    return model


def reference_off(model: torch.nn.Module):
    """Context in which `model` computes the reference policy: the adapter switched off."""
    return model.disable_adapter() if is_lora(model) else contextlib.nullcontext()


def merged_copy(model: torch.nn.Module) -> torch.nn.Module:
    """A plain transformers model with the adapter folded into the weights (the trained one is untouched)."""
    return copy.deepcopy(model).merge_and_unload()

