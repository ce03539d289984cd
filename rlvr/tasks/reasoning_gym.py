"""reasoning-gym generators as tasks: `task.name: reasoning_gym/<generator>`, `task.params` its config.

Most generators make entry `i` from `Random(seed + i)`; some precompute `size` entries up front and some
seed numpy (seeds below 2^32). So the training stream is cut into chunks of `CHUNK` entries, chunk `c` a
dataset seeded `base + c * CHUNK` (`base = derive_seed(name, seed) mod 2^30`), and the held-out set is one
dataset seeded `base + 2^31`: the two seed ranges never meet before 2^30 training problems. Training
entries whose question equals a held-out one are redrawn, as for the built-in generators.
The verifier is the generator's own `score_answer` on the final answer (found by `extract`, default the
`<answer>` tag): correct when it scores 1.0; `partial_credit: true` (in `task.verifier_options`) passes
its fractional score on as the reward; where `score_answer` raises, the sample has no reward (a
`VerifierError`, counted), never a 0. Needs `pip install reasoning-gym` (`rlvr[data]`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from rlvr.tasks.base import Task, derive_seed
from rlvr.types import Problem, Score
from rlvr.verifiers import verifier_fault
from rlvr.verifiers.extract import EXTRACTORS, checked_format_style
from rlvr.verifiers.reply import read_reply

PREFIX = "reasoning_gym/"
CHUNK = 1000
EVAL_SEED_OFFSET = 2**31
REDRAW_STRIDE = 2**20
CACHED_CHUNKS = 4


def _rg():
    try:
        import reasoning_gym
    except ImportError as e:
        raise ValueError(
            "task.name: reasoning_gym tasks need `pip install reasoning-gym` (rlvr[data])"
        ) from e
    return reasoning_gym


def generator_names() -> list[str]:
    """Every reasoning-gym generator name (without the `reasoning_gym/` prefix)."""
    from reasoning_gym.factory import DATASETS

    _rg()
    return sorted(DATASETS)


def generator_description(generator: str) -> str:
    """First line of the generator's docstring."""
    from reasoning_gym.factory import DATASETS

    cls = DATASETS[generator][0]
    return (cls.__doc__ or generator).strip().splitlines()[0]


def curriculum_levels(generator: str) -> tuple[int, dict[int, dict[str, Any]]]:
    """reasoning-gym's own curriculum for `generator`: its highest global level and, per level, the config
    fields it sets there (every attribute at that level, or at its own highest where it has fewer levels)."""
    from reasoning_gym.factory import CURRICULA, create_curriculum

    _rg()
    if generator not in CURRICULA:
        raise ValueError(f"task.adaptive_difficulty: reasoning-gym defines no curriculum for {generator!r}")
    curriculum = create_curriculum(generator)
    attrs = curriculum.attributes.values()
    fields = [n for a in attrs for n in ((a.lower_field_name, a.upper_field_name) if hasattr(a, "lower_field_name")
                                         else (a.field_name,))]
    top = max(len(a.levels) for a in attrs) - 1
    levels = {}
    for level in range(top + 1):
        curriculum.set_global_level(level)
        config = dataclasses.asdict(curriculum.generate_configuration({"seed": 0, "size": 1}))
        levels[level] = {f: config[f] for f in fields}
    return top, levels


def _kind(entry: dict[str, Any]) -> dict[str, str]:
    """{"kind": "num_terms=3, num_digits=1"}: the values of the difficulty attributes this entry was drawn with
    (reasoning-gym lists the attributes in `metadata["difficulty"]` and records each entry's own values beside
    them), so held-out accuracy can be read per kind of problem (`evaluate`'s `by_kind`); {} when it names none.
    A generator that mixes kinds of question by weight (aiw's siblings, friends and colleagues) records the one
    drawn as `task_type` rather than as a difficulty value: it is named first."""
    meta = entry.get("metadata") or {}
    names = [k for k in meta.get("difficulty") or {} if k in meta and isinstance(meta[k], int | float | str)]
    if isinstance(meta.get("task_type"), str) and "task_type" not in names:
        names.insert(0, "task_type")
    return {"kind": ", ".join(f"{k}={meta[k]}" for k in names)} if names else {}


