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


# --- both engines report the same behaviour log-probs for top_p < 1 -------------------------------------------
def vllm_processed_logprobs(logits: torch.Tensor, temperature: float, top_p: float) -> torch.Tensor:
    """vLLM's sampler, re-written from its `apply_top_k_top_p` (ascending sort, drop the tokens whose
    cumulative probability stays <= 1 - p, keep the most likely) and `logprobs_mode="processed_logprobs"`
    (log-softmax of the logits after temperature and top-p). (B, V)"""
    logits = logits.float() / temperature
    logits_sort, logits_idx = logits.sort(dim=-1, descending=False)
    top_p_mask = logits_sort.softmax(dim=-1).cumsum(dim=-1) <= 1 - top_p
    top_p_mask[:, -1] = False
    logits_sort = logits_sort.masked_fill(top_p_mask, -float("inf"))
    return torch.log_softmax(logits_sort.scatter(-1, logits_idx, logits_sort), dim=-1)


@torch.no_grad()
def _teacher_forced(model, prompt: list[int], completion: list[int]) -> torch.Tensor:
    """(C, V) logits that predicted each completion token."""
    ids = torch.tensor([prompt + completion])
    return model(input_ids=ids).logits[0, len(prompt) - 1 : len(prompt) + len(completion) - 1]


@dataclass
class ModelLLM(FakeLLM):
    """A stand-in vLLM that samples from a torch model with vLLM's sampler (above)."""

    model: torch.nn.Module = None

    @torch.no_grad()
    def generate(self, prompts, params, use_tqdm=True):
        outs = []
        for prompt, p in zip(prompts, params):
            gen = torch.Generator().manual_seed(p.seed)
            samples = []
            for _ in range(p.n):
                ids, lps = list(prompt["prompt_token_ids"]), []
                for _ in range(p.max_tokens):
                    logits = self.model(input_ids=torch.tensor([ids])).logits[:, -1]
                    logp = vllm_processed_logprobs(logits, p.temperature, p.top_p)[0]
                    tok = int(torch.multinomial(logp.exp(), 1, generator=gen))
                    ids.append(tok)
                    lps.append({tok: Logprob(float(logp[tok]))})
                samples.append(Output(ids[len(prompt["prompt_token_ids"]):], lps, "length"))
            outs.append(types.SimpleNamespace(outputs=samples))
        return outs


def test_torch_and_vllm_engines_report_the_same_behaviour_logprobs_with_top_p(fake_vllm, make_tiny_model,
                                                                               char_tokenizer):
    from rlvr.rollout.torch_engine import TorchEngine, behaviour_logprobs

    model = make_tiny_model(seed=3, sharp=True)
    fake_vllm.LLM = lambda **kw: ModelLLM(kw, model=model)
    sampling = SamplingParams(n=3, max_new_tokens=6, temperature=0.8, top_p=0.7)
    prompts = [[char_tokenizer.bos_token_id] + char_tokenizer(t, add_special_tokens=False)["input_ids"]
               for t in ("12+34=", "5*6=")]
    engines = {"vllm": VLLMEngine("/m"), "torch": TorchEngine(model, char_tokenizer.pad_token_id)}
    truncated_somewhere = False
    for name, engine in engines.items():
        groups = engine.generate(prompts, sampling, seeds=[1, 2])
        for prompt, group in zip(prompts, groups):
            for c in group:
                logits = _teacher_forced(model, prompt, c.token_ids)
                tok = torch.tensor(c.token_ids)[:, None]
                want = vllm_processed_logprobs(logits, 0.8, 0.7).gather(-1, tok).squeeze(-1)
                ours = behaviour_logprobs(logits, 0.8, 0.7).gather(-1, tok).squeeze(-1)
                full = torch.log_softmax(logits / 0.8, -1).gather(-1, tok).squeeze(-1)
                got = torch.tensor(c.logprobs)
                torch.testing.assert_close(got, want, atol=1e-4, rtol=0, msg=f"{name} engine")
                torch.testing.assert_close(ours, want, atol=1e-4, rtol=0)
                truncated_somewhere |= bool((got - full).abs().max() > 1e-3)
    assert truncated_somewhere  # top-p cut something, so the renormalisation was exercised


def test_ignore_eos_asks_vllm_to_run_to_the_length_limit(fake_vllm):
    engine = VLLMEngine("/m")
    sampling = SamplingParams(n=1, max_new_tokens=5, stop_token_ids=(45,), ignore_eos=True)
    engine.generate([[40]], sampling, seeds=[2])
    (_, _, params), = [c for c in engine.llm.calls if c[0] == "generate"]
    assert params[0].ignore_eos is True and params[0].stop_token_ids == []


