"""`skyrl-gym` environments (SkyRL's Gymnasium-style text environments) in rlvr's loop.

A skyrl-gym environment is made per episode with `skyrl_gym.make(env_id, env_config=..., extras=...)`,
`init(prompt)` and then `step(action) -> {"observations", "reward", "done", "metadata"}` for every model turn;
observations are chat messages. Problems come from the rlvr task as usual (a dataset, a built-in generator):
each problem's `extras` are SkyRL's dataset fields, built from the problem (`reward_spec` with the problem's
answer as `ground_truth`, `extra_info` from its meta) unless its meta carries them, then updated with
`task.environment_options.extras`. `task.environment_options.env_config` is the environment's config.
The prompt is rlvr's (the task's template and chat template); `init` must not rewrite it (those that do, e.g.
adding a system prompt, see their rewrite ignored: put it in `model.system_prompt`).
"""

from __future__ import annotations

from typing import Any

from rlvr.environments.adapters.base import AdapterEnvironment, AdapterEpisode, Step
from rlvr.types import Problem

OPTIONS = ("env_config", "extras")


def extras_for(problem: Problem | None, extras: dict[str, Any]) -> dict[str, Any]:
    """SkyRL's per-row `extras` of `problem`: its meta's `reward_spec`/`extra_info` where it has them, else
    the answer as a rule-based `ground_truth` (text, as SkyRL's datasets store it), then `extras` on top."""
    meta = dict(problem.meta) if problem is not None else {}
    answer = None if problem is None else problem.answer
    out: dict[str, Any] = {
        "reward_spec": meta.pop("reward_spec", None) or {"method": "rule",
                                                         "ground_truth": None if answer is None else str(answer)},
        "extra_info": meta.pop("extra_info", None) or meta,
    }
    out.update(extras)
    return out


def prompt_messages(problem: Problem | None) -> list[dict]:
    if problem is None:
        return []
    if isinstance(problem.prompt, list):
        return list(problem.prompt)
    return [{"role": "user", "content": problem.prompt}]


class SkyRLGymEpisode(AdapterEpisode):
    def start(self, problem: Problem | None) -> None:
        import skyrl_gym
        from omegaconf import OmegaConf

        env: SkyRLGymEnvironment = self.env
        self.gym = skyrl_gym.make(env.env_id, env_config=OmegaConf.create(env.env_config),
                                  extras=extras_for(problem, env.extras))
        self.gym.init(prompt_messages(problem))

    def step(self, action: str) -> Step:
        out = self.gym.step(action)
        reward = out.get("reward")
        return Step(out.get("observations") or [], None if reward is None else float(reward), bool(out.get("done")))

    def release(self) -> None:
        self.gym.close()


class SkyRLGymEnvironment(AdapterEnvironment):
    episode_class = SkyRLGymEpisode

    def __init__(self, env_id: str, options: dict[str, Any], tokenizer, max_turns: int, max_tokens: int | None,
                 timeout_s: float = 60.0):
        super().__init__(f"skyrl_gym:{env_id}", tokenizer, max_turns, max_tokens, timeout_s)
        check(env_id, options)
        self.env_id = env_id
        self.env_config = dict(options.get("env_config") or {})
        self.extras = dict(options.get("extras") or {})


def env_ids() -> list[str]:
    import skyrl_gym

    return sorted(skyrl_gym.registry)


def check(env_id: str, options: dict[str, Any]) -> None:
    """ValueError("task.<field>: ...") for an unknown environment or option."""
    ids = env_ids()
    if env_id not in ids:
        raise ValueError(f"task.environment: skyrl_gym has no environment {env_id!r}; registered: {', '.join(ids)}")
    for key in options:
        if key not in OPTIONS:
            raise ValueError(f"task.environment_options.{key}: skyrl_gym takes {', '.join(OPTIONS)}")
        if not isinstance(options[key], dict):
            raise ValueError(f"task.environment_options.{key}: must be a mapping, got {options[key]!r}")
