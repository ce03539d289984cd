"""Loading a policy and its tokenizer, choosing dtype and device, and turning problems into prompt ids.

Every policy is a `transformers` causal LM, so every checkpoint rlvr writes loads with
`AutoModelForCausalLM.from_pretrained` and `AutoTokenizer.from_pretrained`.
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase

from rlvr.models.tiny import build_tiny_llama
from rlvr.models.tokenizer import build_char_tokenizer
from rlvr.types import Problem


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """True when the CPU multiplies bf16 natively (AVX-512 BF16 or AMX); elsewhere bf16 is emulated and slow."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def pick_dtype(name: str, device: torch.device, tiny: bool = False) -> torch.dtype:
    """The compute dtype (forward, backward and rollouts). `auto`: bf16 on a GPU or a CPU with native bf16,
    else fp32. Tiny models stay fp32 on CPU, where their small matrices are bound by overhead, not arithmetic."""
    if name != "auto":
        return getattr(torch, name)
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if tiny:
        return torch.float32
    return torch.bfloat16 if cpu_has_native_bf16() else torch.float32


TINY_PARAMS = 20_000_000  # below this a model counts as tiny for `pick_dtype`


def num_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def compute_dtype(cfg, model: torch.nn.Module, device: torch.device | None = None) -> torch.dtype:
    """The dtype `model` (loaded from the `ModelConfig` `cfg`) computes in on `device` (default: where it
    is): `model.dtype`, resolved for this hardware. Training keeps fp32 master weights beside it."""
    device = device or next(model.parameters()).device
    return pick_dtype(cfg.dtype, device, tiny=num_params(model) < TINY_PARAMS)


def load_policy(cfg, seed: int = 0, adapter: str | Path | None = None, training: bool = True,
                master_weights: bool = True) -> tuple[torch.nn.Module, PreTrainedTokenizerBase]:
    """Build or load the policy described by a `ModelConfig`; returns (model, tokenizer) on the device.
    With `cfg.lora_r > 0` the model carries a LoRA adapter: a fresh one, or the one saved at `adapter`.

    Precision (mixed precision as PyTorch AMP and the HF Trainer do it): the compute dtype is
    `compute_dtype(cfg, model)`. For training with `master_weights`, the weights the optimiser steps stay
    fp32 (every weight; with LoRA the adapter only, the frozen base is stored in the compute dtype) and the
    learner runs forward and backward under autocast, so updates far below a bf16 ulp still land. Without
    `master_weights` (pure low precision) or for inference (`training=False`) every weight is stored in
    the compute dtype."""
    device = pick_device(cfg.device)
    if cfg.kind == "tiny":
        tokenizer = build_char_tokenizer()
        model = build_tiny_llama(tokenizer, cfg.hidden_size, cfg.num_layers, cfg.num_heads,
                                 cfg.intermediate_size, cfg.max_position_embeddings, seed=seed)
    else:
        path = Path(cfg.path)
        if not path.exists():
            raise FileNotFoundError(f"model.path: {path} does not exist")
        if cfg.kind == "gguf":
            tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
            model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name)
            model.config.quantization_config = None
        else:
            tokenizer = AutoTokenizer.from_pretrained(path)
            model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    dtype = compute_dtype(cfg, model, device)
    lora = getattr(cfg, "lora_r", 0) > 0
    masters = training and master_weights and not lora
    model.to(device=device, dtype=torch.float32 if masters else dtype)
    if device.type == "cpu":  # short sequences: attention as two products, not SDPA's slow flash kernel
        from rlvr.models.attention import use_short_attention

        use_short_attention(model)
        if getattr(cfg, "keep_host_memory", True):  # no fresh pages faulted in for each step's large tensors
            from rlvr.models.host_memory import keep_freed_memory

            keep_freed_memory()
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if lora:
        from rlvr.models.lora import apply_lora

        model = apply_lora(model, cfg, adapter)
        for p in model.parameters():  # the adapter: fp32 masters (or the compute dtype when forced pure)
            if p.requires_grad:
                p.data = p.data.to(torch.float32 if training and master_weights else dtype)
    return model, tokenizer


def stop_token_ids(tokenizer: PreTrainedTokenizerBase) -> tuple[int, ...]:
    """End-of-sequence, plus `</answer>` when the tokenizer has it as one token (the answer is complete)."""
    ids = {tokenizer.eos_token_id}
    tag = tokenizer.convert_tokens_to_ids("</answer>")
    if isinstance(tag, int) and tag != tokenizer.unk_token_id and tag is not None:
        ids.add(tag)
    return tuple(sorted(i for i in ids if i is not None))


def encode_prompt(problem: Problem, tokenizer: PreTrainedTokenizerBase, system_prompt: str | None = None,
                  response_prefix: str | None = None, tools: list[dict] | None = None) -> list[int]:
    """Prompt token ids: through the chat template when the tokenizer has one, else raw text after BOS.
    `response_prefix` starts the model's reply (R1-Zero starts it with "<think>"); the verifier sees it as
    the start of the completion (`decode_completion(..., prefix=)`). `tools` (function schemas) go to the
    chat template as `tools=`, for templates that describe tools to the model."""
    ids = _encode_prompt(problem, tokenizer, system_prompt, tools)
    if response_prefix:
        ids = ids + tokenizer(response_prefix, add_special_tokens=False)["input_ids"]
    return ids


def _encode_prompt(problem: Problem, tokenizer: PreTrainedTokenizerBase, system_prompt: str | None,
                   tools: list[dict] | None = None) -> list[int]:
    if getattr(tokenizer, "chat_template", None):
        if isinstance(problem.prompt, list):
            messages = list(problem.prompt)
        else:
            messages = [{"role": "user", "content": problem.meta.get("question", problem.prompt)}]
        if system_prompt:
            messages = [{"role": "system", "content": system_prompt}] + messages
        extra = {"tools": tools} if tools else {}
        ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, **extra)
        return list(ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids)
    text = problem.prompt if isinstance(problem.prompt, str) else "\n".join(m["content"] for m in problem.prompt)
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    return bos + tokenizer(text, add_special_tokens=False)["input_ids"]


def decode_completion(tokenizer: PreTrainedTokenizerBase, token_ids: list[int], prefix: str | None = None) -> str:
    """Completion text as verifiers see it: the response prefix (if the prompt ended with one), then the
    sampled tokens with tags kept and end-of-sequence and padding markers removed."""
    text = tokenizer.decode(token_ids, skip_special_tokens=False)
    for tok in (tokenizer.eos_token, tokenizer.pad_token):
        if tok:
            text = text.replace(tok, "")
    return (prefix or "") + text


def save_policy(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, path: str | Path,
                merge: bool = False) -> None:
    """Hugging Face format (safetensors), loadable with `AutoModelForCausalLM.from_pretrained(path)`.
    A LoRA policy is saved as its adapter (which transformers loads onto the base it names), or with
    `merge=True` as a plain model with the adapter folded in."""
    from rlvr.models.lora import is_lora, merged_copy

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    if is_lora(model) and merge:
        model = merged_copy(model)
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
