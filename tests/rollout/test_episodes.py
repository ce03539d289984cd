"""Multi-turn decoding on the torch engine: rows pause where a turn ends, observations are appended, and
decoding resumes from the KV cache (nothing prefilled twice), with log-probs of the policy that sampled."""

from __future__ import annotations

import pytest
import torch

from rlvr.environments.base import Environment, Episode, SingleTurn
from rlvr.rollout.base import SamplingParams
from rlvr.rollout.episodes import EpisodeEngine, segments, with_environment
from rlvr.rollout.torch_engine import TorchEngine

PAUSE = ("a", "e", "1", "2", "x")  # characters a random tiny model writes often: many pauses per batch


class Echo(Episode):
    """Answers the first two turns with an observation that names the turn, then ends."""

    def respond(self, turn: str) -> str | None:
        self.record.turns += 1
        return None if self.record.turns >= 3 else f"<result>{self.record.turns}:{turn[-1:]}</result>"


class EchoEnv(Environment):
    pause_strings = PAUSE

    def open(self, problem):
        return Echo()


class NeverPauses(EchoEnv):
    """Multi-turn in form, but nothing answers back: every episode is one turn."""

    pause_strings = ()

    def open(self, problem):
        return SingleTurn().open(problem)


def _prompts(tok):
    return [tok(t, add_special_tokens=False)["input_ids"] for t in ("12+34=", "5+6=", "700+8=")]


def _episodes(model, tok, env, n=4, temperature=1.0, budget=40, feed_chunk=4):
    engine = EpisodeEngine(TorchEngine(model, tok.pad_token_id), env, tok, feed_chunk=feed_chunk)
    sampling = SamplingParams(n, budget, temperature, 1.0, (tok.eos_token_id,))
    return engine, engine.generate(_prompts(tok), sampling, seeds=[11, 12, 13])


def test_without_pauses_an_episode_is_the_single_turn_sample(make_tiny_model, char_tokenizer):
    model = make_tiny_model(sharp=True)
    _, episodes = _episodes(model, char_tokenizer, NeverPauses())
    plain = TorchEngine(model, char_tokenizer.pad_token_id).generate(
        _prompts(char_tokenizer), SamplingParams(4, 40, 1.0, 1.0, (char_tokenizer.eos_token_id,)), seeds=[11, 12, 13])
    for ge, gp in zip(episodes, plain):
        for e, p in zip(ge, gp):
            assert e.token_ids == p.token_ids and e.finish_reason == p.finish_reason
            assert torch.allclose(torch.tensor(e.logprobs), torch.tensor(p.logprobs), atol=1e-5)
            assert e.mask == [1] * len(e.token_ids) and e.episode.turns == 1


@pytest.mark.parametrize("feed_chunk", [1, 4, 100])
def test_observations_are_appended_masked_and_model_logprobs_match_a_full_forward(make_tiny_model, char_tokenizer,
                                                                                   feed_chunk):
    tok = char_tokenizer
    model = make_tiny_model(sharp=True)
    engine, episodes = _episodes(model, tok, EchoEnv(), feed_chunk=feed_chunk)
    if feed_chunk > 1:
        assert engine.stats["compactions"] > 0  # the cache's padding columns were dropped on the way
    observed = 0
    for prompt, group in zip(_prompts(tok), episodes):
        for c in group:
            obs = [(a, b) for role, a, b in c.episode.segments if role == "observation"]
            observed += len(obs)
            for k, (a, b) in enumerate(obs):  # the environment's text, right after the turn that ended in a pause
                last = tok.decode(c.token_ids[a - 1])  # a pause character, or a tag token holding one
                seen = tok.decode(c.token_ids[a:b])  # the turn the environment read ends at the pause
                assert seen.startswith(f"<result>{k + 1}:") and seen.endswith("</result>")
                assert seen[-10] in PAUSE and seen[-10] in last or c.token_ids[a - 1] == tok.eos_token_id
                assert all(m == 0 for m in c.mask[a:b]) and all(lp == 0.0 for lp in c.logprobs[a:b])
            ids = torch.tensor([prompt + c.token_ids])
            with torch.no_grad():
                logp = torch.log_softmax(model(input_ids=ids).logits[0, len(prompt) - 1 : -1].float(), -1)
            expected = logp.gather(-1, torch.tensor(c.token_ids)[:, None]).squeeze(-1)
            model_pos = torch.tensor(c.mask, dtype=torch.bool)
            assert torch.allclose(torch.tensor(c.logprobs)[model_pos], expected[model_pos], atol=1e-4)
    assert observed >= 6  # the test means something: many rows paused and resumed, some twice


