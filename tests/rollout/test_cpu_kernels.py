"""CPU decode on oneDNN-packed weights (rlvr.rollout.cpu_kernels): the same samples as the model's own kernels,
repacked whenever a weight changes, and never in force outside the engine's decode."""

from __future__ import annotations

import pytest
import torch

from rlvr.rollout.base import SamplingParams
from rlvr.rollout.cpu_kernels import (
    can_pack,
    int8_product,
    pack_int8,
    packs,
    packs_int8,
    quantize_rows,
    run_int8,
)
from rlvr.rollout.torch_engine import TorchEngine, inference_copy
from tests.conftest import logprob_gaps

pytestmark = pytest.mark.skipif(not can_pack(torch.device("cpu")), reason="this torch has no oneDNN packed linears")

SAMPLING = SamplingParams(n=4, max_new_tokens=12, temperature=1.0)


def _prompts(tok) -> list[list[int]]:
    return [tok.encode(p) for p in ("123+456=", "7+8=", "9")]


def _sample(engine, tok, sampling=SAMPLING):
    return engine.generate(_prompts(tok), sampling, seeds=[11, 12, 13])


def _linears(model) -> list[torch.nn.Linear]:
    return [m for m in model.modules() if isinstance(m, torch.nn.Linear)]


def _assert_same(a, b, tol: float) -> None:
    for ga, gb in zip(a, b, strict=True):
        for ca, cb in zip(ga, gb, strict=True):
            assert ca.token_ids == cb.token_ids
            assert ca.logprobs == pytest.approx(cb.logprobs, abs=tol)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_packed_decode_samples_what_the_model_s_own_kernels_sample(make_tiny_model, char_tokenizer, dtype):
    model = inference_copy(make_tiny_model(sharp=True), dtype)
    packed = TorchEngine(model, char_tokenizer.pad_token_id)
    plain = TorchEngine(model, char_tokenizer.pad_token_id, cpu_kernels=False)
    assert packed.packed is not None and plain.packed is None
    a = _sample(packed, char_tokenizer)
    # every linear layer ran on a packed weight, where this CPU packs the dtype (bf16: AVX-512 or AVX-NE-CONVERT)
    layers = len(_linears(model)) if packs(dtype) else 0
    assert packed.packed.repacks == layers
    _assert_same(a, _sample(plain, char_tokenizer), tol=1e-4 if dtype == torch.float32 else 0.0)
    _sample(packed, char_tokenizer)
    assert packed.packed.repacks == layers  # unchanged weights are not packed again


def test_a_dtype_this_cpu_cannot_pack_decodes_on_the_model_s_own_kernels(make_tiny_model, char_tokenizer,
                                                                         monkeypatch):
    """On an AVX2-only CPU oneDNN refuses to pack bf16 weights: a bf16 engine must still sample, on the model's
    own kernels (it raised in the first decode before). Simulated on any CPU by an op that refuses bf16."""
    reorder = torch.ops.mkldnn._reorder_linear_weight

    class Ops:
        @staticmethod
        def _reorder_linear_weight(w, rows):
            if w.dtype == torch.bfloat16:
                raise RuntimeError("mkldnn_reorder_linear_weight: bf16 path needs the cpu support avx_ne_convert")
            return reorder(w, rows)

        _linear_pointwise = staticmethod(torch.ops.mkldnn._linear_pointwise)

    monkeypatch.setattr(torch.ops, "mkldnn", Ops, raising=False)  # what rlvr.rollout.cpu_kernels calls
    packs.cache_clear()
    try:
        assert packs(torch.float32) and not packs(torch.bfloat16)
        model = inference_copy(make_tiny_model(sharp=True), torch.bfloat16)
        engine = TorchEngine(model, char_tokenizer.pad_token_id)
        got = _sample(engine, char_tokenizer)
        assert engine.packed.repacks == 0
        monkeypatch.undo()
        _assert_same(got, _sample(TorchEngine(model, char_tokenizer.pad_token_id, cpu_kernels=False), char_tokenizer),
                     tol=0.0)
    finally:
        packs.cache_clear()


def test_a_weight_changed_in_place_is_packed_again(make_tiny_model, char_tokenizer):
    """The engine shares the learner's model: an optimiser step (or a load) changes its weights in place,
    with or without a call to `load_weights`. Decoding must sample from the new weights."""
    model, other = make_tiny_model(seed=0, sharp=True), make_tiny_model(seed=1, sharp=True)
    engine = TorchEngine(model, char_tokenizer.pad_token_id)
    before = _sample(engine, char_tokenizer)
    model.load_state_dict(other.state_dict())  # in place, no load_weights
    after = _sample(engine, char_tokenizer)
    _assert_same(after, _sample(TorchEngine(other, char_tokenizer.pad_token_id, cpu_kernels=False), char_tokenizer),
                 tol=1e-4)
    assert [c.token_ids for g in after for c in g] != [c.token_ids for g in before for c in g]
    assert engine.packed.repacks == 2 * len(_linears(model))


