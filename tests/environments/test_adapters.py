"""The adapters to the field's environment libraries (rlvr.environments.adapters), driven by hand through the
Episode protocol with real environments: what each turn becomes, what comes back, the reward, and what
happens when the environment fails or the episode is cut."""

from __future__ import annotations

import copy
import random
import re
import threading

import pytest

from rlvr.config import ConfigError, TaskConfig, load_config
from rlvr.environments import build_environment
from rlvr.environments.adapters.base import UNFINISHED, MessageRenderer
from rlvr.tasks.registry import build_task
from rlvr.types import Problem
from rlvr.verifiers import score_sample
from tests.conftest import TINY_RUN

skyrl_gym = pytest.importorskip("skyrl_gym")
textarena = pytest.importorskip("textarena")
from skyrl_gym.envs.gsm8k import utils as gsm8k_utils  # noqa: E402

EOS = "<eos>"


def _env(tokenizer, max_turns=4, max_tokens=200, **task):
    cfg = TaskConfig(**task)
    cfg.episode.max_turns = max_turns
    return build_environment(cfg, tokenizer, max_tokens), cfg


def _arith(answer=116):
    return Problem("p0", "37+79=", answer, "arithmetic", {"question": "What is 37 plus 79?"})


# --- skyrl-gym -------------------------------------------------------------------------------------------------

def test_skyrl_gym_multi_turn_rewards_are_the_environments_summed(char_tokenizer):
    env, _ = _env(char_tokenizer, environment="skyrl_gym:gsm8k_multi_turn",
                  environment_options={"extras": {"max_turns": 3}})
    ep = env.open(_arith())
    obs = ep.respond("I think #### 115" + EOS)  # wrong but formatted: the env's format reward, and a follow-up
    assert obs == ("\nPlease provide your step-by-step reasoning, and also include a tentative numeric answer at "
                   "the end in the exact format: '#### ANSWER'.\n")
    first = gsm8k_utils.compute_score("I think #### 115", "116", method="strict", format_score=0.2 / 3)
    assert first == pytest.approx(0.2 / 3)
    assert ep.record.env_score.reward == pytest.approx(first) and not ep.record.env_score.correct
    assert ep.respond("#### 116" + EOS) is None  # right: the environment ends the episode
    s = ep.record.env_score
    assert s.reward == pytest.approx(first + 1.0) and s.correct and s.formatted
    assert s.details["rewards"] == pytest.approx([first, 1.0])
    assert ep.record.ended == "done" and ep.record.turns == 2 and ep.record.env_error is None
    assert score_sample(lambda p, t: pytest.fail("the task's verifier must not score it"), _arith(), "", ep.record) is s


def test_skyrl_gym_single_turn_judges_a_turn_cut_by_the_budget(char_tokenizer):
    env, _ = _env(char_tokenizer, environment="skyrl_gym:gsm8k")
    ep = env.open(_arith())
    ep.cut("#### 116")  # the budget ran out right after the answer: the environment still judges it
    assert ep.record.env_score.reward == 1.0 and ep.record.env_score.correct and ep.record.turns == 1
    ep = env.open(_arith())
    ep.cut("#### 11")
    assert ep.record.env_score.reward == 0.0 and not ep.record.env_score.correct  # a true 0: the env gave it


class Crashing(skyrl_gym.Env):
    """A skyrl-gym environment that fails: at its construction when asked to, else at its second step."""

    def __init__(self, env_config=None, extras=None):
        if (extras or {}).get("crash_at_open"):
            raise RuntimeError("no database")
        self.steps = 0

    def init(self, prompt):
        return prompt, {}

    def step(self, action):
        self.steps += 1
        if self.steps == 2:
            raise KeyError("lost state")
        return {"observations": [{"role": "user", "content": "go on"}], "reward": 0.5, "done": False,
                "metadata": {}}


if "rlvr_test_crashing" not in skyrl_gym.registry:
    skyrl_gym.register(id="rlvr_test_crashing", entry_point=Crashing)


