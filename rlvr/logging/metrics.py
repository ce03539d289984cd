"""Metrics, samples and eval results of a run, written as JSONL and optionally forwarded to other sinks.

JSONL is the source of truth (the report reads it); TensorBoard, Weights & Biases and MLflow are extras,
used only when enabled and installed. A missing or failing extra warns once and the run goes on.

Files in `run_dir`, one JSON object per line:
    metrics.jsonl   {"step": int, "reward/mean": float, ...}   (non-finite floats become null)
    samples.jsonl   {"step": int, "task": ..., "prompt": ..., "completion": ..., "reward": ..., ...}
    eval.jsonl      {"step": int, "accuracy": ..., "pass@4": ..., "by_task": {...}, "phase": ...}
    events.jsonl    {"step": int, "event": "rollout_worker_restarted", ...}   (faults; kept across resumes)
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import re
import time
from pathlib import Path
from typing import IO, Any

from rlvr.atomic import write_text_atomic

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.jsonl"
SAMPLES_FILE = "samples.jsonl"
EVAL_FILE = "eval.jsonl"
EVENTS_FILE = "events.jsonl"
# Rows of the pretraining phase count their own steps, so resuming at RL step s must not drop them.
PRETRAIN_PHASE = "pretrain"


def to_jsonable(obj: Any) -> Any:
    """`obj` as plain JSON data: non-finite floats -> None, tensors/numpy scalars -> numbers, sets -> lists,
    dataclasses -> dicts, anything else unknown -> its `str`."""
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in obj]
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return to_jsonable(dataclasses.asdict(obj))
    if hasattr(obj, "tolist"):  # torch.Tensor, numpy arrays and scalars
        try:
            return to_jsonable(obj.tolist())
        except Exception:  # a tensor that cannot be listed: fall through
            pass
    return str(obj)


def read_jsonl(path: str | Path, *, strict: bool = True) -> list[dict]:
    """Every object in a JSONL file ([] if the file does not exist).

    A broken *final* line is what a killed run leaves behind, so it is skipped with a warning. A broken
    line anywhere else means the file was damaged: with `strict` it raises ValueError naming the file and
    line, without it the line is skipped with a warning (for readers that must not fail, like the report).
    """
    path = Path(path)
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    rows = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if not isinstance(row, dict):
                raise ValueError(f"expected a JSON object, got {type(row).__name__}")
        except ValueError as e:  # json.JSONDecodeError is a ValueError
            where = f"{path}, line {i + 1}"
            if i == len(lines) - 1:
                log.warning("%s: skipping truncated last line (a run killed mid-write?)", where)
            elif strict:
                raise ValueError(f"{where}: {e}; each line must be one JSON object") from e
            else:
                log.warning("%s: skipping unreadable line: %s", where, e)
            continue
        rows.append(row)
    return rows


def sample_rows(rollouts: list, k: int) -> list[dict]:
    """`k` of a step's scored rollouts, evenly spaced, as samples.jsonl rows (task, prompt, completion,
    reward, correct, formatted, details)."""
    rollouts = [r for r in rollouts if r.score is not None]  # a sample the sandbox could not score has no row
    picked = rollouts[:: max(1, len(rollouts) // max(k, 1))][:k]
    rows = [{"task": r.problem.task, "prompt": r.problem.prompt if isinstance(r.problem.prompt, str)
             else str(r.problem.prompt), "completion": r.text, "reward": r.score.reward,
             "correct": r.score.correct, "formatted": r.score.formatted, "details": r.score.details}
            for r in picked]
    for row, r in zip(rows, picked):  # multi-turn: the model's turns and the tools' answers, set apart
        if getattr(r, "episode", None) is not None:
            row["transcript"] = [{"role": role, "text": text} for role, text in r.episode.transcript]
            row["tool_calls"] = [{"tool": c.tool, "error": c.error} for c in r.episode.calls]
    return rows


def _keep_on_resume(row: dict, resume_step: int) -> bool:
    if row.get("phase") == PRETRAIN_PHASE:
        return True
    step = row.get("step")
    return not isinstance(step, (int, float)) or step <= resume_step


def _scalars(metrics: dict[str, Any]) -> dict[str, float]:
    """The finite numeric entries of `metrics`, the only ones the external sinks accept."""
    out = {}
    for k, v in metrics.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        if math.isfinite(v):
            out[k] = float(v)
    return out


def _flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


class MlflowSink:
    """An MLflow run in a SQLite tracking store inside the run directory (`run_dir/mlflow.db`, artifacts in
    `run_dir/mlartifacts`), written through `MlflowClient`, so no global MLflow state and nothing lands in the
    working directory. Read it back with `MlflowClient(tracking_uri=MlflowSink.uri(run_dir))`."""

    EXPERIMENT = "rlvr"

    def __init__(self, run_dir: Path, config: dict | None):
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri=self.uri(run_dir))
        exp = self.client.get_experiment_by_name(self.EXPERIMENT)
        exp_id = exp.experiment_id if exp else self.client.create_experiment(
            self.EXPERIMENT, artifact_location=(Path(run_dir).resolve() / "mlartifacts").as_uri())
        self.run_id = self.client.create_run(exp_id, run_name=Path(run_dir).name).info.run_id
        if config:  # MLflow params are flat strings of bounded length
            params = [Param(k, str(v)[:500]) for k, v in _flatten(config).items()]
            for i in range(0, len(params), 100):  # log_batch takes at most 100 params
                self.client.log_batch(self.run_id, params=params[i : i + 100])

    @staticmethod
    def uri(run_dir: str | Path) -> str:
        return f"sqlite:///{Path(run_dir).resolve() / 'mlflow.db'}"

    def log_metrics(self, scalars: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(re.sub(r"[^\w\-. /]", "_", k), v, now, step) for k, v in scalars.items()]
        for i in range(0, len(metrics), 1000):
            self.client.log_batch(self.run_id, metrics=metrics[i : i + 1000])

    def finish(self) -> None:
        self.client.set_terminated(self.run_id)


class MetricsLogger:
    """Appends metrics/samples/eval rows to JSONL in `run_dir` and forwards scalars to enabled sinks.

    `resume_step=None` starts fresh (existing files are truncated). `resume_step=s` continues a run:
    rows with step > s are dropped (they belong to the lost part of the killed run) so the history
    continues exactly; rows with `"phase": "pretrain"` are kept since their steps are a separate counter.
    """

    def __init__(
        self,
        run_dir: str | Path,
        *,
        tensorboard: bool = False,
        wandb: bool = False,
        mlflow: bool = False,
        config: dict | None = None,
        resume_step: int | None = None,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._files: dict[str, IO[str]] = {}
        for name in (METRICS_FILE, SAMPLES_FILE, EVAL_FILE):
            path = self.run_dir / name
            if resume_step is None:
                mode = "w"
            else:
                mode = "a"
                if path.exists():
                    rows = read_jsonl(path, strict=False)  # a damaged line must not block a resume
                    kept = [r for r in rows if _keep_on_resume(r, resume_step)]
                    write_text_atomic(path, "".join(json.dumps(r) + "\n" for r in kept))
            self._files[name] = path.open(mode, encoding="utf-8")
        # Events are what happened to the run (a worker lost, a learner lost): a resume keeps them all.
        self._files[EVENTS_FILE] = (self.run_dir / EVENTS_FILE).open("w" if resume_step is None else "a",
                                                                      encoding="utf-8")
        self._tb = self._wandb = self._mlflow = None
        if tensorboard:
            self._tb = self._start_sink("tensorboard", self._start_tensorboard)
        if wandb:
            self._wandb = self._start_sink("wandb", lambda: self._start_wandb(config))
        if mlflow:
            self._mlflow = self._start_sink("mlflow", lambda: self._start_mlflow(config))

    # --- optional sinks ----------------------------------------------------------------------------------

    def _start_sink(self, name: str, start) -> Any:
        try:
            return start()
        except ImportError as e:
            log.warning(
                "logging.%s is enabled but %s is not installed (%s); writing JSONL only", name, name, e
            )
        except Exception as e:  # a broken sink must not stop training
            log.warning("logging.%s is enabled but failed to start (%r); writing JSONL only", name, e)
        return None

    def _start_tensorboard(self):
        from torch.utils.tensorboard import SummaryWriter

        return SummaryWriter(log_dir=str(self.run_dir / "tb"))

    def _start_wandb(self, config: dict | None):
        import wandb

        # mode: WANDB_MODE from the environment wins (offline keeps the run in run_dir/wandb, no account).
        return wandb.init(config=config, dir=str(self.run_dir), name=self.run_dir.name)

    def _start_mlflow(self, config: dict | None):
        return MlflowSink(self.run_dir, config)
    def _forward(self, step: int, metrics: dict[str, Any]) -> None:
        scalars = _scalars(metrics)
        if not scalars:
            return
        for name in ("_tb", "_wandb", "_mlflow"):
            sink = getattr(self, name)
            if sink is None:
                continue
            try:
                if name == "_tb":
                    for k, v in scalars.items():
                        sink.add_scalar(k, v, step)
                elif name == "_wandb":
                    # wandb's own step must only increase; pretraining and RL each restart at 0.
                    sink.log({**scalars, "step": step})
                else:
                    sink.log_metrics(scalars, step)
            except Exception as e:  # disable the sink, keep training
                log.warning("%s sink failed (%r); disabling it, JSONL logging continues", name[1:], e)
                setattr(self, name, None)

    # --- public API --------------------------------------------------------------------------------------

    def _append(self, name: str, row: dict) -> None:
        f = self._files[name]
        f.write(json.dumps(to_jsonable(row), allow_nan=False) + "\n")
        f.flush()

    def log(self, step: int, metrics: dict[str, float | int]) -> None:
        """Append `{"step": step, **metrics}` to metrics.jsonl and forward the scalars to enabled sinks."""
        step = int(step)
        self._append(METRICS_FILE, {"step": step, **{k: v for k, v in metrics.items() if k != "step"}})
        self._forward(step, to_jsonable(metrics))

    def log_samples(self, step: int, samples: list[dict]) -> None:
        """Append one `{"step": step, **sample}` line per sample (task, prompt, completion, reward, ...)."""
        step = int(step)
        for sample in samples:
            self._append(SAMPLES_FILE, {"step": step, **{k: v for k, v in sample.items() if k != "step"}})

    def log_eval(self, step: int, results: dict) -> None:
        """Append `{"step": step, **results}` to eval.jsonl; its top-level scalars go to the sinks as eval/*."""
        step = int(step)
        self._append(EVAL_FILE, {"step": step, **{k: v for k, v in results.items() if k != "step"}})
        self._forward(step, {f"eval/{k}": v for k, v in to_jsonable(results).items()})

    def log_event(self, step: int, event: str, **details: Any) -> None:
        """Append `{"step": step, "event": event, **details}` to events.jsonl, and warn."""
        row = {"step": int(step), "event": event, **details}
        self._append(EVENTS_FILE, row)
        log.warning("step %d: %s %s", int(step), event, details)

    def close(self) -> None:
        """Close the files and finish the sinks; safe to call twice."""
        for f in self._files.values():
            f.close()
        for name, finish in (("_tb", "close"), ("_wandb", "finish")):
            sink = getattr(self, name)
            if sink is not None:
                try:
                    getattr(sink, finish)()
                except Exception as e:
                    log.warning("closing %s failed: %r", name[1:], e)
                setattr(self, name, None)
        if self._mlflow is not None:
            try:
                self._mlflow.finish()
            except Exception as e:
                log.warning("closing mlflow failed: %r", e)
        self._mlflow = None

    def __enter__(self) -> MetricsLogger:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
