"""The vLLM engine's side of the protocol, against a stand-in `vllm` module (vLLM itself needs CUDA):
requests carry the prompt ids, one seed per prompt and logprobs=0; outputs become `Completion`s with the
sampled tokens' log-probs; weights are loaded in place through the worker extension and the prefix cache
is emptied. What vLLM does with them is vLLM's; this checks what rlvr asks of it and reads back."""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass, field

import pytest
import torch

from rlvr.rollout.base import SamplingParams
from rlvr.rollout.vllm_engine import EXTENSION, VLLMEngine, WeightSync, to_completion


@dataclass
class Logprob:
    logprob: float


@dataclass
class Output:
    token_ids: list[int]
    logprobs: list[dict]
    finish_reason: str


@dataclass
class FakeLLM:
    kwargs: dict
    calls: list = field(default_factory=list)

    def generate(self, prompts, params, use_tqdm=True):
        self.calls.append(("generate", prompts, params))
        outs = []
        for prompt, p in zip(prompts, params):
            ids = prompt["prompt_token_ids"]
            samples = []
            for j in range(p.n):  # a completion that depends on the prompt, the seed and the sample
                toks = [(ids[-1] + p.seed + j + k) % 50 for k in range(p.max_tokens)]
                stop = next((k for k, t in enumerate(toks) if t in p.stop_token_ids), None)
                toks = toks[: stop + 1] if stop is not None else toks
                lps = [{t: Logprob(-0.1 * (k + 1)), 99: Logprob(-9.0)} for k, t in enumerate(toks)]
                samples.append(Output(toks, lps, "stop" if stop is not None else "length"))
            outs.append(types.SimpleNamespace(outputs=samples))
        return outs

    def collective_rpc(self, method, args=()):
        self.calls.append(("rpc", method, args))

    def reset_prefix_cache(self):
        self.calls.append(("reset_prefix_cache",))


@pytest.fixture
def fake_vllm(monkeypatch):
    mod = types.ModuleType("vllm")
    mod.LLM = lambda **kw: FakeLLM(kw)
    mod.SamplingParams = lambda **kw: types.SimpleNamespace(**kw)
    inputs = types.ModuleType("vllm.inputs")
    inputs.TokensPrompt = lambda prompt_token_ids: {"prompt_token_ids": prompt_token_ids}
    mod.inputs = inputs
    monkeypatch.setitem(sys.modules, "vllm", mod)
    monkeypatch.setitem(sys.modules, "vllm.inputs", inputs)
    return mod


def test_requests_outputs_and_seeds(fake_vllm):
    engine = VLLMEngine("/some/model", dtype="bfloat16", seed=3)
    kw = engine.llm.kwargs
    assert kw["logprobs_mode"] == "processed_logprobs" and kw["worker_extension_cls"] == EXTENSION
    assert kw["enable_prefix_caching"] and kw["model"] == "/some/model"
    sampling = SamplingParams(n=3, max_new_tokens=6, temperature=0.7, top_p=0.9, stop_token_ids=(45,))
    groups = engine.generate([[1, 2, 40], [7]], sampling, seeds=[2, 5])
    (_, prompts, params), = [c for c in engine.llm.calls if c[0] == "generate"]
    assert [p["prompt_token_ids"] for p in prompts] == [[1, 2, 40], [7]]
    assert [(p.n, p.seed, p.logprobs, p.temperature, p.top_p, p.max_tokens, p.stop_token_ids) for p in params] == [
        (3, 2, 0, 0.7, 0.9, 6, [45]), (3, 5, 0, 0.7, 0.9, 6, [45])]
    assert [len(g) for g in groups] == [3, 3]
    first = groups[0][0]  # 42, 43, 44, 45 = stop: the stop token is kept, as the torch engine keeps it
    assert first.token_ids == [42, 43, 44, 45] and first.finish_reason == "stop"
    assert first.logprobs == pytest.approx([-0.1, -0.2, -0.3, -0.4])  # the sampled token's, not the others'
    assert groups[1][0].finish_reason == "length" and len(groups[1][0].token_ids) == 6


def test_load_weights_goes_through_the_worker_extension_and_resets_the_prefix_cache(fake_vllm):
    engine = VLLMEngine("/m")
    state = {"w": torch.ones(2)}
    engine.load_weights(state, version=4)
    assert engine.version == 4
    assert [c[0] for c in engine.llm.calls] == ["rpc", "reset_prefix_cache"]
    assert engine.llm.calls[0][1:] == ("rlvr_load_weights", (state,))
    engine.load_weights(None, version=5)  # nothing to load, only the version moves
    assert engine.version == 5 and len(engine.llm.calls) == 2

    loaded = []
    worker = WeightSync()
    model = types.SimpleNamespace(load_weights=lambda weights: loaded.extend(weights))
    worker.model_runner = types.SimpleNamespace(model=model)
    assert worker.rlvr_load_weights(state) == 1 and loaded == [("w", state["w"])]


def test_missing_logprobs_and_missing_vllm_are_clear_errors(monkeypatch):
    with pytest.raises(RuntimeError, match="logprobs=0"):
        to_completion(Output([1, 2], [], "length"), ())
    monkeypatch.setitem(sys.modules, "vllm", None)
    with pytest.raises(ImportError, match=r"rlvr\[vllm\]"):
        VLLMEngine("/m")


def test_config_refuses_lora_with_vllm():
    from rlvr.config import ConfigError, load_config

    assert load_config(overrides=["rollout.engine=vllm"]).rollout.engine == "vllm"
    with pytest.raises(ConfigError, match="model.lora_r"):
        load_config(overrides=["rollout.engine=vllm", "model.lora_r=8"])
