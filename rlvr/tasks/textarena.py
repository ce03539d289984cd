"""`textarena` single-player games as a source of problems: a problem is a seeded game, its prompt the
game's opening message to the player. The game itself is played, and scored, by the textarena adapter of
rlvr.environments.adapters (`task.environment: textarena:<game id>`).

Games are made without textarena's default wrappers (`<id>-raw`): those repeat the whole history in every
observation, while rlvr's engine keeps the history in the model's context and appends only what is new.
textarena seeds Python's global `random` in `reset` and draws from it during play; `own_random` runs each
game on a `random` state of its own, under a lock, so that concurrent episodes, and rlvr's own draws, neither
disturb each other nor depend on thread timing.
"""

from __future__ import annotations

import difflib
import random
import threading
from contextlib import contextmanager
from typing import Any

from rlvr.tasks.base import Task, derive_seed
from rlvr.types import Problem, Score

GAME_ID = -1  # textarena's sender id of game messages
_RANDOM = threading.Lock()


class RandomState:
    """A game's own `random` state (None: not drawn from yet)."""

    state: tuple | None = None


@contextmanager
def own_random(holder: RandomState):
    """Run textarena code on `holder`'s `random` state; the global state is as it was afterwards."""
    with _RANDOM:
        outer = random.getstate()
        if holder.state is not None:
            random.setstate(holder.state)
        try:
            yield
        finally:
            holder.state = random.getstate()
            random.setstate(outer)


def make_game(env_id: str, options: dict[str, Any]):
    """A textarena game without wrappers; ValueError("task.environment...: ...") when it cannot be made."""
    import textarena as ta
    from textarena.envs.registration import ENV_REGISTRY

    raw = env_id if env_id.endswith("-raw") else f"{env_id}-raw"
    if raw not in ENV_REGISTRY:
        close = difflib.get_close_matches(env_id, [k for k in ENV_REGISTRY if not k.endswith("-raw")], n=5)
        raise ValueError(f"task.environment: textarena has no game {env_id!r}"
                         + (f"; did you mean {', '.join(close)}?" if close else " (textarena.envs lists them)"))
    try:
        return ta.make(raw, **options)
    except TypeError as e:
        raise ValueError(f"task.environment_options: {env_id} does not take these options: {e}") from None


def game_text(messages: list, player_id: int = 0) -> str:
    """What the game told the player: its messages in order, the player's own moves (echoed back) left out."""
    return "\n".join(str(text) for sender, text, *_ in messages if sender != player_id)


class TextArenaTask(Task):
    """Seeded single-player textarena games; the prompt is the game's opening message."""

    def __init__(self, env_id: str, options: dict[str, Any] | None = None, seed: int = 0, eval_size: int = 200):
        self.env_id, self.options = env_id, dict(options or {})
        self.name = f"textarena/{env_id}"
        self.seed, self.eval_size = seed, eval_size
        try:
            self.problem(0)
        except AssertionError as e:  # textarena asserts the player count in reset
            raise ValueError(f"task.environment: textarena game {env_id!r} is not a single-player game ({e}); "
                             "the adapter plays single-player games") from None

    def problem(self, game_seed: int, label: str = "") -> Problem:
        game, rng = make_game(self.env_id, self.options), RandomState()
        with own_random(rng):
            game.reset(num_players=1, seed=game_seed)
            player, messages = game.get_observation()
        return Problem(id=f"{self.env_id}/{label or game_seed}", prompt=game_text(messages, player), answer=None,
                       task=self.name, meta={"seed": game_seed})

    def train_problem(self, index: int) -> Problem:
        # game seeds: even for training, odd for held-out, so no held-out game seed is ever trained on
        return self.problem(2 * (derive_seed("textarena", self.seed, "train", index) % 2**30), f"train-{index}")

    def eval_problems(self, n: int | None = None) -> list[Problem]:
        return [self.problem(2 * (derive_seed("textarena", self.seed, "eval", i) % 2**30) + 1, f"eval-{i}")
                for i in range(self.eval_size if n is None else n)]

    def verify(self, problem: Problem, text: str) -> Score:
        raise RuntimeError(f"{self.name}: the game scores its own episodes (task.environment: "
                           f"textarena:{self.env_id}); a transcript alone cannot be scored")
