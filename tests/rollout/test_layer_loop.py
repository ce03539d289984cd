"""Decode steps as a plain loop over the model's modules (rlvr.rollout.layer_loop): the same samples and
log-probs as transformers' forward, bit for bit, wherever the loop runs; transformers' forward wherever it
does not fit."""

from __future__ import annotations

import pytest
import torch
from transformers import MistralConfig, MistralForCausalLM, Qwen2Config, Qwen2ForCausalLM

from rlvr.models.attention import use_short_attention
from rlvr.rollout.base import SamplingParams
from rlvr.rollout.cpu_kernels import can_pack, packs, packs_int8
from rlvr.rollout.torch_engine import TorchEngine, inference_copy

# rows finish at the stop token and leave the batch (the loop then reads the compacted cache)
SAMPLING = SamplingParams(n=4, max_new_tokens=14, temperature=1.0, stop_token_ids=(5, 12, 14, 56, 92))


def _sharp(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * (0.3 if p.dim() == 2 else 0.1) + (p.dim() == 1))
    return model.eval()


def _config(cls, tok, **extra):
    return cls(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
               num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
               pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, **extra)


def _qwen2(tok) -> torch.nn.Module:  # biases on q, k and v
    torch.manual_seed(0)
    return _sharp(Qwen2ForCausalLM(_config(Qwen2Config, tok)))


def _mistral(tok, window: int | None) -> torch.nn.Module:
    torch.manual_seed(0)
    return _sharp(MistralForCausalLM(_config(MistralConfig, tok, sliding_window=window)))


def _sample(engine: TorchEngine, tok, sampling: SamplingParams = SAMPLING):
    prompts = [tok.encode(p) for p in ("123+456=", "7+8=", "9")]  # three lengths: left padding
    return engine.generate(prompts, sampling, seeds=[11, 12, 13])


def _pair(model, tok, **kw) -> tuple[TorchEngine, TorchEngine]:
    return (TorchEngine(model, tok.pad_token_id, layer_loop=True, **kw),
            TorchEngine(model, tok.pad_token_id, layer_loop=False, **kw))


def _identical(a, b) -> None:
    for ga, gb in zip(a, b, strict=True):
        for ca, cb in zip(ga, gb, strict=True):
            assert ca.token_ids == cb.token_ids
            assert ca.logprobs == cb.logprobs
            assert ca.finish_reason == cb.finish_reason


