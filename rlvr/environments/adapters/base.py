"""What every adapter shares: an episode that hands each model turn to a library's environment as its action,
renders what the environment says back as observation text, and keeps the environment's own reward.

The reward rule (rlvr's: a reward is true or not given, never a silent 0):
- the episode's reward is the sum of the rewards the environment gave at its steps; it is `correct` when the
  last of them reaches `success_reward` (1.0: a solved game, a right answer);
- an environment that raised (when opened or at a step) gives no reward: the sample is left out and counted
  (`EpisodeRecord.env_error` says where and what), as a sandbox fault is;
- an episode that ended before the environment gave any reward (cut by `task.episode.max_turns` or the token
  budget while the game still ran) gives none either: left out and counted, as "unfinished".
A turn cut by the token budget is still handed to the environment (`Episode.cut`): the environment judges
what the model wrote, as it would have judged a finished turn.

Environments run in this process, in threads. Each call into one (opening it, a step) may take at most
`task.episode.env_timeout_s`; past that the episode ends as an environment error (no reward, counted) and the
batch goes on. The hung call cannot be stopped (Python cannot kill a thread): it runs on in a daemon thread,
and its environment is never released, since that thread may still be inside it.
"""

from __future__ import annotations

import logging
from abc import abstractmethod
from dataclasses import dataclass

from rlvr.environments.base import Environment, Episode
from rlvr.environments.parsing import after_assistant_turn
from rlvr.timeouts import CallTimeout, call_with_timeout
from rlvr.types import Problem, Score

logger = logging.getLogger(__name__)

UNFINISHED = "unfinished: the episode ended before the environment gave a reward"


@dataclass
class Step:
    """What an environment said after one action: `observation` (chat messages or text; empty: nothing),
    the `reward` it gave at this step (None: none), whether it is `done`, and whether it judged the action
    an `invalid` move."""

    observation: list[dict] | str | None
    reward: float | None
    done: bool
    invalid: bool = False


class MessageRenderer:
    """Observation messages as the tokens that follow a model turn: through the chat template (the user or tool
    message, then the next assistant header) where the tokenizer has one, else the messages' text between
    newlines. The end-of-turn marker the model already wrote (its stop token) is not written twice."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.template = bool(getattr(tokenizer, "chat_template", None))
        self.special = sorted({t for t in tokenizer.all_special_tokens if t}, key=len, reverse=True)

    def action(self, turn: str) -> str:
        """The model's turn as the environment reads it: trailing special tokens (end of turn) and spaces dropped."""
        text = turn.rstrip()
        cut = True
        while cut:
            cut = False
            for s in self.special:
                if text.endswith(s):
                    text, cut = text[: -len(s)].rstrip(), True
        return text

    def render(self, observation: list[dict] | str | None, turn: str) -> str:
        messages = [{"role": "user", "content": observation}] if isinstance(observation, str) else observation or []
        messages = [m for m in messages if str(m.get("content", ""))]
        if not messages:
            return ""
        if not self.template:
            return "\n" + "\n".join(str(m["content"]) for m in messages) + "\n"
        text = after_assistant_turn(self.tokenizer, [{"role": m.get("role", "user"), "content": str(m["content"])}
                                                     for m in messages])
        for s in self.special:  # the model's own end-of-turn marker is already in the transcript
            if turn.rstrip().endswith(s) and text.startswith(s):
                return text[len(s):]
        return text


class AdapterEpisode(Episode):
    """One episode of a library's environment. Subclasses `start(problem)` it, `step(action) -> Step` and
    `release()` it; everything they raise is caught here and ends the episode without a reward."""

    def __init__(self, env: AdapterEnvironment, problem: Problem | None):
        super().__init__()
        self.env = env
        self.rewards: list[float] = []
        self.invalid = False
        self.closed = False
        rec = self.record
        rec.env_scored, rec.env_error = True, UNFINISHED
        try:
            call_with_timeout(self.start, env.timeout_s, problem)
        except Exception as e:  # noqa: BLE001 - the environment's fault: no reward, counted
            self.closed = True  # nothing was made to release
            self._fail("opening", e)

    @abstractmethod
    def start(self, problem: Problem | None) -> None:
        """Create and reset the library's environment for `problem`."""

    @abstractmethod
    def step(self, action: str) -> Step:
        """Hand the model's turn to the environment."""

    def release(self) -> None:
        """Release the library's environment (default: nothing)."""

    def respond(self, turn: str) -> str | None:
        rec = self.record
        rec.turns += 1
        step = self._judge(turn)
        if step is None:
            return None
        if step.done:
            rec.ended = "done"
            return None
        if rec.turns >= self.env.max_turns:  # the game goes on, but no turn is left
            rec.ended = "max_turns"
            self.close()
            return None
        return self.env.renderer.render(step.observation, turn)

    def cut(self, turn: str) -> None:
        self.record.turns += 1
        self._judge(turn)

    def _judge(self, turn: str) -> Step | None:
        """Step the environment with `turn` and keep the score up to date; None when the episode is over."""
        rec = self.record
        if rec.env_error is not None and rec.env_error != UNFINISHED:
            return None  # it failed before: nothing to step
        try:
            step = call_with_timeout(self.step, self.env.timeout_s, self.env.renderer.action(turn))
        except Exception as e:  # noqa: BLE001 - the environment's fault, never the model's: no reward
            self._fail("a step", e)
            return None
        self.invalid |= step.invalid
        if step.reward is not None:
            self.rewards.append(float(step.reward))
            rec.env_error = None
            rec.env_score = Score(sum(self.rewards), self.rewards[-1] >= self.env.success_reward, not self.invalid,
                                  {"environment": self.env.spec, "rewards": list(self.rewards), "turns": rec.turns})
        if step.done:
            if not self.rewards:
                rec.env_error = "the environment ended the episode without giving a reward"
            self.close()
        return step

    def _fail(self, where: str, e: Exception) -> None:
        rec = self.record
        rec.env_score, rec.env_error = None, f"the environment raised {type(e).__name__} at {where}: {e}"
        if isinstance(e, CallTimeout):  # its thread still runs inside the environment: it is not released
            self.closed = True
            rec.env_error = (f"the environment did not answer at {where} within task.episode.env_timeout_s="
                             f"{self.env.timeout_s:g} s (its thread cannot be stopped and runs on)")
        rec.ended = "env_error"
        logger.warning("no reward (%s): %s", self.env.spec, rec.env_error)
        self.close()

    def close(self) -> None:
        """Release the library's environment, once (at the end of the game, or when the engine's batch ends)."""
        if self.closed:
            return
        self.closed = True
        try:
            self.release()
        except Exception as e:  # noqa: BLE001 - releasing cannot take back a reward already given
            logger.warning("%s: closing an episode raised %s: %s", self.env.spec, type(e).__name__, e)


class AdapterEnvironment(Environment):
    """A library's environment as an rlvr `Environment`: a model turn ends at a stop token (end of turn), the
    environment answers it. `spec` is the config's `library:env_id`."""

    episode_class: type[AdapterEpisode]

    def __init__(self, spec: str, tokenizer, max_turns: int, max_tokens: int | None, timeout_s: float = 60.0,
                 success_reward: float = 1.0):
        self.spec = spec
        self.timeout_s = timeout_s  # per call into the library (opening, a step): task.episode.env_timeout_s
        self.renderer = MessageRenderer(tokenizer)
        self.max_turns, self.max_tokens = max_turns, max_tokens
        self.success_reward = success_reward

    def open(self, problem: Problem | None) -> Episode:
        return self.episode_class(self, problem)
