"""The one training loop on the field's environments (rlvr.environments.adapters): a skyrl-gym environment
(`gsm8k_multi_turn`: it answers a wrong answer with a follow-up question and rewards every turn) and a
textarena game run inside `Trainer` with tiny models; episodes go through the EpisodeEngine, observation
tokens are masked, and every reward is the environment's own (checked by replaying the model's turns in a
fresh copy of the environment), or none at all."""

from __future__ import annotations

import copy
import random
import re

import pytest
import torch
from safetensors.torch import load_file

from rlvr.config import PretrainConfig, load_config
from rlvr.logging.metrics import read_jsonl
from rlvr.models.loading import encode_prompt, save_policy
from rlvr.models.tiny import build_tiny_llama
from rlvr.pretrain import pretrain
from rlvr.tasks.arithmetic import ArithmeticTask
from rlvr.trainer import Trainer
from tests.conftest import TINY_RUN

skyrl_gym = pytest.importorskip("skyrl_gym")
textarena = pytest.importorskip("textarena")

FOLLOW_UP = "\nNow provide only the final numeric answer in the exact format: '#### ANSWER'.\n"
END = re.compile(r"(<eos>|<pad>|<bos>|\s)+$")


@pytest.fixture(scope="module")
def gsm8k_style_model(tmp_path_factory, char_tokenizer):
    """A tiny Llama imitated on one-digit sums answered SkyRL's gsm8k way (`#### 11`), 60% of them right."""
    tok, task, rng = char_tokenizer, ArithmeticTask(difficulty=1, eval_size=4), random.Random(0)
    seqs, starts = [], []
    for i in range(256):
        p = task.train_problem(i)
        answer = p.answer if rng.random() < 0.6 else p.answer + rng.choice([-2, -1, 1, 2])
        prompt = encode_prompt(p, tok)
        seqs.append(prompt + tok(f"#### {answer}", add_special_tokens=False)["input_ids"] + [tok.eos_token_id])
        starts.append(len(prompt))
    model = build_tiny_llama(tok, hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64,
                             max_position_embeddings=160)
    pretrain(model, tok, (seqs, starts), PretrainConfig(steps=120, batch_size=32, lr=1e-2, warmup_steps=10))
    path = tmp_path_factory.mktemp("gsm8k_style_model")
    save_policy(model, tok, path)
    return path


def _config(task, model=None, **overrides):
    data = copy.deepcopy(TINY_RUN)
    if model is not None:
        data["model"] = {"kind": "hf", "path": str(model), "device": "cpu"}
    data["task"] = task
    data["rollout"] = {"num_generations": 4, "max_new_tokens": 120}
    data["train"].update({"steps": 3, "checkpoint_every": 0})
    data["eval"] = {"num_problems": 2, "every": 0}
    return load_config(base=data, overrides=[f"{k}={v}" for k, v in overrides.items()])


def _turns(tok, rollout) -> list[str]:
    """The model's turns as the environment read them (the end-of-turn token and trailing spaces dropped)."""
    return [END.sub("", tok.decode(rollout.completion_ids[a:b])) for role, a, b in rollout.episode.segments
            if role == "model"]


def _observation_spans(rollout):
    return [(a, b) for role, a, b in rollout.episode.segments if role == "observation"]


