"""The form of the weights the torch engine samples from (`rollout.weights`), beside the learner's own.

- `same`: the learner's compute dtype (today's default: a bf16 copy beside fp32 masters on bf16 hardware, the
  learner's very module where it already computes in its weights' dtype, so a sync copies nothing);
- `bf16`: a bf16 copy whatever the learner computes in (e.g. beside an fp32 learner on an AVX2 CPU);
- `int8`: weight-only int8 linear layers (torchao `Int8WeightOnlyConfig`, per-channel scales), any device;
- `fp8`: weight-only fp8 (e4m3) linear layers (torchao `Float8WeightOnlyConfig`), GPUs with fp8 (sm89+);
- `w8a8`: CPU decode on int8 weights and int8 activations (each row quantised as its product runs) on oneDNN's
  int8 kernels (VNNI, AMX-INT8; rlvr.rollout.cpu_kernels): the engine holds the `same` copy, which runs the
  prefill, and its packed int8 weights run the decode steps. Half the bytes of bf16 weights a decode step reads.

The engine then samples from a policy a little different from the learner's; the learner corrects for it
(rlvr.algorithms.offpolicy, on by default whenever the forms differ). Quantised forms are re-quantised from
the learner's state at every weight sync. `auto` keeps `same` until a cheaper form is measured to pay: on a
2-core AVX-512-BF16 CPU torchao's int8 weight-only products ran slower than bf16 (issue 15); on a 2-core Xeon
with AMX, w8a8's products took 0.65x bf16's time but its compiled decode gained only 1.16x at 16 rows and nothing
at 64, at about 14x the engine/learner KL and a 1 s repack a sync; and fp8 has not been measured on a GPU here yet.
"""

from __future__ import annotations

import copy

import torch

from rlvr.extras import import_extra

QUANTIZED = ("int8", "fp8")  # torchao forms: the engine's model itself is quantised, re-quantised at a sync
DIFFERS = (*QUANTIZED, "w8a8")  # forms that sample from other numbers than the learner's weights, whatever the copy


def fp8_supported(device: torch.device) -> bool:
    """fp8 matrix products exist on this device: CUDA with compute capability 8.9 or newer (Ada, Hopper, ...)."""
    return device.type == "cuda" and torch.cuda.is_available() and torch.cuda.get_device_capability(device) >= (8, 9)


def resolve_weights(form: str, device: torch.device, engine: str = "torch") -> str:
    """The concrete form `rollout.weights` asks for on `device` (`auto` -> `same`, see the module docstring),
    or a ValueError that names the field when this hardware or engine cannot do it."""
    if form == "auto":
        return "same"
    if form in DIFFERS and engine != "torch":
        raise ValueError(f"rollout.weights: {form} is applied by the torch engine; with rollout.engine: {engine} "
                         f"use same or bf16")
    if form == "fp8" and not fp8_supported(device):
        raise ValueError(f"rollout.weights: fp8 needs a CUDA GPU with fp8 (compute capability 8.9 or newer: Ada, "
                         f"Hopper, Blackwell); this run is on {device.type}: use same, bf16 or int8")
    if form == "w8a8":
        from rlvr.rollout.cpu_kernels import packs_int8

        if device.type != "cpu" or not packs_int8():
            raise ValueError(f"rollout.weights: w8a8 runs on oneDNN's int8 CPU kernels, which this run "
                             f"({device.type}) {'lacks' if device.type == 'cpu' else 'does not use'}: use same, "
                             f"bf16 or int8")
    if form in QUANTIZED:
        import_extra("torchao", f"rollout.weights: {form}", "quant")
    return form


def _quantize(module: torch.nn.Module, form: str) -> None:
    """Quantise every linear layer of `module` (the module itself if it is one) in place."""
    from torchao.quantization import Float8WeightOnlyConfig, Int8WeightOnlyConfig, quantize_

    quantize_(module, Int8WeightOnlyConfig() if form == "int8" else Float8WeightOnlyConfig())


def rollout_model(model: torch.nn.Module, form: str, compute_dtype: torch.dtype | None) -> torch.nn.Module:
    """The module the engine samples from, in `form` (never the learner's module when it must be converted)."""
    from rlvr.rollout.torch_engine import inference_copy

    if form in ("same", "w8a8"):  # w8a8: the engine packs its own int8 weights for decode (TorchEngine)
        return inference_copy(model, compute_dtype)
    if form in QUANTIZED and hasattr(model, "get_base_model"):
        raise ValueError(f"rollout.weights: {form} takes a full model, not a LoRA adapter (set model.lora_r: 0)")
    out = inference_copy(model, torch.bfloat16)
    if form == "bf16":
        return out
    if out is model:
        out = copy.deepcopy(model).eval().requires_grad_(False)
    _quantize(out, form)
    return out


def _quantized_linears(model: torch.nn.Module) -> dict[str, torch.nn.Linear]:
    """state-dict key of each quantised linear layer's weight -> the layer."""
    return {f"{name}.weight": mod for name, mod in model.named_modules()
            if isinstance(mod, torch.nn.Linear) and type(mod.weight).__module__.startswith("torchao")}


def load_quantized(model: torch.nn.Module, state: dict[str, torch.Tensor], form: str) -> None:
    """Load the learner's `state` into a quantised rollout copy: plain tensors are copied, each quantised linear
    layer gets the new weight in bf16 and is quantised again."""
    layers = _quantized_linears(model)
    model.load_state_dict({k: v for k, v in state.items() if k not in layers}, strict=False)
    for key, layer in layers.items():
        layer.weight = torch.nn.Parameter(state[key].detach().to(torch.bfloat16, copy=True), requires_grad=False)
        _quantize(layer, form)
