"""Build a `Task` from the `task` section of the config, list what can be built, sample from it.

`task.name` picks the kind:
- a built-in generator (`arithmetic`, `countdown`), options in `task.params`;
- `dataset` (or any name with `task.path` set): a dataset file, see `rlvr.tasks.datasets`;
- `reasoning_gym/<generator>`: a reasoning-gym generator, its config in `task.params`;
- `mixture` (or a non-empty `task.mixture`): several of the above by weight, see `rlvr.tasks.mixture`.
`task.kind_sampling` wraps the result in `KindSampler` (rlvr.tasks.kinds), `task.filter_solved` in `SolvedFilter`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from rlvr.tasks.arithmetic import ArithmeticTask
from rlvr.tasks.base import Task
from rlvr.tasks.countdown import CountdownTask
from rlvr.tasks.mixture import Member, MixtureTask, share_counts, unique_labels
from rlvr.tasks.tool_arithmetic import ToolArithmeticTask

BUILTIN_TASKS: dict[str, type] = {"arithmetic": ArithmeticTask, "countdown": CountdownTask,
                                  "tool_arithmetic": ToolArithmeticTask}
BUILTIN_VERIFIERS = {"arithmetic": "integer", "countdown": "countdown", "tool_arithmetic": "integer"}
DATASET_PARAMS = ("eval_size", "held_out_share", "split", "max_row_bytes")
RG_OPTIONS = ("extract", "partial_credit")


def _builtin(cfg, eval_size: int, check_eval: bool = True) -> Task:
    cls = BUILTIN_TASKS[cfg.name]
    try:
        task = cls(
            difficulty=cfg.difficulty,
            flaw_rate=cfg.flaw_rate,
            seed=cfg.seed,
            eval_size=eval_size,
            format_reward=cfg.format_reward,
            format_style=cfg.format_style,
            blind_spot=cfg.blind_spot,
            template=cfg.template,
            **cfg.params,
        )
    except TypeError as e:
        raise ValueError(f"task.params: {e}") from e
    if check_eval:  # a problem space too small for the held-out set is refused here, up front
        task.eval_problems()
    return task


def _curriculum(cfg, eval_size: int, group_size: int | None) -> Task:
    from rlvr.tasks.curriculum import PassRateCurriculum
    from rlvr.tasks.reasoning_gym import PREFIX, curriculum_levels

    highest = cfg.curriculum_max if cfg.curriculum_max is not None else cfg.difficulty + 1
    ladder = None
    if cfg.name.startswith(PREFIX) and not (cfg.path or cfg.mixture):
        # reasoning-gym's own curriculum: level L sets every attribute to its L-th value
        top, levels = curriculum_levels(cfg.name[len(PREFIX):])
        fixed = sorted(set(cfg.params) & set(levels[0]))
        if fixed:
            # the task as configured is the target, one level above reasoning-gym's highest: the curriculum's
            # levels lead up to a setting it does not reach (task.difficulty must say so, nothing is ignored)
            if cfg.difficulty != top + 1:
                raise ValueError(f"task.params.{fixed[0]}: the curriculum sets it at each level (0-{top}); to hold "
                                 f"out the task as configured, set task.difficulty={top + 1}, one level above "
                                 f"reasoning-gym's highest")
            steps = toward(levels, {k: cfg.params[k] for k in fixed})
            ladder = [*steps, top + 1]
            levels = {**steps, top + 1: {}}
            top += 1
        for key, value in (("difficulty", cfg.difficulty), ("curriculum_start", cfg.curriculum_start),
                           ("curriculum_max", highest if cfg.curriculum_max is not None else None)):
            if value is not None and not 0 <= value <= top:
                raise ValueError(f"task.{key}: {cfg.name} has curriculum levels 0-{top}, got {value}")

        def make(level: int) -> Task:
            return _reasoning_gym(dataclasses.replace(cfg, params={**cfg.params, **levels[level]}), eval_size)

        highest = min(highest, top)
    elif cfg.name in BUILTIN_TASKS and not (cfg.path or cfg.mixture):
        def make(level: int) -> Task:
            return _builtin(dataclasses.replace(cfg, difficulty=level), eval_size, level == cfg.difficulty)
    else:
        raise ValueError(f"task.adaptive_difficulty: only the built-in generators ({', '.join(sorted(BUILTIN_TASKS))}) "
                         f"and reasoning-gym generators with a curriculum have a difficulty knob, not {cfg.name!r}")
    lowest = min(cfg.curriculum_start, cfg.difficulty)
    if ladder is not None:
        ladder = [lv for lv in ladder if lowest <= lv <= highest]
        if cfg.curriculum_start not in ladder:
            raise ValueError(f"task.curriculum_start: level {cfg.curriculum_start} of {cfg.name}, held to the task "
                             f"as configured in the fields task.params sets, is the same as a lower level or the "
                             f"task itself, so the curriculum leaves it out; its levels are "
                             f"{', '.join(map(str, ladder))}")
    return PassRateCurriculum(make, target=cfg.difficulty, start=cfg.curriculum_start, lowest=lowest,
                              highest=highest, low=cfg.curriculum_low, window=cfg.curriculum_window,
                              group_size=group_size, ladder=ladder)


def toward(levels: dict[int, dict], target: dict) -> dict[int, dict]:
    """The levels of a reasoning-gym curriculum on the way to `target` (the fields a task's params fix), each held
    to the target: a field harder than the target's takes the target's value. A field's harder direction is the
    way it moves from the lowest level to the highest; fields that do not move, or whose values are not numbers,
    are left as the level has them. A level that comes out the same as a lower one, or as the target in every
    field it sets, is left out. Toward 2-term sums of 3 digits (chain_sum: level L has 2 to L + 2 terms of 1 to
    L + 1 digits), the ladder is 2 terms of 1 digit (level 0), of 1-2 digits (level 1, its third term held off),
    of 1-3 digits (level 2); levels 3-10 come out the same as level 2. Skipping the levels harder than the
    target instead would leave level 0 alone, a jump from one-digit terms to three-digit ones."""
    first, last = levels[min(levels)], levels[max(levels)]
    numbers = [f for f in target if all(isinstance(v, int | float) and not isinstance(v, bool)
                                        for v in (first[f], last[f], target[f]))]  # others: not compared
    sign = {f: (last[f] > first[f]) - (last[f] < first[f]) for f in numbers}
    held: dict[int, dict] = {}
    for level, fields in sorted(levels.items()):
        fields = {f: target[f] if f in sign and (v - target[f]) * sign[f] > 0 else v for f, v in fields.items()}
        if fields not in held.values() and any(f not in target or target[f] != v for f, v in fields.items()):
            held[level] = fields
    return held


def _dataset(cfg, eval_size: int) -> Task:
    from rlvr.tasks.datasets import DatasetTask

    if not cfg.path:
        raise ValueError(
            "task.path: a dataset task needs the path of a JSONL, CSV or Parquet file or a "
            "`datasets` directory"
        )
    unknown = sorted(set(cfg.params) - set(DATASET_PARAMS))
    if unknown:
        raise ValueError(f"task.params.{unknown[0]}: not a dataset option; use {', '.join(DATASET_PARAMS)}")
    params = {"eval_size": eval_size, **cfg.params}
    return DatasetTask(
        cfg.path,
        fields=cfg.fields,
        template=cfg.template,
        verifier=cfg.verifier,
        verifier_options=cfg.verifier_options,
        skip_invalid=cfg.skip_invalid,
        seed=cfg.seed,
        format_reward=cfg.format_reward,
        format_style=cfg.format_style,
        **params,
    )


def _reasoning_gym(cfg, eval_size: int) -> Task:
    from rlvr.tasks.reasoning_gym import PREFIX, ReasoningGymTask

    unknown = sorted(set(cfg.verifier_options) - set(RG_OPTIONS))
    if unknown:
        raise ValueError(
            f"task.verifier_options.{unknown[0]}: reasoning-gym tasks take {', '.join(RG_OPTIONS)}"
        )
    return ReasoningGymTask(
        cfg.name[len(PREFIX) :],
        config=cfg.params,
        seed=cfg.seed,
        eval_size=eval_size,
        format_reward=cfg.format_reward,
        format_style=cfg.format_style,
        template=cfg.template,
        **cfg.verifier_options,
    )


def _mixture(cfg, eval_size: int) -> Task:
    if not cfg.mixture:
        raise ValueError("task.mixture: a mixture lists its tasks, e.g. [{name: arithmetic, weight: 2}, ...]")
    weights = [m.weight for m in cfg.mixture]
    if sum(weights) <= 0:
        raise ValueError("task.mixture: at least one weight must be > 0")
    shares = share_counts(eval_size, weights)
    tasks = []
    for i, (member, share) in enumerate(zip(cfg.mixture, shares)):
        if member.mixture or member.name == "mixture":
            raise ValueError(f"task.mixture[{i}]: mixtures do not nest; list the tasks in one mixture")
        if member.filter_solved != "none":
            raise ValueError(f"task.mixture[{i}].filter_solved: set filter_solved on the mixture itself")
        member = dataclasses.replace(member, seed=member.seed + cfg.seed)
        try:
            tasks.append(_one(member, max(share, 1)))
        except ValueError as e:
            raise ValueError(f"task.mixture[{i}] ({member.name}): {e}") from e
    labels = unique_labels([t.name for t in tasks])
    members = [Member(t, w, label) for t, w, label in zip(tasks, weights, labels)]
    return MixtureTask(members, seed=cfg.seed, curriculum=cfg.curriculum)


def _one(cfg, eval_size: int) -> Task:
    from rlvr.tasks.reasoning_gym import PREFIX

    if (getattr(cfg, "environment", None) or "").startswith("textarena:"):  # the game is the source of problems
        from rlvr.tasks.textarena import TextArenaTask

        return TextArenaTask(cfg.environment.partition(":")[2], cfg.environment_options, cfg.seed, eval_size)
    if (getattr(cfg, "environment", None) or "").startswith("verifiers:"):  # the taskset is the source of problems
        from rlvr.tasks.verifiers_tasks import VerifiersTask

        return VerifiersTask(cfg.environment.partition(":")[2], cfg.environment_options, cfg.seed, eval_size)
    if cfg.mixture or cfg.name == "mixture":
        return _mixture(cfg, eval_size)
    if cfg.name.startswith(PREFIX):
        return _reasoning_gym(cfg, eval_size)
    if cfg.path or cfg.name == "dataset":
        if cfg.name not in ("dataset", "arithmetic"):  # "arithmetic" is the default name
            raise ValueError(f"task.path is set but task.name is {cfg.name!r}; use name: dataset")
        return _dataset(cfg, eval_size)
    if cfg.name not in BUILTIN_TASKS:
        raise ValueError(
            f"task.name: unknown task {cfg.name!r}; built-in tasks: {', '.join(sorted(BUILTIN_TASKS))}, "
            "or dataset, mixture, reasoning_gym/<generator> (see `rlvr tasks`)"
        )
    return _builtin(cfg, eval_size)


def build_task(cfg, eval_size: int = 200, group_size: int | None = None) -> Task:
    """`cfg` is a `TaskConfig`; task-specific options come from `cfg.params` (see the module docstring).
    `group_size`: the samples per prompt a training run takes (`rollout.num_generations`), for a curriculum's
    informative share."""
    task = _curriculum(cfg, eval_size, group_size) if getattr(cfg, "adaptive_difficulty", False) \
        else _one(cfg, eval_size)
    if getattr(cfg, "kind_sampling", False):
        from rlvr.tasks.kinds import KindSampler

        task = KindSampler(task, group_size or 8, seed=cfg.seed, floor=cfg.kind_floor, window=cfg.kind_window)
    mode = getattr(cfg, "filter_solved", "none")
    if mode != "none":
        from rlvr.tasks.filtering import SolvedFilter

        task = SolvedFilter(task, mode)
    return task


@dataclass
class TaskInfo:
    """One line of `rlvr tasks`."""

    name: str
    kind: str  # "builtin" | "reasoning_gym" | "dataset" | "mixture" | "verifier"
    verifier: str
    description: str


def list_tasks(reasoning_gym: bool = True) -> list[TaskInfo]:
    """Built-in tasks, the dataset and mixture kinds, every reasoning-gym generator (when installed) and
    the registered verifiers a dataset can name."""
    from rlvr.verifiers import VERIFIERS

    infos = [
        TaskInfo(name, "builtin", BUILTIN_VERIFIERS[name], (cls.__doc__ or "").strip().splitlines()[0])
        for name, cls in sorted(BUILTIN_TASKS.items())
    ]
    infos.append(
        TaskInfo(
            "dataset",
            "dataset",
            "task.verifier or a 'verifier' column",
            "rows of a JSONL/CSV/Parquet file or `datasets` directory (task.path, task.fields)",
        )
    )
    infos.append(TaskInfo("mixture", "mixture", "each member's", "several tasks by weight (task.mixture)"))
    if reasoning_gym:
        try:
            from rlvr.tasks.reasoning_gym import PREFIX, generator_description, generator_names

            infos += [
                TaskInfo(PREFIX + g, "reasoning_gym", "reasoning-gym score_answer", generator_description(g))
                for g in generator_names()
            ]
        except (ImportError, ValueError):
            infos.append(
                TaskInfo("reasoning_gym/*", "reasoning_gym", "-", "not installed: pip install reasoning-gym")
            )
    for name, fn in sorted(VERIFIERS.items()):
        first = " ".join((fn.__doc__ or "").strip().split("\n\n")[0].split())
        infos.append(TaskInfo(name, "verifier", name, first))
    return infos


def sample_task(name: str, n: int = 3, **options):
    """`n` training problems of the task called `name` (a built-in, `reasoning_gym/<generator>`, or the
    path of a dataset file) and the task itself: `(task, problems)`. `options` are `TaskConfig` fields."""
    from rlvr.config import TaskConfig

    if Path(name).exists() and "path" not in options:
        cfg = TaskConfig(name="dataset", path=name, **options)
    else:
        cfg = TaskConfig(name=name, **options)
    task = build_task(cfg, eval_size=1 if cfg.path else 10)  # a dataset's task.params.eval_size still wins
    return task, [task.train_problem(i) for i in range(n)]
