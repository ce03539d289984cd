"""Short-sequence attention on a CPU (rlvr.models.attention): the same outputs and gradients as SDPA."""

from __future__ import annotations

import copy

import pytest
import torch

from rlvr.models.attention import NAME, SHORT, use_short_attention


def _batch(tok):
    texts = ["12+34=46", "7*8=", "9-3=6 and more"]
    ids = [[tok.bos_token_id] + tok(t, add_special_tokens=False)["input_ids"] for t in texts]
    P = max(map(len, ids))
    input_ids = torch.full((len(ids), P), tok.pad_token_id)
    mask = torch.zeros((len(ids), P), dtype=torch.long)
    for i, r in enumerate(ids):  # left padding, as the learner and the engine build batches
        input_ids[i, P - len(r):] = torch.tensor(r)
        mask[i, P - len(r):] = 1
    return input_ids, mask, (mask.cumsum(-1) - 1).clamp(min=0)


def _run(model, ids, mask, pos):
    logits = model(input_ids=ids, attention_mask=mask, position_ids=pos).logits.float()
    (logits * mask[..., None]).sum().backward()  # padding positions carry no loss, as in training
    return logits, {n: p.grad.float() for n, p in model.named_parameters()}


def test_short_attention_gives_sdpa_s_outputs_and_gradients(make_tiny_model, char_tokenizer):
    sdpa = make_tiny_model(sharp=True).train()
    assert sdpa.config._attn_implementation == "sdpa"
    short = copy.deepcopy(sdpa)
    assert use_short_attention(short) and short.config._attn_implementation == NAME
    batch = _batch(char_tokenizer)
    (a, ga), (b, gb) = _run(sdpa, *batch), _run(short, *batch)
    keep = batch[1].bool()
    assert torch.allclose(a[keep], b[keep], atol=1e-4, rtol=1e-4)
    for n in ga:
        assert torch.isfinite(gb[n]).all(), n  # a padding query that sees no key gives finite values
        assert (ga[n] - gb[n]).abs().max() <= 1e-3 * ga[n].abs().max().clamp(min=1e-6), n


def test_in_bf16_short_attention_is_as_close_to_fp32_as_sdpa_is(make_tiny_model, char_tokenizer):
    fp32 = make_tiny_model(sharp=True).train()
    sdpa = copy.deepcopy(fp32).to(torch.bfloat16)
    short = copy.deepcopy(sdpa)
    use_short_attention(short)
    batch = _batch(char_tokenizer)
    keep = batch[1].bool()
    ref, gref = _run(fp32, *batch)
    (a, ga), (b, gb) = _run(sdpa, *batch), _run(short, *batch)
    err_sdpa, err_short = (a - ref)[keep].abs().max(), (b - ref)[keep].abs().max()
    assert err_short <= 1.5 * err_sdpa, (err_short, err_sdpa)
    for n in ga:
        assert torch.isfinite(gb[n]).all(), n
        e_sdpa, e_short = (ga[n] - gref[n]).abs().max(), (gb[n] - gref[n]).abs().max()
        assert e_short <= 2 * e_sdpa + 1e-3 * gref[n].abs().max(), (n, e_short, e_sdpa)  # bf16 noise, both ways


