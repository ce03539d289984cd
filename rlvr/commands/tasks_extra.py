"""`rlvr tasks [list|show NAME] [-n N]` on top of `rlvr.tasks.registry.list_tasks` / `sample_task`.

`cmd_tasks(args)` takes the namespace of the existing `tasks` sub-command (`action`, `name`, `n`), so
`rlvr/cli.py` can point that sub-command here: `p.set_defaults(func=tasks_extra.cmd_tasks)`. It registers
nothing itself (the `tasks` sub-command already exists).
"""

from __future__ import annotations

import json
import random

from rlvr.config import ConfigError


def _short(value, limit: int = 300) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"


def cmd_tasks(args) -> int:
    from rlvr.tasks.registry import list_tasks, sample_task

    if args.action == "show":
        if not args.name:
            raise ConfigError("rlvr tasks show NAME: name a task (see `rlvr tasks`) or a dataset file")
        task, problems = sample_task(args.name, args.n)
        print(f"{task.name}: {task.describe()}\n")
        rng = random.Random(0)
        for p in problems:
            print(f"prompt: {_short(p.prompt)}\nanswer: {_short(p.answer)}")
            try:
                text, ok = task.worked_solution(p, rng)
                print(f"worked solution ({'correct' if ok else 'flawed'}): {text}")
            except NotImplementedError:
                pass
            print()
        return 0
    heading = {
        "builtin": "built-in tasks",
        "dataset": "dataset files",
        "mixture": "mixtures",
        "reasoning_gym": "reasoning-gym generators (task.name: reasoning_gym/<generator>)",
        "verifier": "verifiers (task.verifier for dataset rows)",
    }
    last = None
    for info in list_tasks():
        group = "dataset" if info.kind == "mixture" else info.kind
        if group != last:
            print(f"\n{heading[group]}:" if last else f"{heading[group]}:")
            last = group
        verifier = "" if info.kind in ("verifier", "reasoning_gym") else f"  [verifier: {info.verifier}]"
        print(f"  {info.name:<40} {info.description}{verifier}")
    return 0
