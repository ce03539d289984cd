"""Attention for short sequences on a CPU: two batched products instead of SDPA's flash kernel in training, and
SDPA's kernel with grouped query heads in decode.

On a CPU, PyTorch's flash attention is slow for the short sequences RL trains on: forward and backward of
(4 rows, 9 heads, 104 tokens, 64 dims) in bf16 took 15.0 ms, against 6.7 ms as scores = q k^T, softmax and
p v in fp32 (16 rows: 59.8 vs 29.5 ms), while at 300 tokens the flash kernel wins (48.8 vs 56.1 ms with p in
bf16). Each key/value head's query heads are one block of rows in both products, as in decode: no copy of
the keys and values per query head (transformers' `repeat_kv`) and no sum over the copies in the backward,
the same arithmetic otherwise (the learner's update on vs_trl's headline batch, 2-core Xeon with AMX: 3.00 s
against 3.15 with the copies, 3.57 on SDPA; `benchmarks/learner_attention.py`). The
learner's forward and backward run every layer's attention this way, so `use_short_attention` puts a model
on transformers' SDPA path onto `short_sequence_attention`: queries of more than one token against at most
`SHORT` keys take the products (the computation of transformers' own eager attention); everything else
(long sequences, dropout, softcapping, attention sinks, GPUs) goes to SDPA unchanged.

Decode steps (one query) in bf16 take `decode_attention`: PyTorch's fused SDPA kernel with `enable_gqa`, so each
key/value head is read once for its query heads, on views of the cache (transformers' SDPA path copies the
cache per query head with `repeat_kv` first). It replaced two batched products (q k^T, then p v) that had
beaten that path (16 rows, 9 heads, 3 key/value heads, 124 keys: 262-349 us against 428-570 us, one thread,
AVX-512 BF16) but lost to the kernel with `enable_gqa` (its docstring). In fp32 the eager engine stays on
transformers' SDPA path, which reads only the filled slots (below).

A decoding engine passes `KEYS=n` (the keyword `rlvr_keys`): only the first n slots of a static cache hold
keys yet, for every row, so SDPA and the prefill's products read those and not the empty rest (fp32 SDPA,
16 rows, 160 of 320 slots filled: 0.47-0.83 ms against 0.8-1.8 for the whole cache). The bf16 decode
attention reads those too, on views of the cache (the products it replaced read the whole cache: a slice cost
them a copy); the compiled decode step tells it the newest slot.
"""

from __future__ import annotations

import torch

NAME = "rlvr_short"  # the attention implementation registered with transformers
SHORT = 192  # longest key sequence computed with the products (measured crossover between 104 and 300)
KEYS = "rlvr_keys"  # keyword: cache slots in use (the first n; the rest are empty for every row)