@pytest.mark.parametrize("kind", ["llama", "qwen2"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("cpu_kernels", [True, False])
def test_the_loop_samples_what_transformers_forward_samples(make_tiny_model, char_tokenizer, kind, dtype, cpu_kernels):
    base = make_tiny_model(sharp=True) if kind == "llama" else _qwen2(char_tokenizer)
    model = inference_copy(base, dtype)
    assert use_short_attention(model)
    loop, plain = _pair(model, char_tokenizer, cpu_kernels=cpu_kernels)
    a, b = _sample(loop, char_tokenizer), _sample(plain, char_tokenizer)
    assert loop.loop_steps > 0 and plain.loop_steps == 0
    assert any(c.finish_reason == "stop" for g in a for c in g)  # some rows left the batch early
    assert len({tuple(c.token_ids) for g in a for c in g}) > 6  # varied samples, not one repeated answer
    _identical(a, b)
    if cpu_kernels and can_pack(torch.device("cpu")) and packs(dtype):
        # on packed weights each layer's q/k/v and gate/up ran as one product each: still the same samples
        assert loop.packed.stacks == 2 * len(model.model.layers) and plain.packed.stacks == 0


def test_the_loop_samples_a_lora_model_with_its_adapter(make_tiny_model, char_tokenizer):
    """PEFT's LoRA layers are called as modules: the adapter's update is in the loop's logits."""
    from rlvr.config.schema import ModelConfig
    from rlvr.models.lora import apply_lora

    base = make_tiny_model(sharp=True)
    assert use_short_attention(base)
    model = apply_lora(base, ModelConfig(lora_r=4)).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:  # PEFT starts B at 0 (the adapter a no-op): make it count
                p.copy_(torch.randn(p.shape, generator=torch.Generator().manual_seed(1)))
    loop, plain = _pair(model, char_tokenizer)
    a = _sample(loop, char_tokenizer)
    assert loop.loop_steps > 0
    _identical(a, _sample(plain, char_tokenizer))
    with model.disable_adapter():
        without = _sample(TorchEngine(model, char_tokenizer.pad_token_id, layer_loop=True), char_tokenizer)
    assert [c.token_ids for g in a for c in g] != [c.token_ids for g in without for c in g]


def test_the_loop_writes_each_step_into_the_cache_slot_the_next_step_reads(make_tiny_model, char_tokenizer):
    """A step's logits come from the loop; the steps after it read the keys it wrote. Greedy decoding from
    the loop equals decoding every prefix again with a full forward and no cache."""
    model = make_tiny_model(sharp=True)
    assert use_short_attention(model)
    engine = TorchEngine(model, char_tokenizer.pad_token_id, layer_loop=True)
    prompt = char_tokenizer.encode("12+3=")
    greedy = SamplingParams(n=1, max_new_tokens=10, temperature=0.0)
    out = engine.generate([prompt], greedy)[0][0]
    assert engine.loop_steps == 9
    ids = list(prompt)
    with torch.no_grad():
        for token, logprob in zip(out.token_ids, out.logprobs, strict=True):
            logits = model(input_ids=torch.tensor([ids])).logits[0, -1]
            assert token == int(logits.argmax())
            assert logprob == pytest.approx(float(torch.log_softmax(logits, -1)[token]), abs=1e-5)
            ids.append(token)


def test_models_and_caches_the_loop_does_not_reproduce_decode_through_transformers(make_tiny_model, char_tokenizer):
    sdpa = make_tiny_model(sharp=True)  # transformers' SDPA attention, not rlvr's
    engine = TorchEngine(sdpa, char_tokenizer.pad_token_id, layer_loop=True)
    _sample(engine, char_tokenizer)
    assert engine.loop_steps == 0
    model = make_tiny_model(sharp=True)
    assert use_short_attention(model)
    dynamic = TorchEngine(model, char_tokenizer.pad_token_id, cache="dynamic", layer_loop=True)
    _sample(dynamic, char_tokenizer)
    assert dynamic.loop_steps == 0
    # a sliding window shorter than the cache: transformers masks keys beyond it, the loop would not
    short = _mistral(char_tokenizer, window=4)
    assert use_short_attention(short)
    windowed, plain = _pair(short, char_tokenizer)
    _identical(_sample(windowed, char_tokenizer), _sample(plain, char_tokenizer))
    assert windowed.loop_steps == 0
    stacking = can_pack(torch.device("cpu")) and packs(torch.float32)
    if stacking:  # nothing stacked for a decode the loop does not run: its linears stay packed one by one
        assert windowed.packed.stacks == 0 and windowed.packed.covers()
    # the same architecture without a window: the loop runs
    full = _mistral(char_tokenizer, window=None)
    assert use_short_attention(full)
    loop, plain = _pair(full, char_tokenizer)
    _identical(_sample(loop, char_tokenizer), _sample(plain, char_tokenizer))
    assert loop.loop_steps > 0
    if stacking:
        assert loop.packed.stacks == 2 * len(full.model.layers)


def test_the_loop_samples_an_int8_rollout_copy_as_its_forward_does(make_tiny_model, char_tokenizer):
    """torchao's int8 weight-only linears (`rollout.weights: int8`) are modules too: the loop runs them."""
    pytest.importorskip("torchao")
    from rlvr.rollout.weights import rollout_model

    base = make_tiny_model(sharp=True)
    assert use_short_attention(base)
    model = rollout_model(base, "int8", None)
    loop, plain = _pair(model, char_tokenizer, weights="int8")
    a = _sample(loop, char_tokenizer)
    assert loop.loop_steps > 0
    _identical(a, _sample(plain, char_tokenizer))


def test_the_engine_says_whether_its_decode_steps_take_the_loop(make_tiny_model, char_tokenizer):
    """`loops_layers` (shown in the run header) agrees with what decoding does."""
    model = make_tiny_model(sharp=True)
    assert not TorchEngine(model, char_tokenizer.pad_token_id).loops_layers  # SDPA: transformers' forward
    assert use_short_attention(model)
    for kw, loops in (({}, True), ({"layer_loop": False}, False), ({"cache": "dynamic"}, False)):
        engine = TorchEngine(model, char_tokenizer.pad_token_id, **kw)
        _sample(engine, char_tokenizer)
        assert engine.loops_layers is loops and (engine.loop_steps > 0) is loops, kw


def test_rollout_layer_loop_false_in_a_config_keeps_decode_on_the_forward(tmp_path, tiny_recipe):
    """`rollout.layer_loop` reaches the engine a run builds, and the header says which way decode goes."""
    from rlvr.config import load_config
    from rlvr.trainer import Trainer

    for value in (True, False):
        trainer = Trainer(load_config(tiny_recipe(**{"rollout.layer_loop": value, "train.steps": 1})),
                          tmp_path / f"run_{value}")
        assert trainer.engine.layer_loop is value
        assert ("decode steps as a layer loop" in trainer.header()) is trainer.engine.loops_layers
        trainer.step()
        assert (trainer.engine.loop_steps > 0) is value


needs_bf16_packs = pytest.mark.skipif(not (can_pack(torch.device("cpu")) and packs(torch.bfloat16)),
                                      reason="compiled loop steps need oneDNN-packed bf16 weights (AVX-512)")
# compiled loop steps in each dtype oneDNN packs (fp32 everywhere, bf16 with AVX-512), with the largest log-prob
# gap allowed against the eager loop: bf16 logit rounding, or fp32's
PACKED_DTYPES = [
    pytest.param(torch.bfloat16, 0.25, marks=needs_bf16_packs, id="bf16"),
    pytest.param(torch.float32, 1e-3, marks=pytest.mark.skipif(
        not (can_pack(torch.device("cpu")) and packs(torch.float32)), reason="no oneDNN-packed fp32 weights"), id="fp32"),
]


def _greedy(engine: TorchEngine, tok, n: int = 2):
    return _sample(engine, tok, SamplingParams(n=n, max_new_tokens=10, temperature=0.0, ignore_eos=True))


def _close(a, b, tol: float = 0.25) -> None:  # compiled kernels round differently: the same tokens, log-probs
    # within the rounding of the logits (this sharp tiny model's run to ~30, where a bf16 step is 0.125)
    for ga, gb in zip(a, b, strict=True):
        for ca, cb in zip(ga, gb, strict=True):
            assert ca.token_ids == cb.token_ids
            assert max(abs(x - y) for x, y in zip(ca.logprobs, cb.logprobs)) < tol


@pytest.mark.parametrize("dtype,tol", PACKED_DTYPES)
def test_compiled_loop_steps_sample_what_the_eager_loop_samples_and_follow_a_weight_sync(make_tiny_model,
                                                                                         char_tokenizer, dtype, tol):
    model = inference_copy(make_tiny_model(sharp=True), dtype)
    assert use_short_attention(model)
    compiled = TorchEngine(model, char_tokenizer.pad_token_id, compile=True)
    eager = TorchEngine(model, char_tokenizer.pad_token_id)
    assert compiled.compile_loop and not compiled.compile and not eager.compile_loop
    before = _greedy(compiled, char_tokenizer)
    assert compiled.compiled_loop_steps == compiled.loop_steps == 9  # every decode step ran compiled
    _close(before, _greedy(eager, char_tokenizer), tol)
    # a sync to new weights: the compiled graph reads them (its linears through the repacked handles)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    gen = torch.Generator().manual_seed(1)
    for v in state.values():
        if v.is_floating_point():
            v.add_(torch.randn(v.shape, generator=gen).to(v.dtype) * 0.3)
    compiled.load_weights(state, 1)
    eager.load_weights(None, 1)
    after = _greedy(compiled, char_tokenizer)
    assert [c.token_ids for g in after for c in g] != [c.token_ids for g in before for c in g]
    _close(after, _greedy(eager, char_tokenizer), tol)


@needs_bf16_packs
@pytest.mark.skipif(not packs_int8(), reason="oneDNN's int8 product does not run on this CPU")
def test_compiled_loop_steps_on_int8_weights_sample_what_the_eager_int8_loop_samples(make_tiny_model, char_tokenizer):
    """`rollout.weights: w8a8` compiled: each input's rows quantised inside the graph, the product one operator;
    the same tokens as the eager loop (whose products quantise their own inputs), log-probs within rounding."""
    model = inference_copy(make_tiny_model(sharp=True), torch.bfloat16)
    assert use_short_attention(model)
    compiled = TorchEngine(model, char_tokenizer.pad_token_id, compile=True, weights="w8a8")
    eager = TorchEngine(model, char_tokenizer.pad_token_id, weights="w8a8")
    assert compiled.compile_loop and compiled.packed.int8
    got = _greedy(compiled, char_tokenizer)
    assert compiled.compiled_loop_steps == compiled.loop_steps == 9
    _close(got, _greedy(eager, char_tokenizer))
    # and not the bf16 weights' samples bit for bit: the int8 products moved the log-probs
    same = _greedy(TorchEngine(model, char_tokenizer.pad_token_id), char_tokenizer)
    assert any(a.logprobs != b.logprobs for ga, gb in zip(got, same) for a, b in zip(ga, gb))


@pytest.mark.parametrize("dtype,tol", PACKED_DTYPES)
def test_compiled_loop_steps_drop_finished_rows_by_buckets_and_round_the_cache_up(make_tiny_model, char_tokenizer,
                                                                                  dtype, tol):
    """Fixed shapes: finished rows leave the batch only down a ladder of batch sizes (finished rows filling it),
    and the cache's length is a multiple of SLOTS; the samples are those of the same compiled steps with every
    row kept, and they end at their stop tokens."""
    from rlvr.compiled_forward import bucket
    from rlvr.rollout import torch_engine

    model = inference_copy(make_tiny_model(sharp=True), dtype)
    assert use_short_attention(model)
    compiled = TorchEngine(model, char_tokenizer.pad_token_id, compile=True)
    assert compiled.cache == "static"
    seen = []
    real = torch_engine.new_cache
    prompts = [char_tokenizer.encode(p) for p in ("123+456=", "7+8=", "9", "45*6=", "1-", "88")]
    sampling = SamplingParams(n=2, max_new_tokens=14, temperature=0.0, stop_token_ids=(5, 12, 14, 56, 92))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch_engine, "new_cache", lambda m, kind, n: seen.append(n) or real(m, kind, n))
        out = compiled.generate(prompts, sampling)
    assert seen and all(n % torch_engine.SLOTS == 0 for n in seen)
    rows = sorted({r for r, _ in compiled.compiled_shapes}, reverse=True)
    assert rows[0] == 12 and len(rows) > 1 and all(bucket(r) == r for r in rows)  # 12 rows, then fewer, all ladder sizes
    lengths = [len(c.token_ids) for g in out for c in g]
    assert min(lengths) < 14 and max(lengths) == 14  # some rows stopped early, others ran on past them
    assert all(c.finish_reason == ("stop" if c.token_ids[-1] in sampling.stop_token_ids else "length")
               for g in out for c in g)
    kept = TorchEngine(model, char_tokenizer.pad_token_id, compile=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch_engine, "bucket", lambda n: 10**9)  # no ladder: every row stays to the end
        want = kept.generate(prompts, sampling)
    assert {r for r, _ in kept.compiled_shapes} == {12}
    _close(out, want, tol)


@needs_bf16_packs
def test_a_compiled_engines_eager_decode_drops_finished_rows_by_its_compact_rule(make_tiny_model, char_tokenizer):
    """The ladder is for compiled steps only: where a compiled engine's decode runs its loop eagerly (here its
    linears have no handles), finished rows leave the batch as in any eager decode (`compact`)."""
    from rlvr.rollout import layer_loop, torch_engine

    model = inference_copy(make_tiny_model(sharp=True), torch.bfloat16)
    use_short_attention(model)
    prompts = [char_tokenizer.encode(p) for p in ("123+456=", "7+8=", "9", "45*6=", "1-", "88")]
    sampling = SamplingParams(n=2, max_new_tokens=14, temperature=0.0, stop_token_ids=(5, 12, 14, 56, 92))
    rows, real = [], torch_engine.select_rows
    out = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(layer_loop.LayerLoop, "_handles", lambda self, packed: None)
        mp.setattr(torch_engine, "select_rows", lambda cache, keep: rows.append(len(keep)) or real(cache, keep))
        for compile in (True, False):
            engine = TorchEngine(model, char_tokenizer.pad_token_id, compile=compile)
            assert engine.compile_loop is compile and engine.compact == 0.25
            out[compile] = engine.generate(prompts, sampling)
            assert engine.loop_steps > 0 and engine.compiled_loop_steps == 0
            if compile:
                compiled_rows, rows[:] = list(rows), []
    assert compiled_rows[0] == 12 and min(compiled_rows) < 12  # the prompts' expansion, then finished rows left
    assert compiled_rows == rows  # as the eager engine drops them
    # the same greedy paths; the log-probs within bf16 rounding, not bit for bit: the compiled engine's cache
    # is longer (slots in multiples of 64), and SDPA's kernel (`decode_attention`) rounds its probabilities to
    # bf16 in blocks of keys, so the empty slots move where the blocks fall
    for ga, gb in zip(out[True], out[False], strict=True):
        for ca, cb in zip(ga, gb, strict=True):
            assert (ca.token_ids, ca.finish_reason) == (cb.token_ids, cb.finish_reason)
            assert torch.allclose(torch.tensor(ca.logprobs), torch.tensor(cb.logprobs), atol=2e-2)