@pytest.mark.parametrize("feed_chunk", [1, 100])
def test_a_paused_row_resumes_from_its_cache_without_prefilling_again(make_tiny_model, char_tokenizer, feed_chunk):
    engine, episodes = _episodes(make_tiny_model(sharp=True), char_tokenizer, EchoEnv(), feed_chunk=feed_chunk)
    prompts = _prompts(char_tokenizer)
    completions = [c for g in episodes for c in g]
    assert sum(len(c.token_ids) - sum(c.mask) for c in completions) > 0  # observations were fed
    # every prompt once (shared by its group), then each completion token once; the last sampled one never
    assert engine.stats["fed_tokens"] == sum(map(len, prompts)) + sum(len(c.token_ids) - 1 for c in completions)


def test_budget_and_greedy_determinism(make_tiny_model, char_tokenizer):
    model = make_tiny_model(sharp=True)
    _, a = _episodes(model, char_tokenizer, EchoEnv(), budget=25)
    _, b = _episodes(model, char_tokenizer, EchoEnv(), budget=25)
    for ga, gb in zip(a, b):
        for x, y in zip(ga, gb):
            assert x.token_ids == y.token_ids and x.mask == y.mask
            assert len(x.token_ids) <= 25
            assert x.finish_reason in ("stop", "length")


def test_segments_and_only_the_torch_engine_runs_episodes(make_tiny_model, char_tokenizer):
    assert segments([1, 1, 0, 0, 0, 1]) == [("model", 0, 2), ("observation", 2, 5), ("model", 5, 6)]

    class Other:
        version = 0

    with pytest.raises(ValueError, match="task.tools"):
        with_environment(Other(), EchoEnv(), char_tokenizer)
    engine = TorchEngine(make_tiny_model(), char_tokenizer.pad_token_id)
    assert with_environment(engine, SingleTurn(), char_tokenizer) is engine


def test_episodes_open_with_their_problem(make_tiny_model, char_tokenizer):
    from rlvr.rollout.episodes import generate_for
    from rlvr.types import Problem

    opened = []

    class Recording(NeverPauses):
        def open(self, problem):
            opened.append(problem.id)
            return super().open(problem)

    engine = EpisodeEngine(TorchEngine(make_tiny_model(), char_tokenizer.pad_token_id), Recording(), char_tokenizer)
    problems = [Problem(f"p{i}", "", 0, "t") for i in range(3)]
    generate_for(engine, problems, _prompts(char_tokenizer), SamplingParams(2, 4, 1.0, 1.0, ()), seeds=[1, 2, 3])
    assert opened == ["p0", "p0", "p1", "p1", "p2", "p2"]