def test_an_environment_that_raises_gives_no_reward_not_a_zero(char_tokenizer):
    env, _ = _env(char_tokenizer, environment="skyrl_gym:rlvr_test_crashing")
    ep = env.open(_arith())
    assert ep.respond("a" + EOS) == "\ngo on\n" and ep.record.env_score.reward == 0.5
    assert ep.respond("b" + EOS) is None  # raised: the earlier reward does not stand for the episode
    rec = ep.record
    assert rec.env_score is None and rec.ended == "env_error"
    assert "KeyError" in rec.env_error and "a step" in rec.env_error
    assert score_sample(lambda p, t: pytest.fail("not the verifier"), _arith(), "", rec) is None

    env, _ = _env(char_tokenizer, environment="skyrl_gym:rlvr_test_crashing",
                  environment_options={"extras": {"crash_at_open": True}})
    ep = env.open(_arith())  # opening never raises into the engine
    assert ep.respond("a" + EOS) is None
    assert ep.record.env_score is None and "RuntimeError at opening: no database" in ep.record.env_error


def test_skyrl_extras_come_from_the_problem_unless_it_carries_them():
    from rlvr.environments.adapters.skyrl_gym import extras_for

    assert extras_for(_arith(), {"max_turns": 2}) == {
        "reward_spec": {"method": "rule", "ground_truth": "116"},
        "extra_info": {"question": "What is 37 plus 79?"}, "max_turns": 2}
    own = Problem("q", "x", "7", "d", {"reward_spec": {"method": "rule", "ground_truth": "8"}, "extra_info": {"a": 1}})
    assert extras_for(own, {}) == {"reward_spec": {"method": "rule", "ground_truth": "8"}, "extra_info": {"a": 1}}


# --- textarena --------------------------------------------------------------------------------------------------

def _game(tokenizer, max_turns=8, **options):
    cfg = TaskConfig(environment="textarena:GuessTheNumber-v0", environment_options=options)
    task = build_task(cfg, eval_size=3)
    env, _ = _env(tokenizer, max_turns=max_turns, environment=cfg.environment, environment_options=options)
    return task, env


def test_textarena_problems_are_seeded_openings_with_disjoint_held_out_seeds():
    task = build_task(TaskConfig(environment="textarena:GuessTheNumber-v0"), eval_size=3)
    p = task.train_problem(0)
    assert p.prompt.startswith("You are Player 0. You are playing Guess The Number.") and p.answer is None
    assert task.train_problem(0) == p and task.train_problem(1).meta["seed"] != p.meta["seed"]
    assert all(task.train_problem(i).meta["seed"] % 2 == 0 for i in range(5))
    assert all(q.meta["seed"] % 2 == 1 for q in task.eval_problems())
    with pytest.raises(RuntimeError, match="scores its own episodes"):
        task.verify(p, "[3]")


def test_textarena_game_played_to_a_win_through_its_hints(char_tokenizer):
    task, env = _game(char_tokenizer, max_turns=8)
    ep = env.open(task.train_problem(3))
    low, high, turns = 1, 20, 0
    while True:
        guess = (low + high) // 2
        obs = ep.respond(f"My guess: [{guess}]{EOS}")
        turns += 1
        if obs is None:
            break
        assert obs in ("\nThe target number is higher.\n", "\nThe target number is lower.\n")  # no echo of the move
        low, high = (guess + 1, high) if "higher" in obs else (low, guess - 1)
    s = ep.record.env_score
    assert s.reward == 1 and s.correct and s.formatted and ep.record.ended == "done" and ep.record.turns == turns


def test_textarena_invalid_moves_lose_and_are_not_formatted(char_tokenizer):
    task, env = _game(char_tokenizer)
    ep = env.open(task.train_problem(0))
    obs = ep.respond("no brackets" + EOS)
    assert obs.startswith("\nYou attempted an invalid move.")  # one warning, then the game ends
    assert ep.record.env_error == UNFINISHED and ep.record.env_score is None  # no reward until the game ends
    assert ep.respond("still none" + EOS) is None
    s = ep.record.env_score
    assert s.reward == 0.0 and not s.correct and not s.formatted and ep.record.env_error is None


def test_textarena_episode_cut_before_the_game_ends_is_left_out(char_tokenizer):
    task, env = _game(char_tokenizer, max_turns=2)
    ep = env.open(task.train_problem(0))
    wrong = [n for n in range(1, 21) if n != ep.game.game_number]
    assert ep.respond(f"[{wrong[0]}]{EOS}") is not None
    assert ep.respond(f"[{wrong[1]}]{EOS}") is None  # rlvr's max_turns: the game goes on, but no turn is left
    rec = ep.record
    assert rec.ended == "max_turns" and rec.env_score is None and rec.env_error == UNFINISHED
    assert score_sample(lambda p, t: pytest.fail("not the verifier"), task.train_problem(0), "", rec) is None


