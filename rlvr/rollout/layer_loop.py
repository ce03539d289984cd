"""Decode steps of Llama-family decoders as one plain loop over the model's own modules.

transformers' forward for a batch of one new token per row spends a good part of a small model's decode step
outside the arithmetic: each step it builds the attention mask through its mask functions, and every layer
passes through keyword-deprecation and output-capturing wrappers, the gradient-checkpointing layer's call, the
cache's `update` and the attention-interface lookup. `LayerLoop.step` runs the same modules (embedding, rotary
embedding, norms, projections, the MLP, the output layer) and the same attention function in the same order,
writes each layer's new key and value into the static cache's slot with the cache's own `index_copy_`, and
hands the attention one boolean mask made from the engine's padding mask: the logits are the model's own, bit
for bit (SmolLM2-135M in bf16 and fp32: the same samples and log-probs). In the engine (SmolLM2-135M, bf16,
oneDNN-packed linears, fixed length, one thread, AVX-512 BF16; `benchmarks/layer_loop.py`): 2 prompts x 8 x 64
tokens 158 -> 163 tokens/s (1.03x, within the machine's drift), 8 x 8 x 256 219 -> 240 (1.10x); at natural
length (rows leave the batch as they finish) 2 x 8 x 64 119 -> 128 (1.08x). What is left of
a decode step is mostly arithmetic: at 16 rows the linear layers take ~46% of it, the sampler ~12%, attention's
products ~8%.

With oneDNN-packed linears (`rlvr.rollout.cpu_kernels`) each layer's query, key and value projections run as
one product on their stacked weights, its MLP's gate and up projections as another, and the rotary embedding
turns the queries and keys in one pass: the same elementwise arithmetic on the same values, so the logits are
still the forward's bit for bit.

Only where that holds by construction: a `LlamaForCausalLM`, `Qwen2ForCausalLM` or `MistralForCausalLM` (one
structure: pre-norm attention and MLP with residuals, rotary embeddings from the model's `rotary_emb`) on
rlvr's CPU attention (`rlvr.models.attention`), a static cache of plain layers, and no sliding window shorter
than the cache. Any other model, cache or setting decodes through transformers' forward as before. Modules are
called as modules, so PEFT's LoRA layers, packed CPU linears and quantised weights work unchanged.

With the engine's `compile` on a CPU (bf16 or fp32 weights, every linear packed), the step runs through
torch.compile (`_packed_step`): the linears stay on the packed weights as `rlvr::packed_linear` calls, the
attention is `rlvr::decode_attention` (`decode_attention` as one operator), and inductor fuses the arithmetic
between them (norms, rotary embedding, activation). Its kernels round
differently, so the samples follow the same law but not the forward's bits. At 2 prompts x 8 x 64 tokens of
SmolLM2-135M it ran 1.08-1.22x the eager loop's tokens/s in `benchmarks/vs_trl.py --compile` races (one run of
three 0.96x), after ~27 s of compiling a graph per batch size and cache length. In fp32 (what AVX2-only CPUs
pack, or a model kept in fp32) its attention is the same `decode_attention` in fp32, where the eager loop's goes
through transformers' SDPA path: 238 vs 206 tokens/s (1.16x) in a `--dtype float32 --compile` race on the AVX-512
EPYC (before `decode_attention` moved onto SDPA's kernel).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F

from rlvr.compiled_forward import allow_recompiles
from rlvr.models import attention
from rlvr.models.lora import transformers_model as _hf
from rlvr.rollout.cpu_kernels import packed_linear, packed_linear_int8, quantize_rows

ARCHITECTURES = ("LlamaForCausalLM", "Qwen2ForCausalLM", "MistralForCausalLM")
MLPS = ("LlamaMLP", "Qwen2MLP", "MistralMLP")  # down(act(gate(x)) * up(x))


def _window(attn: torch.nn.Module, config) -> int | None:
    """The layer's sliding window (Qwen2 sets it per layer; Mistral reads its config), None without one."""
    return attn.sliding_window if hasattr(attn, "sliding_window") else getattr(config, "sliding_window", None)


