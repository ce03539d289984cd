"""The verifiers adapter (rlvr.environments.adapters.verifiers_env) end to end: real verifiers 0.4 environments
(a single-turn taskset and a multi-turn env that plays the user, in tests/environments/verifiers_envs/) run
their own chat loop against rlvr's endpoint over a tiny Llama; the samples carry the exact tokens the engine
sampled, observations masked, and the environment's reward, or none (counted) when it gave none.

verifiers 0.4 pins openai<3, which would downgrade the project's environment, so it is not in `.[dev]`: these
tests run where `pip install 'rlvr[verifiers]'` was done (docs/environments.md) and are skipped elsewhere."""

from __future__ import annotations

import copy
import dataclasses
import re
from pathlib import Path

import pytest
import torch

pytest.importorskip("verifiers.v1", reason="verifiers is not installed (pip install 'rlvr[verifiers]', in an "
                                           "environment of its own: it downgrades openai)")

from rlvr.config import TaskConfig, load_config  # noqa: E402
from rlvr.environments import build_environment  # noqa: E402
from rlvr.environments.adapters.base import UNFINISHED  # noqa: E402
from rlvr.logging.metrics import read_jsonl  # noqa: E402
from rlvr.models.loading import encode_prompt, stop_token_ids  # noqa: E402
from rlvr.models.tiny import build_tiny_llama  # noqa: E402
from rlvr.rollout.base import SamplingParams, sample_seed  # noqa: E402
from rlvr.rollout.episodes import generate_for, segments, with_environment  # noqa: E402
from rlvr.rollout.torch_engine import TorchEngine  # noqa: E402
from rlvr.tasks.registry import build_task  # noqa: E402
from rlvr.trainer import Trainer  # noqa: E402
from rlvr.verifiers import score_sample  # noqa: E402
from tests.conftest import TINY_RUN  # noqa: E402

ENVS = Path(__file__).parent / "verifiers_envs"


@pytest.fixture
def run_episodes(monkeypatch, char_tokenizer):
    """`run_episodes(spec, n, budget, **options)` -> (problems, groups, engine, tokenizer)."""
    monkeypatch.syspath_prepend(str(ENVS))
    engines = []

    def run(spec, n=2, budget=40, problems=2, **options):
        cfg = TaskConfig(environment=spec, environment_options=options)
        cfg.episode.max_turns = 4
        env = build_environment(cfg, char_tokenizer, budget)
        task = build_task(cfg)
        model = build_tiny_llama(char_tokenizer, 32, 2, 2, 64, max_position_embeddings=256, seed=3).eval()
        base = TorchEngine(model, char_tokenizer.pad_token_id)
        engine = with_environment(base, env, char_tokenizer)
        engines.append(engine)
        chosen = [task.train_problem(i) for i in range(problems)]
        prompts = [encode_prompt(p, char_tokenizer) for p in chosen]
        sampling = SamplingParams(n, budget, 1.0, 1.0, stop_token_ids(char_tokenizer))
        return chosen, prompts, generate_for(engine, chosen, prompts, sampling, seeds=[5, 6]), base, sampling

    yield run
    for e in engines:
        e.close()


def test_single_turn_samples_are_the_engines_tokens_and_the_rubrics_reward(run_episodes, char_tokenizer):
    problems, prompts, groups, base, sampling = run_episodes("verifiers:rlvr_vf_digit")
    for i, (problem, prompt, group) in enumerate(zip(problems, prompts, groups)):
        for j, c in enumerate(group):
            assert c.prompt_ids == prompt  # the chat loop sent the task's messages, rendered as rlvr renders them
            assert c.mask == [1] * len(c.token_ids) and c.episode.turns == 1
            # the turn is the engine's own sample for the session's seed: token ids and log-probs
            one = dataclasses.replace(sampling, n=1)  # a session's turn is one sample
            own = base.generate([prompt], one, seeds=[sample_seed(sample_seed([5, 6][i], j), 0)])[0][0]
            assert c.token_ids == own.token_ids
            assert c.logprobs == pytest.approx(own.logprobs, abs=1e-6)
            reply = char_tokenizer.decode(c.token_ids, skip_special_tokens=True)
            answer = re.search(r"Say (\d)", problem.prompt[-1]["content"]).group(1)
            score = score_sample(lambda p, t: pytest.fail("the task's verifier must not score it"), problem, "",
                                 c.episode)
            assert score.reward == float(answer in reply)
            assert score.details["rewards"] == {"says_digit": score.reward}


