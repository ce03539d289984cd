"""Dataset-file tasks: rows of a JSONL, CSV, Parquet file or `datasets` directory become `Problem`s.

Config (the `task` section):

    task:
      name: dataset
      path: data/gsm8k.jsonl
      fields: {question: problem, answer: solution}   # roles -> column names
      template: "Solve: {question}\\nPut the final answer in <answer></answer>."
      verifier: math
      verifier_options: {extract: answer_tag}
      skip_invalid: false
      params: {eval_size: 200, held_out_share: 0.0625, split: train, max_row_bytes: 8388608}

Roles: `question` and `answer` (required; columns "question" and "answer" by default); `id`, `system` (a
system prompt per row) and `verifier` (a verifier name per row, overriding `task.verifier`) are optional
and read from columns of the same name when those exist. The template may name `{question}` and any column.

Every row is checked before training starts: a missing or empty field, a wrong type, or an answer the
verifier cannot use (see `answers.check_answer`) stops with the file, row and field named; with
`skip_invalid: true` such rows are dropped and counted. Then duplicates go: exact (same question text) and
near (same normalised text: case, spacing, quotes and sentence punctuation ignored). A row is held out
or not by a seeded hash of its normalised question alone: a `held_out_share` of the rows (default 1/16,
as the generator tasks), whatever the file's row order, `eval_size` or `eval.num_problems`, so no later
evaluation, however many problems it asks for, meets a row that was trained on. Evaluation takes the
first `n` held-out rows in hash order (a larger `n` extends a smaller one). Training cycles through the
rest, reshuffled (seeded) every epoch.
"""

from __future__ import annotations

import inspect
import logging
import random
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlvr.tasks.answers import check_answer
from rlvr.tasks.base import Task, derive_seed
from rlvr.tasks.files import DEFAULT_MAX_ROW_BYTES, DatasetError, read_rows, where
from rlvr.tasks.generator import GeneratedTask
from rlvr.types import Problem, Score
from rlvr.verifiers import VERIFIERS, Verifier, get_verifier
from rlvr.verifiers.extract import checked_format_style

logger = logging.getLogger(__name__)

ROLES = ("question", "answer", "id", "system", "verifier")
REQUIRED_ROLES = ("question", "answer")
SOFT_PUNCT_RE = re.compile(r"[\s\"'`“”‘’!?;:]+|(?<!\d)[.,]|[.,](?!\d)")


def normalise_question(text: str) -> str:
    """The near-duplicate key: NFKC, case-folded, without spacing, quotes or sentence punctuation (a
    decimal point or thousands comma between digits and every math symbol are kept)."""
    return SOFT_PUNCT_RE.sub("", unicodedata.normalize("NFKC", text).casefold())


@dataclass
class DatasetReport:
    """What loading a dataset kept and dropped (logged once, kept on the task as `task.report`)."""

    path: str
    rows: int = 0
    invalid: int = 0
    exact_duplicates: int = 0
    near_duplicates: int = 0
    train: int = 0
    held_out: int = 0
    invalid_examples: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{self.path}: {self.rows} rows, {self.invalid} invalid skipped, {self.exact_duplicates} exact "
            f"and {self.near_duplicates} near duplicates removed -> {self.train} train, "
            f"{self.held_out} held out (no question on both sides)"
        )


@dataclass
class Record:
    """One checked row."""

    row: int
    id: str
    question: str
    answer: Any
    verifier: str
    system: str | None
    columns: dict[str, Any]


def resolve_fields(fields: dict[str, Any] | None) -> dict[str, str]:
    """Role -> column, with defaults; unknown roles or non-string columns raise naming `task.fields`."""
    fields = dict(fields or {})
    unknown = sorted(set(fields) - set(ROLES))
    if unknown:
        raise DatasetError(f"task.fields.{unknown[0]}: unknown role; roles are {', '.join(ROLES)}")
    for role, column in fields.items():
        if not isinstance(column, str) or not column:
            raise DatasetError(f"task.fields.{role}: expected a column name, got {column!r}")
    return {role: fields.get(role, role) for role in ROLES}


def bind_verifier(name: str, options: dict[str, Any], format_reward: float,
                  format_style: str = "think_answer") -> Verifier:
    """`get_verifier(name, **options)` with the task's `format_reward` and `format_style` unless the options
    set them. A verifier without a format style refuses any style but the default (not ignored silently)."""
    options = dict(options)
    accepted = inspect.signature(VERIFIERS[name]).parameters
    if "format_reward" in accepted:
        options.setdefault("format_reward", format_reward)
    if "format_style" in accepted:
        options.setdefault("format_style", format_style)
    elif format_style != "think_answer":
        raise DatasetError(f"task.format_style: {format_style!r}, but verifier {name!r} has no format to check")
    return get_verifier(name, **options)


