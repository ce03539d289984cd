"""A live progress bar for training, or plain text lines where a bar would garble the log (CI, files)."""

from __future__ import annotations

import math
import sys
import time
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.progress import Progress as RichProgress

# (metric key, short name) shown live when the metrics hold them: RL reports reward and accuracy,
# pretraining its loss.
SHOWN = [("reward/mean", "reward"), ("accuracy", "acc"), ("loss", "loss"), ("pretrain/loss", "loss")]


def _fmt(value: Any) -> str:
    """A metric value in 3 decimals, or '-' when it is not a finite number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return "-"
    return f"{value:.3f}"


def _stats(metrics: dict) -> str:
    """The live numbers, e.g. 'reward 0.412  acc 0.375'; keys absent from `metrics` are left out."""
    return "  ".join(f"{name} {_fmt(metrics[key])}" for key, name in SHOWN if key in metrics)


def _fmt_seconds(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "?"
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def _is_tty() -> bool:
    try:
        return bool(sys.stdout.isatty())
    except (AttributeError, ValueError):  # replaced or closed stdout
        return False


class Progress:
    """Training progress: `with Progress(total, "rl") as p: p.update(step, metrics)`.

    `step` is the number of steps done (so `update(total, ...)` is the end). `metrics` may hold
    "reward/mean", "accuracy" and "loss" (or "pretrain/loss"), shown live. On a TTY with `enabled=True` this is a rich bar with elapsed
    time and ETA; otherwise it prints one line every `every` steps (default: ~20 lines per run) and at the
    end. It never raises: progress display must not kill a training run.
    """

    def __init__(self, total: int, description: str, enabled: bool = True, every: int | None = None) -> None:
        self.total = max(int(total), 0)
        self.description = description
        self.every = max(1, every if every is not None else self.total // 20)
        self._bar: RichProgress | None = None
        self._task = None
        self._use_bar = enabled and _is_tty()
        self._t0 = time.monotonic()
        self._first: tuple[int, float] | None = None  # (step, time) of the first update, for the ETA
        self._last_printed: int | None = None

    def __enter__(self) -> Progress:
        self._t0 = time.monotonic()
        if self._use_bar:
            self._start_bar()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _start_bar(self) -> None:
        try:
            self._bar = RichProgress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[stats]}"),
                TimeElapsedColumn(),
                TextColumn("eta"),
                TimeRemainingColumn(),
            )
            self._bar.start()
            self._task = self._bar.add_task(self.description, total=self.total or None, stats="")
        except Exception:  # no usable terminal after all: fall back to text
            self._bar, self._use_bar = None, False

    def update(self, step: int, metrics: dict | None = None) -> None:
        """Show that `step` steps are done, with the latest reward, accuracy or loss from `metrics`."""
        try:
            stats = _stats(metrics or {})
            now, first = time.monotonic(), self._first is None
            if first:
                self._first = (step, now)
            if self._use_bar and self._bar is None:
                self._start_bar()  # update() without `with`
            if self._bar is not None:
                if first:  # a resumed run starts mid-way: that jump is not speed, so start the ETA here
                    self._bar.reset(self._task, completed=step)
                self._bar.update(self._task, completed=step, stats=stats)
                return
            last = self._last_printed
            due = last is None or step - last >= self.every or (step >= self.total > last)
            if not due:
                return
            self._last_printed = step
            print(self._line(step, stats, now), flush=True)
        except Exception:  # never let display break training
            pass

    def _line(self, step: int, stats: str, now: float) -> str:
        eta = None
        first_step, first_time = self._first or (step, now)
        if step > first_step and now > first_time:
            eta = (self.total - step) * (now - first_time) / (step - first_step)
        width = len(str(self.total))
        return (
            f"{self.description} step {step:>{width}}/{self.total}  {stats + '  ' if stats else ''}"
            f"elapsed {_fmt_seconds(now - self._t0)}  eta {_fmt_seconds(eta)}"
        )

    def close(self) -> None:
        """Stop the bar (idempotent); later updates print text lines."""
        self._use_bar = False
        if self._bar is not None:
            try:
                self._bar.stop()
            except Exception:
                pass
            self._bar = None