class LayerLoop:
    """`step(tokens, mask, positions, slot)` -> (rows, V) logits of one decode step of `model`, whose static
    `cache` holds every row's keys and values in slots [0, slot) (rlvr's engine: left-padded prompts, so every
    row's newest token takes the same slot)."""

    def __init__(self, model: torch.nn.Module, cache, packed=None, compiled: bool = False):
        hf = _hf(model)
        self.causal_lm, self.decoder, self.cache = hf, hf.model, cache
        self.layers = list(self.decoder.layers)
        source = sys.modules[type(self.layers[0].self_attn).__module__]
        self.rope, self.rotate_half = source.apply_rotary_pos_emb, source.rotate_half
        # per layer: one product for q/k/v and one for the MLP's gate/up, where `packed` (PackedLinears, in
        # force) stacked them (`linear_groups`); None runs the modules one by one
        qkv, gate_up = [], []
        for layer in self.layers:
            attn_group, mlp_group = self._groups(layer)
            qkv.append(packed.stacked(attn_group) if packed is not None else None)
            gate_up.append(packed.stacked(mlp_group) if packed is not None and mlp_group else None)
        self.qkv, self.gate_up = qkv, gate_up
        self.plans = [_Plan.of(layer) for layer in self.layers]
        self.final_norm = rms_norm(self.decoder.norm)
        # compiled: each step through torch.compile, the linears as `packed_linear` calls (handles per layer:
        # q/k/v, o, gate/up, down; then the output layer), where every one of them runs on a packed weight
        self.handles = self._handles(packed) if compiled and packed is not None else None
        self.int8 = packed is not None and packed.int8  # int8 weights: the compiled step quantises each input

    def _handles(self, packed) -> tuple[tuple[str, ...], ...] | None:
        """The packed weights' handles the compiled step calls (`packed_linear`), or None where the step cannot
        be compiled: a linear not packed (or not stacked: bf16 or fp32 weights oneDNN packs), or query heads that
        are not a multiple of the key/value heads (the step's attention is `decode_attention`, in either dtype)."""
        out = []
        for layer, plan in zip(self.layers, self.plans):
            attn_group, mlp_group = self._groups(layer)
            if not mlp_group or plan.heads % plan.kv:  # the step's attention is `decode_attention`
                return None
            out.append(tuple(packed.handle(g) for g in (attn_group, (layer.self_attn.o_proj,), mlp_group,
                                                       (layer.mlp.down_proj,))))
        out.append((packed.handle((self.causal_lm.lm_head,)),))
        return tuple(out) if all(h is not None for hs in out for h in hs) else None

    @staticmethod
    def _groups(layer: torch.nn.Module) -> tuple[tuple, tuple]:
        attn, mlp = layer.self_attn, layer.mlp
        mlp_group = (mlp.gate_proj, mlp.up_proj) if type(mlp).__name__ in MLPS else ()
        return (attn.q_proj, attn.k_proj, attn.v_proj), mlp_group

    @staticmethod
    def linear_groups(model: torch.nn.Module) -> tuple[tuple[torch.nn.Module, ...], ...]:
        """The linears of `model` (of the kind the loop reproduces) that read the same input: each layer's
        q/k/v projections and its MLP's gate/up projections, for `PackedLinears` to stack."""
        if not LayerLoop.model_fits(model):
            return ()
        return tuple(g for layer in _hf(model).model.layers for g in LayerLoop._groups(layer) if g)

    @staticmethod
    def model_fits(model: torch.nn.Module) -> bool:
        """Whether `model` is of the kind the loop reproduces (its architecture and attention; the module's
        docstring), whatever the cache."""
        hf = _hf(model)
        config = getattr(hf, "config", None)
        decoder = getattr(hf, "model", None)
        if (type(hf).__name__ not in ARCHITECTURES or config is None or decoder is None
                or getattr(config, "_attn_implementation", None) != attention.NAME
                or not hasattr(decoder, "rotary_emb") or not hasattr(hf, "lm_head")):
            return False
        keys = ("q_proj", "k_proj", "v_proj", "o_proj", "head_dim")
        return all(hasattr(getattr(layer, "self_attn", None), k) for layer in decoder.layers for k in keys)

    @staticmethod
    def fits(model: torch.nn.Module, cache, cache_len: int) -> bool:
        """Whether `model` and its decode's `cache` (of `cache_len` slots) are of the kind the loop reproduces:
        plain static layers, and no sliding window shorter than the cache."""
        if not LayerLoop.model_fits(model):
            return False
        hf = _hf(model)
        layers = getattr(cache, "layers", None)
        if layers is None or len(layers) != len(hf.model.layers):
            return False
        for held in layers:
            if (type(held).__name__ != "StaticLayer" or getattr(held, "keys", None) is None
                    or held.keys.shape[2] != cache_len):
                return False
        return LayerLoop.windows_fit(model, cache_len)

    @staticmethod
    def windows_fit(model: torch.nn.Module, cache_len: int) -> bool:
        """No layer of `model` has a sliding window shorter than a cache of `cache_len` slots (known before
        the cache is made: the engine packs for the loop only where it can run)."""
        hf = _hf(model)
        windows = (_window(layer.self_attn, hf.config) for layer in hf.model.layers)
        return all(w is None or w >= cache_len for w in windows)

    def step(self, tokens: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor, slot: int) -> torch.Tensor:
        """tokens (B, 1), mask (B, L) with 1 where a row may attend (its prompt and the slots up to `slot`),
        positions (B, 1): the logits (B, V) of the next token, the new keys and values written at `slot`."""
        where = torch.tensor([slot], device=tokens.device)
        allowed = mask[:, None, None, :].bool()  # (B, 1, 1, L), as transformers' mask for rlvr's attention
        if self.handles is not None:
            return compiled_step()(self, tokens, allowed, positions, where,
                                   [held.keys for held in self.cache.layers], [held.values for held in self.cache.layers])
        rows = tokens.shape[0]
        x = self.decoder.embed_tokens(tokens)
        cos, sin = self.decoder.rotary_emb(x, positions)
        turn = cos.unsqueeze(1), sin.unsqueeze(1)  # (B, 1, 1, D): broadcast over the heads
        for layer, held, qkv, gate_up, plan in zip(self.layers, self.cache.layers, self.qkv, self.gate_up,
                                                   self.plans):
            attn = layer.self_attn
            h = plan.input_norm(x)
            if qkv is not None:  # one product, split: (B, heads + 2 kv heads, 1, D)
                both = qkv(h).view(rows, 1, -1, plan.head_dim).transpose(1, 2)
                turned = self._rotate(both[:, :plan.heads + plan.kv], *turn)  # queries and keys in one pass
                q, k, v = turned[:, :plan.heads], turned[:, plan.heads:], both[:, plan.heads + plan.kv:]
            else:
                heads = (rows, 1, -1, plan.head_dim)
                q = attn.q_proj(h).view(heads).transpose(1, 2)
                k = attn.k_proj(h).view(heads).transpose(1, 2)
                v = attn.v_proj(h).view(heads).transpose(1, 2)
                q, k = self.rope(q, k, cos, sin)
            held.keys.index_copy_(2, where, k)
            held.values.index_copy_(2, where, v)
            if attention.takes_decode_attention(q.dtype, q.device, plan.heads, plan.kv):  # as rlvr's attention does
                out = attention.decode_attention(q, held.keys, held.values, allowed, plan.scaling, slot + 1)
            else:
                out, _ = attention.short_sequence_attention(attn, q, held.keys, held.values, allowed,
                                                            scaling=plan.scaling, **{attention.KEYS: slot + 1})
            x = x + attn.o_proj(out.reshape(rows, 1, -1))
            h = plan.post_norm(x)
            if gate_up is not None:
                mlp, both = layer.mlp, gate_up(h)
                gate, up = both.split(both.shape[-1] // 2, dim=-1)
                x = x + mlp.down_proj(plan.act(gate) * up)
            else:
                x = x + layer.mlp(h)
        return self.causal_lm.lm_head(self.final_norm(x))[:, -1]

    def _packed_step(self, tokens: torch.Tensor, allowed: torch.Tensor, positions: torch.Tensor,
                     where: torch.Tensor, keys: list[torch.Tensor], values: list[torch.Tensor]) -> torch.Tensor:
        """`step` as one function of tensors for torch.compile: the same modules and arithmetic, every linear a
        `packed_linear` call (`handles`), the slot a tensor and the cache's tensors arguments, so one graph
        serves every step of every decode of one batch size and cache length (and every weight sync)."""
        rows = tokens.shape[0]
        x = self.decoder.embed_tokens(tokens)
        cos, sin = self.decoder.rotary_emb(x, positions)
        cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
        for i, (plan, (qkv, o, gate_up, down)) in enumerate(zip(self.plans, self.handles)):
            h = plan.input_norm(x)
            both = self._linear(h, qkv).view(rows, 1, -1, plan.head_dim).transpose(1, 2)
            turned = self._rotate(both[:, :plan.heads + plan.kv], cos, sin)
            q, k, v = turned[:, :plan.heads], turned[:, plan.heads:], both[:, plan.heads + plan.kv:]
            keys[i].index_copy_(2, where, k)
            values[i].index_copy_(2, where, v)
            out = attention.decode_attention_op(q, keys[i], values[i], allowed, plan.scaling, where)
            x = x + self._linear(out.reshape(rows, 1, -1), o)
            both = self._linear(plan.post_norm(x), gate_up)
            gate, up = both.split(both.shape[-1] // 2, dim=-1)
            x = x + self._linear(plan.act(gate) * up, down)
        return self._linear(self.final_norm(x), self.handles[-1][0])[:, -1]

    def _linear(self, x: torch.Tensor, handle: str) -> torch.Tensor:
        """x @ W^T + b on the packed weight of `handle`; on int8 weights x's rows are quantised in the graph
        (`quantize_rows`, fused by inductor into the ops that made x), the product is one operator."""
        if not self.int8:
            return packed_linear(x, handle)
        return packed_linear_int8(*quantize_rows(x), handle).to(x.dtype)

    def _rotate(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        """The rotary embedding of (B, heads, 1, D) `x`: the formula of the model's `apply_rotary_pos_emb`
        (x cos + rotate_half(x) sin, cos and sin (B, 1, 1, D) broadcast over the heads)."""
        return (x * cos) + (self.rotate_half(x) * sin)


@functools.cache
def compiled_step():
    """`LayerLoop._packed_step` through torch.compile (inductor), once per process: static shapes (symbolic
    ones sent inductor's shape reasoning into minutes of sympy), so each batch size and cache length, and each
    model, compiles its own graph (room for RECOMPILE_LIMIT of them: dynamo's default of 8 would run a decode
    eagerly past its 8th batch size and cache length, without a word)."""
    allow_recompiles()
    return torch.compile(LayerLoop._packed_step, dynamic=False)


class _Plan(NamedTuple):
    """What a layer's decode step reads of its modules, looked up once per decode rather than every token."""
    input_norm: Callable[[torch.Tensor], torch.Tensor]
    post_norm: Callable[[torch.Tensor], torch.Tensor]
    act: Callable[[torch.Tensor], torch.Tensor]
    heads: int
    kv: int
    head_dim: int
    scaling: float

    @staticmethod
    def of(layer: torch.nn.Module) -> _Plan:
        attn, mlp = layer.self_attn, layer.mlp
        heads = attn.q_proj.out_features // attn.head_dim
        kv = attn.k_proj.out_features // attn.head_dim
        return _Plan(rms_norm(layer.input_layernorm), rms_norm(layer.post_attention_layernorm),
                     _activation(getattr(mlp, "act_fn", None)), heads, kv, attn.head_dim, attn.scaling)


RMS_NORMS = ("LlamaRMSNorm", "Qwen2RMSNorm", "MistralRMSNorm")


def rms_norm(module: torch.nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """`module` as a function: for the RMS norms of `RMS_NORMS` (x in fp32, x / sqrt(mean(x^2) + eps), back to
    x's dtype, times the weight), the same arithmetic through `F.rms_norm`'s one call in place of the module's
    seven; any other module is called as it is."""
    if type(module).__name__ not in RMS_NORMS or not isinstance(getattr(module, "weight", None), torch.Tensor):
        return module
    eps, width = module.variance_epsilon, (module.weight.shape[-1],)

    def norm(x: torch.Tensor) -> torch.Tensor:
        return module.weight * F.rms_norm(x.float(), width, eps=eps).to(x.dtype)
    return norm


def _activation(act) -> Callable[[torch.Tensor], torch.Tensor]:
    """transformers' SiLU module as the function it calls; anything else as it is."""
    return F.silu if type(act).__name__ in ("SiLUActivation", "SiLU") else act