def short_sequence_attention(module, query, key, value, attention_mask, dropout: float = 0.0,
                             scaling: float | None = None, is_causal: bool | None = None, **kwargs):
    """transformers' attention interface: (B, H, q, D) queries, (B, KV, L, D) keys and values ->
    ((B, q, H, D), None). Masked scores take the dtype's lowest value (not -inf), as transformers' eager
    attention does, so a query that may see no key (a left-padding position) gives finite values."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    keys = kwargs.pop(KEYS, None)
    B, H, q, D = query.shape
    scale = D ** -0.5 if scaling is None else scaling
    plain = not (dropout or kwargs.get("softcap") is not None or kwargs.get("position_bias") is not None
                 or kwargs.get("s_aux") is not None or kwargs.get("output_attentions") or kwargs.get("sinks") is not None)
    if keys is not None and keys < key.shape[2]:  # a static cache: its later slots are empty for every row
        key, value = key[:, :, :keys], value[:, :, :keys]
        if attention_mask is not None:
            attention_mask = attention_mask[..., :keys]
    if plain and q == 1 and takes_decode_attention(query.dtype, query.device, H, key.shape[1]):
        return decode_attention(query, key, value, attention_mask, scale), None
    L = key.shape[2]
    if q == 1 or L > SHORT or not plain or query.device.type != "cpu" or H % key.shape[1]:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      is_causal=is_causal, **kwargs)
    KV = key.shape[1]
    G = H // KV
    # each key/value head's G query heads as one block of G * q rows (as transformers' `repeat_kv` pairs them):
    # no copy of the keys and values per query head, and no sum over the copies in the backward
    scores = torch.matmul(query.reshape(B, KV, G * q, D), key.transpose(-1, -2)).float().mul_(scale)
    scores = scores.view(B, KV, G, q, L)
    if attention_mask is not None:
        scores = _masked(scores, attention_mask[:, :, None, :, :L])  # (B or 1, 1, 1, q, L): over the heads
    elif (is_causal if is_causal is not None else getattr(module, "is_causal", True)):
        # SDPA's causal flag, aligned top-left: query i sees keys <= i. transformers relies on that alignment
        # when it drops the mask of a static cache's prefill (q prompt tokens against q + T slots, the last T
        # still empty): aligned bottom-right, the prompt would attend to the empty slots.
        seen = torch.ones(q, L, dtype=torch.bool, device=query.device).tril()
        scores = scores.masked_fill(~seen, torch.finfo(scores.dtype).min)
    probs = torch.softmax(scores, dim=-1).view(B, KV, G * q, L)  # fp32, and p v in fp32 too: as close to SDPA's
    out = torch.matmul(probs, value.float()).to(value.dtype).view(B, H, q, D)  # kernel as it gets
    return out.transpose(1, 2).contiguous(), None


def takes_decode_attention(dtype: torch.dtype, device: torch.device, heads: int, kv_heads: int) -> bool:
    """Whether a one-query step of plain attention runs `decode_attention`: bf16 on a CPU, the query heads a
    multiple of the key/value heads (the one condition; the layer loop asks it too, so both decode alike)."""
    return dtype == torch.bfloat16 and device.type == "cpu" and heads % kv_heads == 0


def decode_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                     attention_mask: torch.Tensor | None, scaling: float, keys: int | None = None) -> torch.Tensor:
    """One decode step's attention: (B, H, 1, D) queries against (B, KV, L, D) keys and values -> (B, 1, H, D).
    Query head h reads key/value head h // (H / KV), as transformers' `repeat_kv` pairs them: PyTorch's fused
    CPU kernel (SDPA) with `enable_gqa`, which reads each key/value head once for its query heads, on views of
    the cache (no copy of it per query head, none of the probabilities). A one-query step has no causal part:
    the mask (bool, True = may attend, or additive; (B or 1, 1, 1, L)) covers padding and empty slots. A row
    with every key masked (never one of a decode: its newest token is always open) comes out 0.

    Against the two batched products it replaces (q k^T then p v per key/value head, the probabilities rounded
    to bf16 between them), 30 layers of SmolLM2-135M's shapes (9 query heads, 3 key/value heads, D 64), one
    thread, 2-core Xeon with AMX: bf16, 16 rows x 128 slots 8.2 -> 5.2 ms a step, 16 x 320 22.6 -> 16.6,
    64 x 320 82.1 -> 63.3, 2 x 128 2.5 -> 0.8; fp32, 16 x 128 13.2 -> 12.4 (with the kernels capped at AVX2,
    `ATEN_CPU_CAPABILITY=avx2`: 14.4 -> 11.4). Only bf16 on AVX2 kernels (emulated bf16, which rlvr does not pick
    on such a CPU) was slower: 33.2 -> 43.3. A compiled graph calls it as the operator `decode_attention_op`:
    inductor's own lowering of SDPA ran the same step in 7.0 ms.

    `keys`: only the first `keys` slots hold keys yet, for every row (a static cache, left-padded prompts):
    the kernel reads those alone, on views (the same outputs bit for bit: the rest are masked). 64 rows of a
    320-slot cache, 30 layers: 68 ms with every slot read, 47 with 192 filled, 28 with 96."""
    mask = attention_mask
    if keys is not None and keys < key.shape[2]:
        key, value = key[:, :, :keys], value[:, :, :keys]
        mask = None if mask is None else mask[..., :keys]
    if mask is not None:
        mask = mask[:, :, -1:, :]  # (B or 1, 1, 1, L)
        if mask.dtype != torch.bool:
            mask = mask.to(query.dtype)
    out = torch.nn.functional.scaled_dot_product_attention(query, key, value, attn_mask=mask, scale=scaling,
                                                           enable_gqa=True)
    return out.transpose(1, 2)


def _decode_attention_kernel(query, key, value, mask, scaling, slot):
    return decode_attention(query, key, value, mask, scaling, int(slot[0]) + 1).contiguous()


# `decode_attention` as one operator with a CPU kernel (a plain definition, no autograd: decode runs without
# it), so torch.compile's graph calls the fused kernel instead of lowering SDPA into its own loops. `slot`
# (a one-element tensor: the newest token's slot, the same for every row) is read when the kernel runs, so
# one graph reads the filled slots alone at every step
_LIB = torch.library.Library("rlvr", "FRAGMENT")
_LIB.define("decode_attention(Tensor query, Tensor key, Tensor value, Tensor mask, float scaling, Tensor slot) "
            "-> Tensor")
_LIB.impl("decode_attention", _decode_attention_kernel, "CPU")
decode_attention_op = torch.ops.rlvr.decode_attention.default


@torch.library.register_fake("rlvr::decode_attention")
def _decode_attention_shape(query, key, value, mask, scaling, slot):
    B, H, _, D = query.shape
    return query.new_empty((B, 1, H, D))


def _masked(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """fp32 `scores` under transformers' attention mask: bool (True = may attend; a closed score takes fp32's
    lowest value, not -inf) or additive."""
    return scores.masked_fill(~mask, torch.finfo(scores.dtype).min) if mask.dtype == torch.bool else scores + mask.float()


_REGISTERED: bool | None = None


def _register() -> bool:
    try:
        from transformers import AttentionInterface
        from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask
    except ImportError:  # a transformers without the attention interface
        return False
    AttentionInterface.register(NAME, short_sequence_attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(NAME, sdpa_mask)  # the masks SDPA gets
    return True


def use_short_attention(model: torch.nn.Module) -> bool:
    """Put `model` (a transformers model on SDPA attention, on a CPU) on `short_sequence_attention`.
    Returns whether it did: other attention implementations, devices and older transformers are left alone."""
    global _REGISTERED
    config = getattr(model, "config", None)
    on_cpu = all(p.device.type == "cpu" for p in model.parameters())
    if config is None or getattr(config, "_attn_implementation", None) != "sdpa" or not on_cpu:
        return False
    if _REGISTERED is None:
        _REGISTERED = _register()
    if not _REGISTERED:
        return False
    config._attn_implementation = NAME
    return True