def test_ignore_eos_runs_episodes_to_their_budget(make_tiny_model, char_tokenizer):
    """Fixed-length generation (`rollout.ignore_eos`) on the episode engine: a stop token neither ends a turn
    nor the episode, so without pauses an episode is exactly the single-turn engine's fixed-length sample,
    and with pauses every turn ends at a pause string."""
    tok = char_tokenizer
    model = make_tiny_model(sharp=True)
    stop = (tok.eos_token_id, tok.convert_tokens_to_ids("3"))  # "3": a token the model writes often
    engine = EpisodeEngine(TorchEngine(model, tok.pad_token_id), NeverPauses(), tok)
    stopping = engine.generate(_prompts(tok), SamplingParams(4, 30, 1.0, 1.0, stop), seeds=[11, 12, 13])
    assert any(c.finish_reason == "stop" and len(c.token_ids) < 30 for g in stopping for c in g)
    fixed = SamplingParams(4, 30, 1.0, 1.0, stop, ignore_eos=True)
    episodes = engine.generate(_prompts(tok), fixed, seeds=[11, 12, 13])
    plain = TorchEngine(model, tok.pad_token_id).generate(_prompts(tok), fixed, seeds=[11, 12, 13])
    for ge, gp, gs in zip(episodes, plain, stopping):
        for e, p, s in zip(ge, gp, gs):
            assert len(e.token_ids) == 30 and e.finish_reason == "length"
            assert e.token_ids == p.token_ids and e.token_ids[: len(s.token_ids)] == s.token_ids
            assert torch.allclose(torch.tensor(e.logprobs), torch.tensor(p.logprobs), atol=1e-5)
    assert any(t in stop for g in episodes for c in g for t in c.token_ids)  # stop tokens written, not obeyed

    engine = EpisodeEngine(TorchEngine(model, tok.pad_token_id), EchoEnv(), tok, feed_chunk=4)
    echoed = engine.generate(_prompts(tok), fixed, seeds=[11, 12, 13])
    for c in (c for g in echoed for c in g):
        for role, a, _ in c.episode.segments:
            if role == "observation":  # the turn before it ended at a pause string (one that may end inside
                # its last token, as in `<answer>`), never at a stop token
                assert any(p in tok.decode(c.token_ids[a - 1]) for p in PAUSE)
        # to the budget, unless the environment ended the episode (Echo: after its third turn) or the next
        # observation ("<result>1:e</result>", 20 tokens) would not have fitted
        assert c.finish_reason == "length"
        assert len(c.token_ids) == 30 or c.episode.turns == 3 or len(c.token_ids) + 20 >= 30


def test_episodes_over_the_learners_own_module_sample_the_learners_policy(make_tiny_model, char_tokenizer):
    """What `algorithm.offpolicy_correction: auto` asks of an engine: the episode engine sees through to the
    torch engine's module, so sharing the learner's model means no correction, and a copy means one."""
    from rlvr.rollout import behaviour_differs

    model = make_tiny_model()
    shared = with_environment(TorchEngine(model, char_tokenizer.pad_token_id), EchoEnv(), char_tokenizer)
    assert isinstance(shared, EpisodeEngine) and shared.model is model and shared.weights == "same"
    assert not behaviour_differs(shared, model)
    assert behaviour_differs(shared, model, top_p=0.9)
    copied = with_environment(TorchEngine(make_tiny_model(), char_tokenizer.pad_token_id), EchoEnv(), char_tokenizer)
    assert behaviour_differs(copied, model)


def test_a_pause_string_that_ends_inside_a_token_ends_the_turn(make_tiny_model, char_tokenizer):
    """BPE tokenizers fuse a pause with what follows (SmolLM2 writes `</call><result>` as ..., `call`, `><`):
    the turn still ends there, and the environment reads it cut at the pause. Here the pause "nk" ends inside
    one-token tags such as `</think>`, one character before the token's end."""
    tok = char_tokenizer
    closing = tok.convert_tokens_to_ids("</think>")
    turns = []

    class Recorder(Echo):
        def respond(self, turn: str) -> str | None:
            turns.append(turn)
            return super().respond(turn)

    class InsideToken(EchoEnv):
        pause_strings = ("nk",)

        def open(self, problem):
            return Recorder()

    model = make_tiny_model(sharp=True)
    with torch.no_grad():  # make the model write `</think>` often
        model.lm_head.weight[closing] = model.lm_head.weight.mean(0) + 3 * model.lm_head.weight.std(0)
    engine = EpisodeEngine(TorchEngine(model, tok.pad_token_id), InsideToken(), tok, feed_chunk=4)
    episodes = engine.generate(_prompts(tok), SamplingParams(4, 40, 1.0, 1.0, (tok.eos_token_id,)), seeds=[1, 2, 3])
    paused_inside = 0
    for c in (c for g in episodes for c in g):
        for role, a, _ in c.episode.segments:
            if role == "observation":
                last = tok.decode(c.token_ids[a - 1])
                inside = len(last) > 2 and "nk" in last  # `<think>`, `</think>`, `<unk>`
                assert inside or tok.decode(c.token_ids[a - 2 : a]) == "nk" or c.token_ids[a - 1] == tok.eos_token_id
                paused_inside += inside
    assert paused_inside >= 3  # rows paused inside the token, and were answered
    assert all(t.endswith("nk") or t.endswith(tok.eos_token) or not t for t in turns)
    assert any(t.endswith("</thi" + "nk") for t in turns)  # cut at the pause: the token's ">" left out
