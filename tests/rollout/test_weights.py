"""Rollout weight forms (`rollout.weights`): a quantised copy beside the learner's weights samples close to
the learner's policy, follows each weight sync, and forms the hardware lacks are refused by name."""

from __future__ import annotations

import copy

import pytest
import torch

from rlvr.rollout.base import SamplingParams
from rlvr.rollout.torch_engine import TorchEngine
from rlvr.rollout.weights import resolve_weights, rollout_model
from tests.conftest import logprob_gaps

pytest.importorskip("torchao")


def _prompts(tok):
    return [[tok.bos_token_id] + tok(t, add_special_tokens=False)["input_ids"] for t in ("12+34=", "5*6=")]


def test_int8_copy_samples_near_the_learner_and_follows_weight_syncs(make_tiny_model, char_tokenizer):
    model = make_tiny_model(seed=0, sharp=True)
    engine = TorchEngine(rollout_model(model, "int8", None), char_tokenizer.pad_token_id, weights="int8")
    assert engine.model is not model and next(model.parameters()).dtype == torch.float32  # learner untouched
    greedy = SamplingParams(1, 6, temperature=0.0)
    ref = TorchEngine(model, char_tokenizer.pad_token_id)
    got = engine.generate(_prompts(char_tokenizer), SamplingParams(2, 6, 1.0), torch.Generator().manual_seed(0))
    # the behaviour log-probs are near the learner's own for the same tokens (int8 weights, bf16 activations)
    assert 0 < logprob_gaps(model, _prompts(char_tokenizer), got).mean() < 0.1
    # after a sync to other weights, the int8 engine decodes what those weights decode
    other = make_tiny_model(seed=1, sharp=True)
    engine.load_weights(other.state_dict(), version=1)
    want = TorchEngine(rollout_model(other, "int8", None), char_tokenizer.pad_token_id, weights="int8")
    assert [c.token_ids for g in engine.generate(_prompts(char_tokenizer), greedy) for c in g] == \
        [c.token_ids for g in want.generate(_prompts(char_tokenizer), greedy) for c in g]
    assert [c.token_ids for g in engine.generate(_prompts(char_tokenizer), greedy) for c in g] != \
        [c.token_ids for g in ref.generate(_prompts(char_tokenizer), greedy) for c in g]


def test_bf16_form_is_a_bf16_copy_and_same_is_the_learner_itself(make_tiny_model):
    model = make_tiny_model()
    bf16 = rollout_model(model, "bf16", None)
    assert bf16 is not model and next(bf16.parameters()).dtype == torch.bfloat16
    assert rollout_model(model, "same", None) is model
    assert rollout_model(copy.deepcopy(model), "same", torch.float32) is not model


def test_forms_the_hardware_or_engine_lacks_are_refused_by_name():
    cpu = torch.device("cpu")
    assert resolve_weights("auto", cpu) == "same"
    with pytest.raises(ValueError, match=r"rollout.weights: fp8 needs a CUDA GPU"):
        resolve_weights("fp8", cpu)
    with pytest.raises(ValueError, match=r"rollout.weights: int8 .* rollout.engine: vllm"):
        resolve_weights("int8", cpu, engine="vllm")
    with pytest.raises(ValueError, match=r"rollout.weights: w8a8 .* rollout.engine: vllm"):
        resolve_weights("w8a8", cpu, engine="vllm")
    with pytest.raises(ValueError, match=r"rollout.weights: w8a8 runs on oneDNN's int8 CPU kernels"):
        resolve_weights("w8a8", torch.device("cuda"))


def test_ignore_eos_runs_every_completion_to_the_limit(make_tiny_model, char_tokenizer):
    model = make_tiny_model(sharp=True)
    engine = TorchEngine(model, char_tokenizer.pad_token_id)
    prompt = _prompts(char_tokenizer)[:1]
    ((first,),) = engine.generate(prompt, SamplingParams(1, 8, 0.0))
    stop = (first.token_ids[1],)  # greedy decoding hits this token at step 2
    ((short,),) = engine.generate(prompt, SamplingParams(1, 8, 0.0, stop_token_ids=stop))
    ((full,),) = engine.generate(prompt, SamplingParams(1, 8, 0.0, stop_token_ids=stop, ignore_eos=True))
    assert len(short.token_ids) == 2 and short.finish_reason == "stop"
    assert full.token_ids == first.token_ids and len(full.token_ids) == 8 and full.finish_reason == "length"