def test_outside_decoding_the_model_trains_through_its_own_linears(make_tiny_model, char_tokenizer, monkeypatch):
    model = make_tiny_model(sharp=True)
    engine = TorchEngine(model, char_tokenizer.pad_token_id)
    _sample(engine, char_tokenizer)
    assert all("forward" not in m.__dict__ for m in _linears(model))
    model.train()
    ids = torch.tensor([_prompts(char_tokenizer)[0]])
    model(input_ids=ids).logits.sum().backward()
    assert all(m.weight.grad is not None and m.weight.grad.abs().sum() > 0 for m in _linears(model))

    def crash(*a, **kw):
        raise RuntimeError("decode failed")

    monkeypatch.setattr(engine, "_decode", crash)
    with pytest.raises(RuntimeError, match="decode failed"):
        _sample(engine, char_tokenizer)
    assert all("forward" not in m.__dict__ for m in _linears(model))  # restored on the way out


def test_a_fused_optimiser_step_is_seen_at_the_next_weight_sync(make_tiny_model, char_tokenizer):
    """rlvr's fused AdamW changes a shared model's weights without moving their version counters; the
    trainer's weight sync (`load_weights`, a new policy version) must still bring the new weights in."""
    model = make_tiny_model(seed=0, sharp=True).train()
    engine = TorchEngine(model, char_tokenizer.pad_token_id)
    _sample(engine, char_tokenizer)
    opt = torch.optim.AdamW(model.parameters(), lr=0.5, fused=True)
    versions = [p._version for p in model.parameters()]
    model(input_ids=torch.tensor([_prompts(char_tokenizer)[0]])).logits.sum().backward()
    opt.step()
    assert [p._version for p in model.parameters()] == versions  # what makes the counter alone not enough
    engine.load_weights(model.state_dict(), version=1)  # the learner's own tensors: copies nothing
    model.eval()
    _assert_same(_sample(engine, char_tokenizer),
                 _sample(TorchEngine(model, char_tokenizer.pad_token_id, cpu_kernels=False), char_tokenizer), tol=1e-4)


needs_int8 = pytest.mark.skipif(not packs_int8(), reason="oneDNN's int8 product does not run on this CPU")


@needs_int8
def test_int8_product_is_the_integer_product_of_the_quantised_rows_and_weights():
    """`rollout.weights: w8a8`'s product: each input row and each weight row quantised to int8 by its own largest
    magnitude / 127, the integer sums scaled back by both, plus the bias, in the input's dtype. Rows of very
    different sizes (and one of zeros) each keep their own scale."""
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(40, 24, generator=gen)
    rows = torch.tensor([1.0, 10.0, 0.01, 0.0, 300.0])[:, None]
    x = (torch.randn(5, 24, generator=gen) * rows).to(torch.bfloat16)
    bias = torch.randn(40, generator=gen)
    packed = pack_int8(w, 5)
    y = int8_product(*quantize_rows(x), packed, bias)  # float32
    sx = (x.double().abs().amax(-1, keepdim=True) / 127).clamp(min=1e-300)
    sw = w.double().abs().amax(-1) / 127
    qx = torch.round(x.double() / sx).clamp(-127, 127)
    qw = torch.round(w.double() / sw[:, None]).clamp(-127, 127)
    want = (qx @ qw.T) * sx * sw + bias.double()
    torch.testing.assert_close(y.double(), want, rtol=1e-5, atol=1e-4)  # float32's rounding of the scales
    exact = x.double() @ w.double().T + bias.double()
    assert (y.double() - exact).abs().max() > 100 * (y.double() - want).abs().max()  # a quantised product
    assert torch.equal(y[3], bias)  # a row of zeros: the bias alone
    got = run_int8(x, packed, bias)  # what decode runs: the same, in the input's dtype
    assert got.dtype == torch.bfloat16 and torch.equal(got, y.to(torch.bfloat16))


@needs_int8
def test_w8a8_decodes_on_int8_products_near_the_learner_and_follows_weight_syncs(make_tiny_model, char_tokenizer):
    """The w8a8 form shares the fp32 learner's very module (its own int8 copies are the engine's), yet counts as
    another policy: the correction is on by default. Its log-probs are those it sampled from (near the learner's,
    not equal), and a weight sync repacks: it then decodes what the new weights decode."""
    from rlvr.rollout import behaviour_differs
    from rlvr.rollout.weights import rollout_model

    model = make_tiny_model(sharp=True)
    engine = TorchEngine(rollout_model(model, "w8a8", None), char_tokenizer.pad_token_id, weights="w8a8")
    assert engine.model is model and engine.packed.int8
    assert behaviour_differs(engine, model) and not behaviour_differs(TorchEngine(model, 0), model)
    got = _sample(engine, char_tokenizer)
    assert engine.packed.repacks == len(_linears(model))
    # the first token of each completion comes from the prefill, on the model's own kernels
    assert 0 < logprob_gaps(model, _prompts(char_tokenizer), got, skip=1).mean() < 0.1
    other = make_tiny_model(seed=1, sharp=True)
    greedy = SamplingParams(n=1, max_new_tokens=10, temperature=0.0, ignore_eos=True)
    before = _sample(engine, char_tokenizer, greedy)
    engine.load_weights(other.state_dict(), version=1)
    after = _sample(engine, char_tokenizer, greedy)
    fresh = TorchEngine(rollout_model(other, "w8a8", None), char_tokenizer.pad_token_id, weights="w8a8")
    _assert_same(after, _sample(fresh, char_tokenizer, greedy), tol=0.0)
    assert [c.token_ids for g in after for c in g] != [c.token_ids for g in before for c in g]
