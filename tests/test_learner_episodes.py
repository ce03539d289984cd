"""The learner on multi-turn episodes: observation tokens carry no log-prob, advantage or gradient, and the
learner's log-probs of the model's tokens are the engine's, as for single turns."""

from __future__ import annotations

import torch

from rlvr.algorithms.losses import policy_loss
from rlvr.batching import make_batch
from rlvr.config import AlgorithmConfig, TrainConfig
from rlvr.environments.base import Environment, Episode
from rlvr.learner import Learner
from rlvr.rollout.base import SamplingParams
from rlvr.rollout.episodes import EpisodeEngine
from rlvr.rollout.torch_engine import TorchEngine
from rlvr.types import Batch, Problem, Rollout

PROBLEM = Problem("p", "", 0, "arithmetic")


class Talkative(Episode):
    def respond(self, turn: str) -> str | None:
        self.record.turns += 1
        return None if self.record.turns >= 3 else "<result>observed 123</result>"


class TalkativeEnv(Environment):
    pause_strings = ("a", "e", "1", "2", "x")

    def open(self, problem):
        return Talkative()


def _episode_batch(model, tok, temperature=1.0) -> tuple[Batch, list[Rollout]]:
    prompts = [[tok.bos_token_id] + tok(t, add_special_tokens=False)["input_ids"] for t in ("123+456=", "7+8=")]
    engine = EpisodeEngine(TorchEngine(model, tok.pad_token_id), TalkativeEnv(), tok)
    groups = engine.generate(prompts, SamplingParams(3, 36, temperature, 1.0, (tok.eos_token_id,)), seeds=[5, 6])
    rollouts = [Rollout(PROBLEM, p, c.token_ids, c.logprobs, "", c.finish_reason, g, completion_mask=c.mask,
                        episode=c.episode)
                for g, (p, group) in enumerate(zip(prompts, groups)) for c in group]
    assert any(0 in r.completion_mask for r in rollouts)  # there are observation tokens to mask
    adv = torch.tensor([1.0, -1.0, 0.5, -0.5, 0.25, -0.25])
    return make_batch(rollouts, adv, tok.pad_token_id), rollouts


def _learner(model, temperature=1.0) -> Learner:
    return Learner(model, TrainConfig(lr=1e-4), AlgorithmConfig(loss_agg="token_mean"), temperature=temperature,
                   max_new_tokens=36)


def test_batch_masks_exactly_the_observation_tokens(make_tiny_model, char_tokenizer):
    batch, rollouts = _episode_batch(make_tiny_model(sharp=True), char_tokenizer)
    for i, r in enumerate(rollouts):
        P = len(r.prompt_ids)
        span = batch.completion_mask[i, P - 1 : P - 1 + len(r.completion_ids)]
        assert span.tolist() == [float(m) for m in r.completion_mask]
        assert batch.completion_mask[i].sum() == sum(r.completion_mask)


def test_engine_and_learner_logprobs_agree_on_multi_turn_sequences(make_tiny_model, char_tokenizer):
    for temperature in (1.0, 0.7):
        model = make_tiny_model(sharp=True)
        batch, _ = _episode_batch(model, char_tokenizer, temperature)
        stats = _learner(model, temperature).update(batch)
        assert stats["logprob_gap"] < 1e-5  # the single-turn tolerance (tests/test_learner.py)
        assert abs(stats["ratio_max"] - 1.0) < 1e-4 and stats["clip_frac"] == 0.0


def test_observation_tokens_get_exactly_zero_gradient(make_tiny_model, char_tokenizer):
    model = make_tiny_model(sharp=True)
    batch, _ = _episode_batch(model, char_tokenizer)
    learner = _learner(model)
    model.train()
    # every target position of the rows, model-written or not, so the loss could reach observations
    full = Batch(batch.input_ids, batch.attention_mask, batch.attention_mask[:, 1:].float(), batch.old_logprobs,
                 batch.advantages)
    logp, _ = learner._forward(model, full, want_entropy=False)
    loss, _ = policy_loss(logp, batch.old_logprobs, batch.advantages, batch.completion_mask)
    (grad,) = torch.autograd.grad(loss, logp)
    observation = (batch.attention_mask[:, 1:] == 1) & (batch.completion_mask == 0)
    observation[:, :] &= torch.arange(observation.shape[1]) >= (batch.completion_mask.argmax(-1, keepdim=True))
    assert observation.sum() > 0
    assert torch.all(grad[observation] == 0.0)  # exactly zero, not small
    assert torch.all(grad[batch.completion_mask.bool()] != 0.0)  # every model token gets a gradient