def test_multi_turn_episodes_mask_what_the_environment_said(run_episodes, char_tokenizer):
    problems, prompts, groups, base, sampling = run_episodes("verifiers:rlvr_vf_guess", budget=48)
    seen_observation = False
    for problem, group in zip(problems, groups):
        for c in group:
            rec = c.episode
            assert len(c.token_ids) == len(c.logprobs) == len(c.mask) <= 48
            assert rec.segments == segments(c.mask)
            model_turns = [text for role, text in rec.transcript if role == "model"]
            said = [text for role, text in rec.transcript if role == "observation"]
            assert said == [f"\n{w}\n" for w in re.findall(r"higher|lower", "".join(said))]  # only the env's words
            assert all(lp == 0.0 for lp, m in zip(c.logprobs, c.mask) if not m)
            assert all(lp < 0.0 for lp, m in zip(c.logprobs, c.mask) if m)
            seen_observation |= bool(said)
            if rec.env_score is None:  # no reward: counted as unfinished (the budget ran out), never a 0
                assert rec.env_error == UNFINISHED and len(c.token_ids) >= 40
                continue
            target = (7 * problem.meta["verifiers_index"] + 3) % 10
            guesses = [re.findall(r"\d", t) for t in model_turns]  # no special token holds a digit
            found = any(g and int(g[0]) == target for g in guesses[:3])
            assert rec.env_score.reward == float(found) and rec.env_score.correct == found
    assert seen_observation


def test_a_failing_rubric_gives_no_reward_and_says_why(run_episodes):
    _, _, groups, *_ = run_episodes("verifiers:rlvr_vf_digit", n=1, problems=1, taskset={"broken": True})
    rec = groups[0][0].episode
    assert rec.env_score is None and "the rubric broke" in rec.env_error
    assert score_sample(lambda p, t: pytest.fail("no fallback to the verifier"), None, "", rec) is None


def test_bad_options_are_refused_with_their_name(monkeypatch, char_tokenizer):
    monkeypatch.syspath_prepend(str(ENVS))
    for options, field in (({"nope": 1}, "task.environment_options.nope"),
                           ({"taskset": {"broken": "very"}}, "task.environment_options.taskset"),
                           ({"max_concurrent": 0}, "task.environment_options.max_concurrent")):
        with pytest.raises(ValueError, match=re.escape(field)):
            build_environment(TaskConfig(environment="verifiers:rlvr_vf_digit", environment_options=options),
                              char_tokenizer, 32)
    with pytest.raises(ValueError, match="task.environment: verifiers has no taskset 'rlvr_vf_nothing'"):
        build_environment(TaskConfig(environment="verifiers:rlvr_vf_nothing"), char_tokenizer, 32)


def test_a_verifiers_environment_trains_in_the_loop(monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(ENVS))
    data = copy.deepcopy(TINY_RUN)
    data["model"]["max_position_embeddings"] = 256
    data["task"] = {"name": "verifiers", "environment": "verifiers:rlvr_vf_digit"}
    data["rollout"]["max_new_tokens"] = 24
    data["train"].update(steps=2, checkpoint_every=0)
    data["eval"] = {"num_problems": 2}
    trainer = Trainer(load_config(base=data), tmp_path)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    collected = trainer.collect()
    assert len(collected.kept) == 4
    for r in collected.kept:
        assert r.prompt_ids == trainer.encode(r.problem)  # the program's first prompt is rlvr's rendering
        assert r.completion_mask == [1] * len(r.completion_ids) and len(r.logprobs) == len(r.completion_ids)
        answer = re.search(r"Say (\d)", r.problem.prompt[-1]["content"]).group(1)
        assert r.score.reward == float(answer in r.text) and r.score.details["rewards"].keys() == {"says_digit"}
    trainer.run(progress=False)
    result = trainer.run_eval("final")  # held-out tasks (every fifth), greedy episodes scored by the rubric
    trainer.logger.close()
    assert 0.0 <= result["accuracy"] <= 1.0 and read_jsonl(tmp_path / "eval.jsonl")[-1]["phase"] == "final"
    rows = read_jsonl(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2] and all(r["episode/env_errors"] == 0 for r in rows)
    assert any(not torch.equal(v, before[k]) for k, v in trainer.model.state_dict().items())  # the policy moved