def test_a_skyrl_gym_environment_trains_in_the_loop_with_its_own_rewards(tmp_path, gsm8k_style_model):
    cfg = _config({"name": "arithmetic", "difficulty": 1, "environment": "skyrl_gym:gsm8k_multi_turn",
                   "environment_options": {"extras": {"max_turns": 2}}, "episode": {"max_turns": 2}},
                  gsm8k_style_model)
    trainer = Trainer(cfg, tmp_path)
    tok = trainer.tokenizer
    collected = trainer.collect()
    rollouts = collected.sampled
    assert len(rollouts) == 8
    follow_ups = 0
    for r in rollouts:
        # the reward is the environment's: a fresh copy, stepped with the same turns, gives the same sum
        env = skyrl_gym.make("gsm8k_multi_turn", env_config={}, extras={
            "reward_spec": {"method": "rule", "ground_truth": str(r.problem.answer)}, "extra_info": {},
            "max_turns": 2})
        rewards = [env.step(turn)["reward"] for turn in _turns(tok, r)]
        assert r.score is not None and r.score.reward == pytest.approx(sum(rewards))
        assert r.score.correct == (rewards[-1] == 1.0) and r.score.details["rewards"] == pytest.approx(rewards)
        # the follow-up question is in the transcript, masked, with no log-prob
        for a, b in _observation_spans(r):
            follow_ups += 1
            assert tok.decode(r.completion_ids[a:b]) == FOLLOW_UP
            assert r.completion_mask[a:b] == [0] * (b - a) and r.logprobs[a:b] == [0.0] * (b - a)
        assert sum(r.completion_mask) == sum(b - a for role, a, b in r.episode.segments if role == "model")
    assert follow_ups > 0, "no episode got the environment's follow-up"
    assert any(r.score.correct for r in rollouts) and len({r.score.reward for r in rollouts}) > 1  # informative

    batch, batch_rewards = trainer.assemble(collected.kept)
    assert batch_rewards.tolist() == pytest.approx([r.score.reward for r in collected.kept])
    for i, r in enumerate(collected.kept):  # no loss on the environment's tokens (targets shifted by one)
        P = len(r.prompt_ids)
        for a, b in _observation_spans(r):
            assert batch.completion_mask[i, P + a - 1 : P + b - 1].sum() == 0

    before = load_file(gsm8k_style_model / "model.safetensors")
    trainer.run(progress=False)
    trainer.logger.close()
    rows = read_jsonl(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert sum(r["episode/observation_tokens"] for r in rows) > 0 and all(r["episode/turns"] >= 1 for r in rows)
    after = load_file(tmp_path / "final/model.safetensors")
    assert any(not torch.equal(after[k], before[k]) for k in after if k in before)  # the policy moved


def _game_config(budget, **overrides):
    return _config({"environment": "textarena:GuessTheNumber-v0", "environment_options": {"max_turns": 3},
                    "episode": {"max_turns": 4}},
                   **{"model.max_position_embeddings": 1024, "rollout.max_new_tokens": budget,
                      "train.max_infra_error_rate": 1.0, "train.steps": 2, **overrides})


def test_a_textarena_game_in_the_loop_scores_finished_games_and_leaves_out_cut_ones(tmp_path):
    # an untrained tiny model rarely writes a valid guess: two invalid moves end the game with the game's
    # reward; a game still running when the token budget runs out has no reward and its group is left out
    trainer = Trainer(_game_config(300), tmp_path / "cut")
    tok = trainer.tokenizer
    collected = trainer.collect()
    scored = [r for r in collected.sampled if r.score is not None]
    unscored = [r for r in collected.sampled if r.score is None]
    assert scored and unscored
    for r in scored:  # replay: the same game (seed), the same moves, the same outcome
        game = textarena.make("GuessTheNumber-v0-raw", max_turns=3)
        state = random.getstate()
        game.reset(num_players=1, seed=r.problem.meta["seed"])
        for turn in _turns(tok, r):
            done, _ = game.step(turn)
        random.setstate(state)
        assert done
        rewards, _ = game.close()
        assert r.score.reward == pytest.approx(rewards[0])
        assert r.episode.ended in ("done", "length")  # a turn cut by the budget is still a move
    for r in unscored:
        assert r.episode.env_error.startswith("unfinished") and r.episode.ended == "length"
    info = collected.info
    assert info["episode/env_unfinished"] == info["verify/infra_errors"] == len(unscored)
    # a group with an unfinished game is left out whole; the groups whose games all finished are kept
    G = trainer.cfg.rollout.num_generations
    groups = [collected.sampled[i:i + G] for i in range(0, len(collected.sampled), G)]
    cut = {i for i, g in enumerate(groups) if any(r.score is None for r in g)}
    assert info["episode/env_errors"] == 0 and info["verify/infra_dropped_groups"] == len(cut) >= 1
    assert [id(r) for r in collected.kept] == [id(r) for i, g in enumerate(groups) if i not in cut for r in g]

    trainer = Trainer(_game_config(400, **{"eval.every": 2}), tmp_path / "run")
    trainer.run(progress=False)
    trainer.logger.close()
    rows = read_jsonl(tmp_path / "run/metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2] and all("episode/env_unfinished" in r for r in rows)
    evals = read_jsonl(tmp_path / "run/eval.jsonl")  # held-out games, played greedily, scored by the game
    assert [e["phase"] for e in evals] == ["initial", "rl"] and all(0.0 <= e["accuracy"] <= 1.0 for e in evals)
    samples = read_jsonl(tmp_path / "run/samples.jsonl")
    assert any(p["role"] == "observation" and "invalid move" in p["text"] for s in samples for p in s["transcript"])


def test_screening_samples_open_their_episodes_with_the_problem(tmp_path, gsm8k_style_model):
    # screening draws its samples through Trainer.sample: the environment must see each problem (its answer is
    # the ground truth); opened without it, gsm8k would score every sample 0
    cfg = _config({"name": "arithmetic", "difficulty": 1, "environment": "skyrl_gym:gsm8k"}, gsm8k_style_model,
                  **{"algorithm.screening": True, "algorithm.screen_samples": 2})
    trainer = Trainer(cfg, tmp_path)
    problems = [trainer.task.train_problem(i) for i in range(4)]
    info = {"time/generate": 0.0, "time/verify": 0.0}
    rollouts = trainer.sample(problems, [0, 1, 2, 3], 4, [0] * 4, info)
    assert all(r.score is not None for r in rollouts)
    for r in rollouts:
        right = f"#### {r.problem.answer}" == _turns(trainer.tokenizer, r)[0].strip()
        assert r.score.correct == right and r.score.reward == float(right)
    assert any(r.score.correct for r in rollouts)
    trainer.logger.close()


class Killed(Exception):
    pass


class KilledAfterStep2(Trainer):
    def step(self):
        if self.step_count == 2:
            raise Killed()
        return super().step()


def _rows(run):
    return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in read_jsonl(run / "metrics.jsonl")]


def test_a_killed_and_resumed_run_on_an_environment_equals_an_uninterrupted_one(tmp_path, gsm8k_style_model):
    def cfg():
        return _config({"name": "arithmetic", "difficulty": 1, "environment": "skyrl_gym:gsm8k_multi_turn",
                        "environment_options": {"extras": {"max_turns": 2}}, "episode": {"max_turns": 2}},
                       gsm8k_style_model, **{"train.steps": 4, "train.checkpoint_every": 2})

    straight, killed = tmp_path / "straight", tmp_path / "killed"
    t = Trainer(cfg(), straight)
    t.run(progress=False)
    t.logger.close()
    t = KilledAfterStep2(cfg(), killed)
    with pytest.raises(Killed):
        t.run(progress=False)
    t.logger.close()
    t = Trainer(load_config(killed / "config.yaml"), killed, resume=True)
    t.run(progress=False)
    t.logger.close()
    a, b = load_file(killed / "final/model.safetensors"), load_file(straight / "final/model.safetensors")
    assert [k for k in a if not torch.equal(a[k], b[k])] == []
    assert _rows(killed) == _rows(straight) and sum(r["episode/observation_tokens"] for r in _rows(straight)) > 0


def test_two_textarena_runs_of_one_seed_play_the_same_games(tmp_path):
    def texts(run):
        trainer = Trainer(_game_config(400, **{"train.prompts_per_step": 3}), tmp_path / run)
        collected = trainer.collect()
        trainer.logger.close()
        return [(r.completion_ids, r.score and r.score.reward) for r in collected.sampled]

    assert texts("a") == texts("b")