class ReasoningGymTask(Task):
    """A reasoning-gym generator, scored by its own `score_answer`."""

    def __init__(
        self,
        generator: str,
        config: dict[str, Any] | None = None,
        seed: int = 0,
        eval_size: int = 200,
        format_reward: float = 0.1,
        template: str | None = None,
        extract: str = "answer_tag",
        partial_credit: bool = False,
        format_style: str = "think_answer",
    ):
        _rg()
        from reasoning_gym.factory import DATASETS

        if generator not in DATASETS:
            near = [n for n in DATASETS if generator[:4] in n][:8]
            raise ValueError(
                f"task.name: unknown reasoning-gym generator {generator!r}"
                + (f"; did you mean {', '.join(near)}?" if near else "; see `rlvr tasks`")
            )
        if extract not in EXTRACTORS:
            raise ValueError(
                f"task.verifier_options.extract: {extract!r}; expected one of {', '.join(EXTRACTORS)}"
            )
        self.generator, self.name = generator, PREFIX + generator
        self.config = dict(config or {})
        self.seed, self.eval_size, self.format_reward = seed, eval_size, format_reward
        self.format_style = checked_format_style(format_style)
        self.template, self.extract, self.partial_credit = template or "{question}", extract, partial_credit
        self.base_seed = derive_seed(self.name, seed) % 2**30
        self.eval_ds = self._dataset(self.base_seed + EVAL_SEED_OFFSET, max(eval_size, 1))
        self._chunks: dict[int, Any] = {}
        self._eval: list[Problem] | None = None
        self._eval_keys: set[str] = set()

    def describe(self) -> str:
        return generator_description(self.generator)

    def _dataset(self, seed: int, size: int):
        try:
            return _rg().create_dataset(self.generator, **{**self.config, "seed": seed, "size": size})
        except (TypeError, ValueError, AssertionError, KeyError) as e:
            raise ValueError(
                f"task.params: reasoning-gym {self.generator!r} refused its config "
                f"{self.config}: {type(e).__name__}: {e}"
            ) from e

    def _train_entry(self, k: int) -> dict[str, Any]:
        chunk, pos = divmod(k, CHUNK)
        if chunk not in self._chunks:
            if len(self._chunks) >= CACHED_CHUNKS:
                self._chunks.pop(next(iter(self._chunks)))
            self._chunks[chunk] = self._dataset(self.base_seed + chunk * CHUNK, CHUNK)
        return self._chunks[chunk][pos]

    def _problem(self, entry: dict[str, Any], pid: str) -> Problem:
        question = entry["question"]
        try:
            text = self.template.format_map({"question": question})
        except (KeyError, IndexError, ValueError) as e:
            raise ValueError(
                f"task.template: only {{question}} is known for reasoning-gym tasks ({e})"
            ) from e
        return Problem(
            id=pid,
            prompt=text,
            answer=entry.get("answer"),
            task=self.name,
            meta={"question": text, "key": question, "entry": entry, **_kind(entry)},
        )

    def eval_problems(self, n: int | None = None) -> list[Problem]:
        """The first `n` entries of the held-out stream (at most `eval_size`)."""
        if self._eval is None:
            self._eval = [
                self._problem(self.eval_ds[i], f"{self.name}-eval-{i}") for i in range(self.eval_size)
            ]
            self._eval_keys = {p.meta["key"] for p in self._eval}
        return self._eval if n is None else self._eval[:n]

    def train_problem(self, index: int) -> Problem:
        self.eval_problems()
        for attempt in range(100):
            entry = self._train_entry(index + attempt * REDRAW_STRIDE)
            if entry["question"] not in self._eval_keys:
                return self._problem(entry, f"{self.name}-train-{index}")
        raise RuntimeError(f"task {self.name}: could not draw a problem outside the held-out set")

    def verify(self, problem: Problem, text: str) -> Score:
        reply = read_reply(text, self.format_reward, self.extract, style=self.format_style)
        if reply.answer is None:
            return reply.missing()
        try:
            value = float(self.eval_ds.score_answer(answer=reply.answer, entry=problem.meta["entry"]))
        except Exception as e:  # noqa: BLE001 - a scorer bug is no reward (counted), never a 0 nor a crash
            raise verifier_fault(f"reasoning-gym {self.generator} scorer", problem,
                                 f"raised {type(e).__name__}: {e}") from e
        correct = value >= 1.0
        details = {"parsed": reply.answer, "score": value}
        if not correct:
            details["reason"] = "reasoning-gym scored it below 1"
        return reply.scored(correct, details, value if self.partial_credit else None)