def test_without_a_mask_the_products_are_causal(make_tiny_model, char_tokenizer):
    """No padding: transformers hands SDPA no mask and relies on its causal flag; the products must mask the
    future themselves (a later token must not change an earlier position's logits)."""
    model = make_tiny_model(sharp=True)
    use_short_attention(model)
    ids = torch.tensor([[char_tokenizer.bos_token_id] + char_tokenizer("12+34=46", add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        full = model(input_ids=ids).logits
        prefix = model(input_ids=ids[:, :5]).logits
    assert torch.allclose(full[:, :5], prefix, atol=1e-5)


def test_without_a_mask_fewer_queries_than_keys_align_as_sdpa_s_causal_flag():
    """A static cache's prefill: transformers drops the mask when the only masked keys are the cache's empty
    slots after the prompt, and relies on SDPA's causal flag, aligned top-left (query i sees keys <= i).
    Aligned bottom-right instead, every prompt token would attend to the empty slots."""
    from rlvr.models.attention import short_sequence_attention

    gen = torch.Generator().manual_seed(0)
    q, L = 5, 9
    query, key, value = (torch.randn(2, 2, n, 8, generator=gen) for n in (q, L, L))
    key[:, :, q:] = 0.0  # the empty slots, as a static cache holds them
    value[:, :, q:] = 0.0
    out, _ = short_sequence_attention(torch.nn.Module(), query, key, value, None, is_causal=True)
    expected = torch.nn.functional.scaled_dot_product_attention(query, key, value, is_causal=True)
    assert torch.allclose(out, expected.transpose(1, 2), atol=1e-5)
    plain = torch.nn.functional.scaled_dot_product_attention(query, key[:, :, :q], value[:, :, :q], is_causal=True)
    assert torch.allclose(out, plain.transpose(1, 2), atol=1e-5)  # the empty slots take no weight


def test_long_sequences_and_fp32_decode_steps_stay_on_sdpa(monkeypatch):
    import transformers.integrations.sdpa_attention as sdpa_module

    from rlvr.models.attention import short_sequence_attention

    calls = []
    monkeypatch.setattr(sdpa_module, "sdpa_attention_forward", lambda *a, **k: calls.append(a[1].shape) or ("sdpa", None))
    module = torch.nn.Module()
    for q, L in [(1, 50), (SHORT + 1, SHORT + 1)]:
        out, _ = short_sequence_attention(module, torch.randn(1, 2, q, 8), torch.randn(1, 2, L, 8),
                                          torch.randn(1, 2, L, 8), None)
        assert out == "sdpa"
    out, _ = short_sequence_attention(module, torch.randn(1, 2, 4, 8), torch.randn(1, 2, 4, 8), torch.randn(1, 2, 4, 8), None)
    assert out.shape == (1, 4, 2, 8) and len(calls) == 2


def _decode_inputs(dtype=torch.float32, L=11):
    """One decode step of 3 rows, 6 query heads on 2 key/value heads, rows 1 and 2 left-padded (3 and 5 slots)."""
    gen = torch.Generator().manual_seed(0)
    B, H, KV, D = 3, 6, 2, 16
    query = torch.randn(B, H, 1, D, generator=gen)
    key, value = torch.randn(B, KV, L, D, generator=gen), torch.randn(B, KV, L, D, generator=gen)
    mask = torch.ones(B, 1, 1, L, dtype=torch.bool)
    mask[1, ..., :3] = False
    mask[2, ..., :5] = False
    return query.to(dtype), key.to(dtype), value.to(dtype), mask


def _sdpa_reference(query, key, value, mask):
    """fp32 SDPA with each query head on its key/value head (transformers' repeat_kv pairing): (B, 1, H, D)."""
    from transformers.integrations.sdpa_attention import repeat_kv

    groups = query.shape[1] // key.shape[1]
    out = torch.nn.functional.scaled_dot_product_attention(
        query.float(), repeat_kv(key.float(), groups), repeat_kv(value.float(), groups), attn_mask=mask)
    return out.transpose(1, 2)


def test_a_bf16_decode_step_takes_rlvr_s_decode_attention_and_stays_as_close_to_fp32_as_bf16_allows(monkeypatch):
    import transformers.integrations.sdpa_attention as sdpa_module

    from rlvr.models.attention import short_sequence_attention

    query, key, value, mask = _decode_inputs(torch.bfloat16)
    module = torch.nn.Module()
    module.num_key_value_groups = 3
    sdpa_out, _ = sdpa_module.sdpa_attention_forward(module, query, key, value, mask)
    ref = _sdpa_reference(query, key, value, mask)  # the same bf16 inputs, computed in fp32
    calls = []
    monkeypatch.setattr(sdpa_module, "sdpa_attention_forward", lambda *a, **k: calls.append(1) or ("sdpa", None))
    out, _ = short_sequence_attention(module, query, key, value, mask)
    assert not calls and out.dtype == torch.bfloat16 and out.shape == (3, 1, 6, 16)
    err, err_sdpa = (out.float() - ref).abs().max(), (sdpa_out.float() - ref).abs().max()
    assert err <= 4 * err_sdpa + 1e-2, (err, err_sdpa)  # bf16 probabilities: a few roundings more at most
    # a query head paired with the wrong key/value head, or padding attended to, is off by far more
    wrong = _sdpa_reference(query, key.flip(1), value.flip(1), mask)
    assert (wrong - ref).abs().max() > 20 * err
    unmasked = _sdpa_reference(query, key, value, None)
    assert (unmasked - ref)[1:].abs().max() > 20 * err


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
def test_the_decode_attention_operator_gives_the_function_s_outputs_in_a_compiled_graph(dtype):
    """The compiled decode step calls `decode_attention` as the operator `rlvr::decode_attention`: inside a
    torch.compile graph it must give the function's outputs exactly (the same kernel), with a bool mask or an
    additive one, and both must pair each query head with its key/value head and keep padding out."""
    from rlvr.models.attention import decode_attention, decode_attention_op

    query, key, value, mask = _decode_inputs(dtype)
    additive = torch.zeros(mask.shape, dtype=dtype).masked_fill(~mask, torch.finfo(dtype).min)
    compiled = torch.compile(lambda q, k, v, m, slot: decode_attention_op(q, k, v, m, 0.25, slot) * 2, dynamic=False)
    ref = _sdpa_reference(query * 0.25 * 16 ** 0.5, key, value, mask)  # SDPA's default scale is D ** -0.5
    last = torch.tensor([key.shape[2] - 1])
    for m in (mask, additive):
        eager = decode_attention(query, key, value, m, 0.25)
        assert eager.shape == (3, 1, 6, 16) and eager.dtype == dtype
        assert torch.equal(compiled(query, key, value, m, last), eager * 2)
        assert (eager.float() - ref).abs().max() < (2e-2 if dtype == torch.bfloat16 else 1e-5)
    # told that only the first 7 slots hold keys, it reads those alone (NaN in the rest would poison any
    # output that read them), in the compiled graph too (the slot is read when the kernel runs)
    filled, nan_key = 7, key.clone()
    nan_key[:, :, filled:] = float("nan")
    closed = mask.clone()
    closed[..., filled:] = False
    ref = _sdpa_reference(query * 0.25 * 16 ** 0.5, key[:, :, :filled], value[:, :, :filled], closed[..., :filled])
    for slot in (filled - 1, filled - 2):
        out = decode_attention(query, nan_key, value, closed, 0.25, slot + 1)
        assert torch.equal(compiled(query, nan_key, value, closed, torch.tensor([slot])), out * 2)
    assert torch.isfinite(out).all()
    out = decode_attention(query, nan_key, value, closed, 0.25, filled)
    assert (out.float() - ref).abs().max() < (2e-2 if dtype == torch.bfloat16 else 1e-5)


@pytest.mark.parametrize("dtype,queries", [(torch.float32, 1), (torch.float32, 4), (torch.bfloat16, 4)],
                         ids=["fp32_decode_sdpa", "fp32_prefill", "bf16_prefill"])
def test_attention_reads_only_the_cache_slots_it_is_told_hold_keys(dtype, queries):
    """A static cache's slots past the newest token are empty for every row; told how many are filled
    (`KEYS`), attention never reads the rest: NaN there would poison every output that read it. (bf16 decode
    products read the whole cache and rely on the mask: the next test.)"""
    from rlvr.models.attention import KEYS, short_sequence_attention

    filled, L = 7, 11
    query, key, value, _ = _decode_inputs(dtype, L)
    query = query.expand(-1, -1, queries, -1).contiguous()
    module = torch.nn.Module()
    module.num_key_value_groups, module.is_causal = 3, True
    mask = torch.ones(3, 1, queries, L, dtype=torch.bool)  # every slot open: only the bound keeps NaN out
    mask[1, ..., :2] = False
    clean, _ = short_sequence_attention(module, query, key[:, :, :filled], value[:, :, :filled], mask[..., :filled])
    key[:, :, filled:], value[:, :, filled:] = torch.nan, torch.nan
    out, _ = short_sequence_attention(module, query, key, value, mask, **{KEYS: filled})
    assert torch.equal(out, clean)
    out, _ = short_sequence_attention(module, query, key, value, mask)
    assert out.float().isnan().any()  # the test's NaN is reachable without the bound


def test_bf16_decode_products_over_a_whole_static_cache_take_no_weight_from_masked_slots():
    """The bf16 decode products ignore `KEYS` (a slice would be copied) and read every slot: the empty ones
    must take no weight through the mask alone, whatever they hold."""
    from rlvr.models.attention import KEYS, short_sequence_attention

    filled, L = 7, 11
    query, key, value, mask = _decode_inputs(torch.bfloat16, L)
    mask[..., filled:] = False  # transformers' mask of a static cache: the empty slots closed
    module = torch.nn.Module()
    clean, _ = short_sequence_attention(module, query, key[:, :, :filled], value[:, :, :filled], mask[..., :filled])
    key[:, :, filled:], value[:, :, filled:] = 1e4, 1e4  # a stale or garbage slot
    out, _ = short_sequence_attention(module, query, key, value, mask, **{KEYS: filled})
    assert torch.equal(out, clean)