def test_textarena_games_draw_from_their_own_random_state(char_tokenizer):
    random.seed(1234)
    before = random.getstate()
    task, env = _game(char_tokenizer)
    a, b = env.open(task.train_problem(2)), env.open(task.train_problem(2))
    assert random.getstate() == before  # textarena seeded and drew from `random`: the global state is untouched
    assert a.game.game_number == b.game.game_number


# --- rendering ---------------------------------------------------------------------------------------------------

def test_observations_through_a_chat_template_do_not_repeat_the_end_of_turn(char_tokenizer):
    tok = copy.deepcopy(char_tokenizer)
    tok.chat_template = ("{% for m in messages %}[{{ m.role }}]{{ m.content }}<eos>{% endfor %}"
                         "{% if add_generation_prompt %}[assistant]{% endif %}")
    r = MessageRenderer(tok)
    assert r.render([{"role": "user", "content": "higher"}], "[10]<eos>") == "[user]higher<eos>[assistant]"
    assert r.render("lower", "[10]") == "<eos>[user]lower<eos>[assistant]"  # turn cut without its marker
    assert r.render([], "x") == "" and r.render(None, "x") == ""
    assert r.action("  [10] <eos><pad>") == "  [10]"


# --- config ------------------------------------------------------------------------------------------------------

def _load(**task):
    data = copy.deepcopy(TINY_RUN)
    data["task"] = task
    return load_config(base=data)


@pytest.mark.parametrize("task,message", [
    ({"environment": "GuessTheNumber-v0"}, r"task.environment: 'GuessTheNumber-v0' is not of the form"),
    ({"environment": "gym:CartPole-v1"}, r"task.environment: unknown library 'gym'"),
    ({"environment": "skyrl_gym:nope"}, r"task.environment: skyrl_gym has no environment 'nope'; registered: .*gsm8k"),
    ({"environment": "skyrl_gym:gsm8k", "environment_options": {"extra": {}}},
     r"task.environment_options.extra: skyrl_gym takes env_config, extras"),
    ({"environment": "textarena:GuessTheNumbr-v0"}, r"task.environment: textarena has no game 'GuessTheNumbr-v0'; "
                                                    r"did you mean .*GuessTheNumber-v0"),
    ({"environment": "textarena:GuessTheNumber-v0", "environment_options": {"colour": 1}},
     r"task.environment_options: GuessTheNumber-v0 does not take these options"),
    ({"environment": "skyrl_gym:gsm8k", "tools": [{"name": "calculator"}]}, r"task.tools: an adapted environment"),
])
def test_bad_environment_config_is_refused_naming_the_field(task, message):
    with pytest.raises(ConfigError, match=message):
        _load(**task)


def test_environments_need_the_torch_engine_and_a_multi_player_game_is_refused():
    data = copy.deepcopy(TINY_RUN)
    data["task"] = {"environment": "skyrl_gym:gsm8k"}
    data["rollout"]["engine"] = "vllm"
    with pytest.raises(ConfigError, match=re.escape("rollout.engine: must be torch with task.environment")):
        load_config(base=data)
    with pytest.raises(ValueError, match="task.environment: textarena game 'TicTacToe-v0' is not a single-player"):
        build_task(TaskConfig(environment="textarena:TicTacToe-v0"), eval_size=2)


class Endless(skyrl_gym.Env):
    """Never done; counts how often each instance is closed."""

    closes: list[int] = []

    def __init__(self, env_config=None, extras=None):
        self.index = len(Endless.closes)
        Endless.closes.append(0)

    def init(self, prompt):
        return prompt, {}

    def step(self, action):
        return {"observations": [{"role": "user", "content": "more"}], "reward": 0.25, "done": False, "metadata": {}}

    def close(self):
        Endless.closes[self.index] += 1


if "rlvr_test_endless" not in skyrl_gym.registry:
    skyrl_gym.register(id="rlvr_test_endless", entry_point=Endless)


