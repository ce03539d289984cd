"""`textarena` single-player games in rlvr's loop (`task.environment: textarena:<game id>`).

Problems are seeded games (rlvr.tasks.textarena): the prompt is the game's opening message. An episode
makes the game again with the problem's seed, and each model turn is one move: `step(move) -> (done, info)`;
the observation is what the game said since (the model's own move, echoed back, left out). textarena gives
the reward when the game ends (`close() -> (rewards, game_info)`), so an episode cut before the game ended
has none and is left out (counted). An invalid move (`game_info[0]["invalid_move"]`) marks the score as not
`formatted`.
"""

from __future__ import annotations

from typing import Any

from rlvr.environments.adapters.base import AdapterEnvironment, AdapterEpisode, Step
from rlvr.tasks.textarena import RandomState, game_text, make_game, own_random
from rlvr.types import Problem


class TextArenaEpisode(AdapterEpisode):
    def start(self, problem: Problem | None) -> None:
        if problem is None or "seed" not in problem.meta:
            raise ValueError("a textarena episode opens from a textarena problem (its meta holds the game seed)")
        env: TextArenaEnvironment = self.env
        self.game, self.rng = make_game(env.env_id, env.options), RandomState()
        with own_random(self.rng):
            self.game.reset(num_players=1, seed=problem.meta["seed"])
            self.game.get_observation()  # the opening: the problem's prompt

    def step(self, action: str) -> Step:
        with own_random(self.rng):
            done, _ = self.game.step(action)
            player, messages = self.game.get_observation()
            reward, invalid = None, False
            if done:
                rewards, info = self.game.close()
                reward = None if not rewards else rewards.get(player, rewards.get(0))
                invalid = bool((info or {}).get(player, {}).get("invalid_move"))
        return Step(game_text(messages, player), reward, bool(done), invalid)


class TextArenaEnvironment(AdapterEnvironment):
    episode_class = TextArenaEpisode

    def __init__(self, env_id: str, options: dict[str, Any], tokenizer, max_turns: int, max_tokens: int | None,
                 timeout_s: float = 60.0):
        super().__init__(f"textarena:{env_id}", tokenizer, max_turns, max_tokens, timeout_s)
        make_game(env_id, options)  # an unknown game or option fails here, named
        self.env_id, self.options = env_id, dict(options)