class RowChecker:
    """Turns raw rows into `Record`s, raising `DatasetError` (file, row, field) for a bad one."""

    def __init__(
        self,
        path: Path,
        fields: dict[str, str],
        verifier: str | None,
        options: dict[str, Any],
        template: str,
        max_bytes: int,
    ):
        self.path, self.fields, self.verifier, self.options = path, fields, verifier, options
        self.template, self.max_bytes = template, max_bytes

    def fail(self, row: int, role: str | None, msg: str) -> DatasetError:
        column = self.fields[role] if role else None
        label = f" ({role})" if role and column != role else ""
        return DatasetError(f"{where(self.path, row, column)}{label}: {msg}")

    def text(self, raw: dict, row: int, role: str, required: bool) -> str | None:
        value = raw.get(self.fields[role])
        if value is None or (isinstance(value, str) and not value.strip()):
            if required:
                present = ", ".join(map(str, list(raw)[:12])) or "none"
                raise self.fail(
                    row,
                    role,
                    f"missing or empty (the row's fields: {present}; "
                    f"map another column with task.fields.{role})",
                )
            return None
        if role == "id" and isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        if not isinstance(value, str):
            raise self.fail(row, role, f"expected a string, got {type(value).__name__} {value!r:.60}")
        if len(value.encode("utf-8", "replace")) > self.max_bytes:
            raise self.fail(row, role, f"longer than {self.max_bytes:,} bytes")
        return value

    def check(self, row: int, raw: Any) -> Record:
        if not isinstance(raw, dict):
            raise DatasetError(
                f"{where(self.path, row)}: expected an object with fields, "
                f"got {type(raw).__name__} {raw!r:.60}"
            )
        question = self.text(raw, row, "question", True)
        verifier = self.text(raw, row, "verifier", False) or self.verifier
        if verifier is None:
            raise self.fail(
                row,
                None,
                "no verifier: set task.verifier (one of "
                f"{', '.join(sorted(VERIFIERS))}) or give rows a 'verifier' column",
            )
        if verifier not in VERIFIERS:
            raise self.fail(
                row, "verifier", f"unknown verifier {verifier!r}; known: {', '.join(sorted(VERIFIERS))}"
            )
        answer = raw.get(self.fields["answer"])
        if isinstance(answer, str) and len(answer.encode("utf-8", "replace")) > self.max_bytes:
            raise self.fail(row, "answer", f"longer than {self.max_bytes:,} bytes")
        error = check_answer(verifier, answer.strip() if isinstance(answer, str) else answer, self.options)
        if error:
            raise self.fail(row, "answer", error)
        record = Record(
            row,
            self.text(raw, row, "id", False) or f"{self.path.stem}-{row}",
            question,
            answer.strip() if isinstance(answer, str) else answer,
            verifier,
            self.text(raw, row, "system", False),
            raw,
        )
        self.render(record)
        return record

    def render(self, record: Record) -> str:
        """The prompt text: the template filled with the question and the row's columns."""
        try:
            return self.template.format_map({**record.columns, "question": record.question})
        except KeyError as e:
            raise DatasetError(
                f"{where(self.path, record.row)}: task.template names {{{e.args[0]}}}, "
                f"which the row lacks (its fields: {', '.join(map(str, record.columns))})"
            ) from e
        except (IndexError, ValueError) as e:
            raise DatasetError(f"task.template: {e} (write literal braces as {{{{ and }}}})") from e


def load_records(
    path: Path, checker: RowChecker, skip_invalid: bool, split: str | None, max_bytes: int
) -> tuple[list[Record], DatasetReport]:
    """Checked, de-duplicated records of the file and the report of what was dropped."""
    report = DatasetReport(str(path))
    records: list[Record] = []
    seen_exact: set[str] = set()
    seen_near: set[str] = set()
    for row, raw in read_rows(path, max_bytes, split):
        report.rows += 1
        try:
            record = checker.check(row, raw)
        except DatasetError as e:
            if not skip_invalid:
                raise
            report.invalid += 1
            if len(report.invalid_examples) < 5:
                report.invalid_examples.append(str(e))
            continue
        if record.question in seen_exact:
            report.exact_duplicates += 1
            continue
        key = normalise_question(record.question)
        if key in seen_near:
            report.near_duplicates += 1
            continue
        seen_exact.add(record.question)
        seen_near.add(key)
        records.append(record)
    if report.rows == 0:
        raise DatasetError(f"{path}: holds no rows")
    if not records:
        raise DatasetError(
            f"{path}: none of its {report.rows} rows is usable; first problems: "
            + "; ".join(report.invalid_examples[:3])
        )
    if report.invalid:
        logger.warning(
            "%s: skipped %d invalid rows (task.skip_invalid), e.g. %s",
            path,
            report.invalid,
            report.invalid_examples[0],
        )
    return records, report