def test_the_engine_closes_every_environment_once_however_its_episode_ended(make_tiny_model, char_tokenizer):
    from rlvr.rollout.base import SamplingParams
    from rlvr.rollout.episodes import EpisodeEngine
    from rlvr.rollout.torch_engine import TorchEngine

    tok = char_tokenizer
    Endless.closes.clear()
    env, _ = _env(tok, max_turns=2, environment="skyrl_gym:rlvr_test_endless")
    engine = EpisodeEngine(TorchEngine(make_tiny_model(), tok.pad_token_id), env, tok)
    prompts = [tok("12+34=", add_special_tokens=False)["input_ids"], tok("5+6=", add_special_tokens=False)["input_ids"]]
    groups = engine.generate(prompts, SamplingParams(4, 40, 1.0, 1.0, (tok.eos_token_id,)), seeds=[1, 2],
                             problems=[_arith(46), _arith(11)])
    ended = [c.episode.ended for g in groups for c in g]
    assert Endless.closes == [1] * 8, (Endless.closes, ended)
    assert {"length", "max_turns"} <= set(ended), ended  # cut by the budget, and by rlvr's turn limit
    for c in (c for g in groups for c in g):  # each step's reward counts, cut or not
        assert c.episode.env_score.reward == pytest.approx(0.25 * c.episode.turns)


RELEASE = threading.Event()  # set at the end of the test: the hung calls return and their threads end


class Hanging(skyrl_gym.Env):
    """Hangs (until RELEASE, at most 10 s) when opened with extras `hang_at_open`, or at a step for problems
    whose answer is 11; otherwise the first step is a right answer."""

    def __init__(self, env_config=None, extras=None):
        self.extras = extras or {}
        if self.extras.get("hang_at_open"):
            RELEASE.wait(10)

    def init(self, prompt):
        return prompt, {}

    def step(self, action):
        if self.extras["reward_spec"]["ground_truth"] == "11":
            RELEASE.wait(10)
        return {"observations": [], "reward": 1.0, "done": True, "metadata": {}}


if "rlvr_test_hanging" not in skyrl_gym.registry:
    skyrl_gym.register(id="rlvr_test_hanging", entry_point=Hanging)


def test_a_hung_environment_is_an_environment_error_and_the_batch_goes_on(make_tiny_model, char_tokenizer):
    from rlvr.environments.metrics import unscored_episodes
    from rlvr.rollout.base import SamplingParams
    from rlvr.rollout.episodes import EpisodeEngine
    from rlvr.rollout.torch_engine import TorchEngine
    from rlvr.types import Rollout

    tok = char_tokenizer
    cfg = TaskConfig(environment="skyrl_gym:rlvr_test_hanging")
    cfg.episode.env_timeout_s = 0.2
    try:
        env = build_environment(cfg, tok, 40)
        assert env.timeout_s == 0.2
        engine = EpisodeEngine(TorchEngine(make_tiny_model(), tok.pad_token_id), env, tok)
        prompts = [tok(p, add_special_tokens=False)["input_ids"] for p in ("12+34=", "5+6=")]
        problems = [_arith(46), _arith(11)]
        groups = engine.generate(prompts, SamplingParams(2, 40, 1.0, 1.0, (tok.eos_token_id,)), seeds=[1, 2],
                                 problems=problems)
        for c in groups[0]:  # answered at once
            assert c.episode.env_error is None and c.episode.env_score.reward == 1.0
        for c in groups[1]:  # its step hung: no reward, never a 0
            rec = c.episode
            assert rec.env_score is None and rec.ended == "env_error"
            assert "did not answer at a step within task.episode.env_timeout_s=0.2 s" in rec.env_error
            assert score_sample(lambda p, t: pytest.fail("not the verifier"), problems[1], "", rec) is None
        rollouts = [Rollout(problems[g], prompts[g], c.token_ids, c.logprobs, "", c.finish_reason, g,
                            score=score_sample(None, problems[g], "", c.episode), episode=c.episode)
                    for g in range(2) for c in groups[g]]
        counts, say = unscored_episodes(rollouts)
        assert counts == {"episode/env_errors": 2, "episode/env_unfinished": 0} and "env_timeout_s" in say

        cfg.environment_options = {"extras": {"hang_at_open": True}}
        ep = build_environment(cfg, tok, 40).open(_arith())  # opening hangs: the same, at opening
        assert ep.respond("a" + EOS) is None and ep.record.env_score is None
        assert "did not answer at opening within task.episode.env_timeout_s=0.2 s" in ep.record.env_error
    finally:
        RELEASE.set()
