"""Build a `Task` from the `task` section of the config."""

from __future__ import annotations

from rlvr.tasks.arithmetic import ArithmeticTask
from rlvr.tasks.base import Task
from rlvr.tasks.countdown import CountdownTask

BUILTIN_TASKS: dict[str, type] = {"arithmetic": ArithmeticTask, "countdown": CountdownTask}


def build_task(cfg, eval_size: int = 200) -> Task:
    """`cfg` is a `TaskConfig`; task-specific options come from `cfg.params`."""
    if cfg.name not in BUILTIN_TASKS:
        raise ValueError(f"task.name: unknown task {cfg.name!r}; built-in tasks: {', '.join(sorted(BUILTIN_TASKS))}")
    cls = BUILTIN_TASKS[cfg.name]
    try:
        return cls(difficulty=cfg.difficulty, flaw_rate=cfg.flaw_rate, seed=cfg.seed, eval_size=eval_size,
                   format_reward=cfg.format_reward, blind_spot=cfg.blind_spot, **cfg.params)
    except TypeError as e:
        raise ValueError(f"task.params: {e}") from e