class DatasetTask(Task):
    """Problems from a dataset file (JSONL, CSV, Parquet or a `datasets` directory), checked up front."""

    name = "dataset"

    def __init__(
        self,
        path: str | Path,
        fields: dict[str, Any] | None = None,
        template: str | None = None,
        verifier: str | None = None,
        verifier_options: dict[str, Any] | None = None,
        skip_invalid: bool = False,
        seed: int = 0,
        eval_size: int = 200,
        format_reward: float = 0.1,
        name: str | None = None,
        max_row_bytes: int = DEFAULT_MAX_ROW_BYTES,
        split: str | None = None,
        held_out_share: float | None = None,
        format_style: str = "think_answer",
    ):
        self.path = Path(path)
        self.name = name or f"dataset/{self.path.stem}"
        self.seed = seed
        self.options = dict(verifier_options or {})
        if verifier is not None and verifier not in VERIFIERS:
            raise DatasetError(
                f"task.verifier: unknown verifier {verifier!r}; known: {', '.join(sorted(VERIFIERS))}"
            )
        if template is not None and ("{answer}" in template):
            raise DatasetError("task.template: {answer} would put the reference answer in the prompt")
        self.checker = RowChecker(
            self.path, resolve_fields(fields), verifier, self.options, template or "{question}", max_row_bytes
        )
        self.format_reward, self.format_style = format_reward, checked_format_style(format_style)
        share = GeneratedTask.HELD_OUT_SHARE if held_out_share is None else held_out_share
        if not 0.0 < share < 1.0:
            raise DatasetError(f"task.params.held_out_share: must be in (0, 1), got {share}")
        self.held_out_share, self.eval_size = share, eval_size
        records, self.report = load_records(self.path, self.checker, skip_invalid, split, max_row_bytes)
        self.held, self.train = self._split(records)
        self.report.train, self.report.held_out = len(self.train), len(self.held)
        self._verifiers: dict[str, Verifier] = {}
        self._epoch: tuple[int, list[int]] = (-1, [])
        logger.info("dataset %s", self.report.summary())

    def _split(self, records: list[Record]) -> tuple[list[Record], list[Record]]:
        """(held out in hash order, train in file order): a row's side depends on its key and the seed."""
        rank = {id(r): derive_seed("split", self.seed, normalise_question(r.question)) for r in records}
        held = sorted(
            (r for r in records if rank[id(r)] % 1_000_000 < self.held_out_share * 1_000_000),
            key=lambda r: rank[id(r)],
        )
        held_ids = {id(r) for r in held}
        train = [r for r in records if id(r) not in held_ids]
        if not train:
            raise DatasetError(
                f"{self.path}: all {len(records)} usable rows fall in the held-out share "
                f"({self.held_out_share:g}); lower task.params.held_out_share"
            )
        if len(held) < self.eval_size:
            logger.warning(
                "%s: %d of %d rows are held out (task.params.held_out_share=%g), fewer than the %d "
                "evaluation asks for; evaluation uses those (raise held_out_share for more)",
                self.path,
                len(held),
                len(records),
                self.held_out_share,
                self.eval_size,
            )
        return held, train

    def describe(self) -> str:
        return f"{self.path} ({self.report.train} train / {self.report.held_out} held out)"

    def _problem(self, record: Record, split: str) -> Problem:
        text = self.checker.render(record)
        prompt: str | list[dict[str, str]] = text
        if record.system:
            prompt = [{"role": "system", "content": record.system}, {"role": "user", "content": text}]
        columns = {
            k: v
            for k, v in record.columns.items()
            if k not in (self.checker.fields["question"], self.checker.fields["answer"])
        }
        return Problem(
            id=f"{self.name}-{record.id}",
            prompt=prompt,
            answer=record.answer,
            task=self.name,
            meta={
                "question": text,
                "key": normalise_question(record.question),
                "split": split,
                "source": str(self.path),
                "row": record.row,
                "verifier": record.verifier,
                "fields": columns,
            },
        )

    def train_problem(self, index: int) -> Problem:
        """Row `index % n` of epoch `index // n`'s seeded shuffle of the training rows."""
        epoch, pos = divmod(index, len(self.train))
        if self._epoch[0] != epoch:
            order = list(range(len(self.train)))
            random.Random(derive_seed(self.name, self.seed, "epoch", epoch)).shuffle(order)
            self._epoch = (epoch, order)
        return self._problem(self.train[self._epoch[1][pos]], "train")

    def eval_problems(self, n: int | None = None) -> list[Problem]:
        """The first `n` (default `eval_size`) held-out rows in hash order (all of them when `n` is larger)."""
        held = self.held[: self.eval_size if n is None else n]
        return [self._problem(r, "eval") for r in held]

    def verify(self, problem: Problem, text: str) -> Score:
        name = problem.meta["verifier"]
        if name not in self._verifiers:
            self._verifiers[name] = bind_verifier(name, self.options, self.format_reward, self.format_style)
        return self._verifiers[name](problem, text)
