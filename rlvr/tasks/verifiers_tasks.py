"""A `verifiers` taskset as a source of problems (`task.environment: verifiers:<taskset id>`).

verifiers (0.4) environments are tasksets: installed packages whose `Taskset` yields tasks (a prompt, a system
prompt, whatever the task's rewards read). The first `max_tasks` of them are loaded, in the taskset's order;
every fifth (index 4, 9, ...) is held out for evaluation and the others are the training stream, cycled in a
seeded order per pass. A problem's prompt is the task's messages (its system prompt first) and its meta holds
the task's index: the episode itself, its transcript and its reward belong to the verifiers adapter
(rlvr.environments.adapters.verifiers_env), which runs the task with the model behind rlvr's endpoint.
"""

from __future__ import annotations

import functools
import json
import random
from typing import Any

from rlvr.tasks.base import Task, derive_seed
from rlvr.types import Problem, Score

OPTIONS = ("taskset", "env", "max_tasks", "max_concurrent")
HELD_OUT_EVERY = 5


def check_options(options: dict[str, Any]) -> None:
    """ValueError("task.environment_options.<key>: ...") for an option the adapter does not take."""
    for key, value in options.items():
        if key not in OPTIONS:
            raise ValueError(f"task.environment_options.{key}: verifiers takes {', '.join(OPTIONS)}")
        if key in ("taskset", "env") and not isinstance(value, dict):
            raise ValueError(f"task.environment_options.{key}: must be a mapping, got {value!r}")
        if key in ("max_tasks", "max_concurrent") and (isinstance(value, bool) or not isinstance(value, int)
                                                      or value < 1):
            raise ValueError(f"task.environment_options.{key}: must be an integer >= 1, got {value!r}")


def taskset_config(env_id: str, options: dict[str, Any]):
    """The taskset's own config type, validated from `options["taskset"]`; errors name the field."""
    import verifiers.v1 as vf

    try:
        cls = vf.taskset_config_type(env_id)
    except (ModuleNotFoundError, TypeError, AttributeError, ValueError) as e:
        raise ValueError(f"task.environment: verifiers has no taskset {env_id!r}: {e}") from None
    try:
        return cls.model_validate({**options.get("taskset", {}), "id": env_id})
    except Exception as e:  # noqa: BLE001 - pydantic's message names the field
        raise ValueError(f"task.environment_options.taskset: {e}") from None


@functools.lru_cache(maxsize=8)
def _load(env_id: str, options_json: str) -> tuple:
    import verifiers.v1 as vf

    options = json.loads(options_json)
    taskset = vf.load_taskset(taskset_config(env_id, options))
    tasks = tuple(taskset.take(options.get("max_tasks", 1000)))
    if len(tasks) < 2:
        raise ValueError(f"task.environment: verifiers taskset {env_id!r} has {len(tasks)} task(s); rlvr needs at "
                         "least 2 (one to train on, one held out)")
    return tasks


def load_tasks(env_id: str, options: dict[str, Any]) -> tuple:
    """The taskset's first `max_tasks` tasks (verifiers `Task`s, cached per taskset and options)."""
    return _load(env_id, json.dumps(options, sort_keys=True))


def task_messages(task) -> list[dict]:
    """The task's opening messages as the chat loop sends them: its system prompt, then its prompt."""
    from verifiers.v1.dialects.chat import message_to_wire

    data = task.data
    prompt = data.prompt
    messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else [
        message_to_wire(m) for m in prompt or []]
    if data.system_prompt:
        messages = [{"role": "system", "content": data.system_prompt}] + messages
    return messages


class VerifiersTask(Task):
    """A verifiers taskset's tasks as rlvr problems (the adapter plays and scores them)."""

    def __init__(self, env_id: str, options: dict[str, Any] | None = None, seed: int = 0, eval_size: int = 200):
        self.env_id, self.options = env_id, dict(options or {})
        check_options(self.options)
        self.name = f"verifiers/{env_id}"
        self.seed, self.eval_size = seed, eval_size
        tasks = load_tasks(env_id, self.options)
        self.held_out = [i for i in range(len(tasks)) if i % HELD_OUT_EVERY == HELD_OUT_EVERY - 1]
        self.train = [i for i in range(len(tasks)) if i % HELD_OUT_EVERY != HELD_OUT_EVERY - 1]

    def problem(self, index: int, label: str) -> Problem:
        task = load_tasks(self.env_id, self.options)[index]
        return Problem(id=f"{self.env_id}/{label}", prompt=task_messages(task), answer=None, task=self.name,
                       meta={"verifiers_index": index})

    def train_problem(self, index: int) -> Problem:
        epoch, at = divmod(index, len(self.train))
        order = list(self.train)
        random.Random(derive_seed("verifiers", self.seed, epoch)).shuffle(order)
        return self.problem(order[at], f"train-{index}")

    def eval_problems(self, n: int | None = None) -> list[Problem]:
        n = self.eval_size if n is None else n
        return [self.problem(i, f"eval-{i}") for i in self.held_out[:n]]

    def verify(self, problem: Problem, text: str) -> Score:
        raise RuntimeError(f"{self.name}: the verifiers environment scores its own episodes (its rubric's "
                           "rewards); a transcript alone cannot be scored")