# --- multi-turn episodes: a request per turn, the history from vLLM's prefix cache ------------------------------
@dataclass
class ScriptedLLM(FakeLLM):
    """A stand-in vLLM whose "model" calls the calculator until the history holds a result, then answers;
    it ends a sample as vLLM does: at a stop token (kept), at the token that completes a `stop` string (kept,
    whatever `include_stop_str_in_output` says of the text), or at `max_tokens`."""

    tokenizer: object = None

    def generate(self, prompts, params, use_tqdm=True):
        self.calls.append(("generate", prompts, params))
        tok, outs = self.tokenizer, []
        for prompt, p in zip(prompts, params):
            history = tok.decode(prompt["prompt_token_ids"], skip_special_tokens=False)
            samples = []
            for j in range(p.n):
                script = (f"<answer>{42 + j}</answer>" if "<result>" in history
                          else f"<call>calculator 6*{7 + j}</call> and more")
                ids = tok(script, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
                text, end, reason = "", len(ids), "length"
                for k, t in enumerate(ids):
                    text += tok.decode([t], skip_special_tokens=False)
                    if t in p.stop_token_ids or any(s in text for s in p.stop):
                        end, reason = k + 1, "stop"
                        break
                ids = ids[: min(end, p.max_tokens)]
                reason = reason if end <= p.max_tokens else "length"
                samples.append(Output(ids, [{t: Logprob(-0.5)} for t in ids], reason))
            outs.append(types.SimpleNamespace(outputs=samples))
        return outs


def _calculator_env(**limits):
    from rlvr.environments.parsing import Format
    from rlvr.environments.tool_env import ToolEnvironment
    from rlvr.environments.tools import calculator_tool

    return ToolEnvironment([calculator_tool()], Format(), **{"max_turns": 3, "max_tool_calls": 2, **limits})


def test_vllm_episodes_pause_at_a_tool_call_and_resume_with_the_history_as_a_cached_prefix(fake_vllm,
                                                                                          char_tokenizer):
    from rlvr.rollout.episodes import generate_for, prompt_tools, with_environment
    from rlvr.rollout.vllm_episodes import VLLMEpisodeEngine, turn_seed

    tok = char_tokenizer
    fake_vllm.LLM = lambda **kw: ScriptedLLM(kw, tokenizer=tok)
    engine = with_environment(VLLMEngine("/m"), _calculator_env(), tok)
    assert isinstance(engine, VLLMEpisodeEngine) and prompt_tools(engine) is None  # the tag form: taught
    assert engine.engine.llm.kwargs["enable_prefix_caching"]
    prompt = tok("6*7=", add_special_tokens=False)["input_ids"]
    sampling = SamplingParams(n=2, max_new_tokens=60, temperature=1.0, stop_token_ids=(tok.eos_token_id,))
    (group,) = generate_for(engine, [None], [prompt], sampling, seeds=[5])
    rounds = [c for c in engine.engine.llm.calls if c[0] == "generate"]
    assert len(rounds) == 2 and engine.stats["rounds"] == 2
    (_, first, (p,)), (_, second, params) = rounds
    # round 1 is the single-turn request of the group, which stops at the end of a call as well
    assert [r["prompt_token_ids"] for r in first] == [prompt]
    assert (p.n, p.seed, p.max_tokens, p.logprobs, p.stop_token_ids) == (2, 5, 60, 0, [tok.eos_token_id])
    assert p.stop == ["</tool_call>", "</call>"] and p.include_stop_str_in_output
    for j, (c, request, q) in enumerate(zip(group, second, params)):
        text = tok.decode(c.token_ids, skip_special_tokens=False)
        call, result = f"<call>calculator 6*{7 + j}</call>", f"<result>{6 * (7 + j)}</result>"
        assert text == f"{call}{result}<answer>42</answer><eos>"  # the call's tail was never sampled
        n_call, n_obs = len(tok(call)["input_ids"]), len(tok(result)["input_ids"])
        assert c.mask == [1] * n_call + [0] * n_obs + [1] * (len(c.token_ids) - n_call - n_obs)
        assert c.logprobs == [-0.5] * n_call + [0.0] * n_obs + [-0.5] * (len(c.token_ids) - n_call - n_obs)
        assert c.finish_reason == "stop" and c.episode.turns == 2
        assert [(x.tool, x.error) for x in c.episode.calls] == [("calculator", None)]
        # round 2: the whole history as the prompt (vLLM's prefix cache holds its KV), one sample, its own seed
        assert request["prompt_token_ids"] == prompt + c.token_ids[: n_call + n_obs]
        assert (q.n, q.seed, q.max_tokens) == (1, turn_seed(5, j, 1), 60 - n_call - n_obs)
    assert len({q.seed for q in params}) == 2
    assert engine.stats["history_tokens"] == sum(len(r["prompt_token_ids"]) for r in second)


def test_a_vllm_episode_without_a_tool_call_is_the_single_turn_sample(fake_vllm, char_tokenizer):
    from rlvr.rollout.episodes import with_environment

    sampling = SamplingParams(n=3, max_new_tokens=6, temperature=0.7, stop_token_ids=(45,))
    plain = VLLMEngine("/m").generate([[1, 2, 40], [7]], sampling, seeds=[2, 5])
    engine = with_environment(VLLMEngine("/m"), _calculator_env(), char_tokenizer)
    episodes = engine.generate([[1, 2, 40], [7]], sampling, seeds=[2, 5])
    assert engine.stats["rounds"] == 1  # nobody called a tool: nothing went back to vLLM
    for gp, ge in zip(plain, episodes):
        for p, e in zip(gp, ge):
            assert (e.token_ids, e.logprobs, e.finish_reason) == (p.token_ids, p.logprobs, p.finish_reason)
            assert e.mask == [1] * len(e.token_ids) and e.episode.turns == 1
    assert {e.finish_reason for g in episodes for e in g} == {"stop", "length"}
    fixed = SamplingParams(n=1, max_new_tokens=5, stop_token_ids=(45,), ignore_eos=True)
    engine.generate([[40]], fixed, seeds=[2])
    last = [c for c in engine.engine.llm.calls if c[0] == "generate"][-1][2][0]
    assert last.ignore_eos is True and last.stop_token_ids == []
