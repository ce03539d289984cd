import json
import logging
import math
import sys
import types

import pytest
import torch

from rlvr.logging.metrics import MetricsLogger, read_jsonl


def _steps(rows):
    return [(r.get("phase"), r["step"]) for r in rows]


def test_jsonl_round_trip(tmp_path):
    run = tmp_path / "run"
    sample = {
        "task": "countdown",
        "prompt": "2+2?",
        "completion": "<answer>4</answer>",
        "reward": 1.0,
        "correct": True,
        "formatted": True,
        "details": {"parsed": "4"},
    }
    with MetricsLogger(run) as logger:
        for step in range(3):
            logger.log(step, {"reward/mean": 0.5 * step, "accuracy": step / 4, "response_length/max": 7})
        logger.log_samples(2, [sample, {**sample, "reward": 0.0, "correct": False}])
        logger.log_eval(2, {"accuracy": 0.5, "pass@4": 0.75, "by_task": {"countdown": 0.5}, "phase": "rl"})
    metrics = read_jsonl(run / "metrics.jsonl")
    assert metrics == [
        {"step": s, "reward/mean": 0.5 * s, "accuracy": s / 4, "response_length/max": 7} for s in range(3)
    ]
    samples = read_jsonl(run / "samples.jsonl")
    assert samples[0] == {"step": 2, **sample}
    assert [s["reward"] for s in samples] == [1.0, 0.0]
    assert read_jsonl(run / "eval.jsonl") == [
        {"step": 2, "accuracy": 0.5, "pass@4": 0.75, "by_task": {"countdown": 0.5}, "phase": "rl"}
    ]


def test_non_finite_becomes_null_and_tensors_become_numbers(tmp_path):
    with MetricsLogger(tmp_path) as logger:
        logger.log(0, {"a": math.nan, "b": math.inf, "c": torch.tensor(0.25), "d": 3})
        logger.log_samples(
            0, [{"reward": float("nan"), "details": {"x": -math.inf, "ids": torch.tensor([1, 2])}}]
        )
    line = (tmp_path / "metrics.jsonl").read_text().strip()
    assert "NaN" not in line and "Infinity" not in line
    assert json.loads(line) == {"step": 0, "a": None, "b": None, "c": 0.25, "d": 3}
    assert read_jsonl(tmp_path / "samples.jsonl") == [
        {"step": 0, "reward": None, "details": {"x": None, "ids": [1, 2]}}
    ]


def _write_history(run, steps):
    with MetricsLogger(run) as logger:
        for step in range(20):  # pretraining counts its own steps
            logger.log(step, {"pretrain/loss": 3.0 - step / 10, "phase": "pretrain"})
        for step in range(steps):
            logger.log(step, {"reward/mean": step / 10, "phase": "rl"})
            logger.log_samples(step, [{"completion": f"c{step}"}])
            if step % 2 == 0:
                logger.log_eval(step, {"accuracy": step / 10})


def test_resume_drops_rows_after_the_resume_step(tmp_path):
    _write_history(tmp_path, steps=8)
    with MetricsLogger(tmp_path, resume_step=4) as logger:
        logger.log(5, {"reward/mean": 0.55, "phase": "rl"})
        logger.log_samples(5, [{"completion": "again"}])
    metrics = read_jsonl(tmp_path / "metrics.jsonl")
    assert _steps(metrics) == [("pretrain", s) for s in range(20)] + [("rl", s) for s in range(6)]
    assert metrics[-1]["reward/mean"] == 0.55
    samples = read_jsonl(tmp_path / "samples.jsonl")
    assert [s["completion"] for s in samples] == ["c0", "c1", "c2", "c3", "c4", "again"]
    assert [e["step"] for e in read_jsonl(tmp_path / "eval.jsonl")] == [0, 2, 4]
    assert not list(tmp_path.glob("*.tmp"))


def test_fresh_run_truncates_old_files(tmp_path):
    _write_history(tmp_path, steps=3)
    with MetricsLogger(tmp_path) as logger:
        logger.log(0, {"reward/mean": 1.0})
    assert read_jsonl(tmp_path / "metrics.jsonl") == [{"step": 0, "reward/mean": 1.0}]
    assert read_jsonl(tmp_path / "samples.jsonl") == []
    assert read_jsonl(tmp_path / "eval.jsonl") == []


def test_truncated_last_line_is_skipped_and_resume_repairs_it(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 0, "x": 1}\n{"step": 1, "x": 2}\n{"step": 2, "x"')
    assert read_jsonl(path) == [{"step": 0, "x": 1}, {"step": 1, "x": 2}]
    with MetricsLogger(tmp_path, resume_step=1) as logger:
        logger.log(2, {"x": 3})
    assert read_jsonl(path) == [{"step": 0, "x": 1}, {"step": 1, "x": 2}, {"step": 2, "x": 3}]


def test_damaged_middle_line_is_an_error_unless_lenient(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 0}\n{"step": 1,\n[1, 2]\n{"step": 3}\n')
    with pytest.raises(ValueError, match=r"metrics.jsonl, line 2"):
        read_jsonl(path)
    assert read_jsonl(path, strict=False) == [{"step": 0}, {"step": 3}]
    assert read_jsonl(tmp_path / "missing.jsonl") == []


def test_missing_optional_sinks_warn_once_and_jsonl_continues(tmp_path, monkeypatch, caplog):
    # None in sys.modules makes `import x` raise ImportError, whatever is installed.
    for name in ("wandb", "mlflow", "torch.utils.tensorboard"):
        monkeypatch.setitem(sys.modules, name, None)
    with caplog.at_level(logging.WARNING, logger="rlvr.logging.metrics"):
        with MetricsLogger(tmp_path, tensorboard=True, wandb=True, mlflow=True, config={"a": 1}) as logger:
            for step in range(3):
                logger.log(step, {"reward/mean": 0.1})
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 3
    assert all("not installed" in w for w in warnings)
    assert len(read_jsonl(tmp_path / "metrics.jsonl")) == 3


def test_enabled_sink_gets_finite_scalars(tmp_path, monkeypatch):
    calls = {"init": [], "log": [], "finish": 0}

    class FakeRun:
        def log(self, data):
            calls["log"].append(data)

        def finish(self):
            calls["finish"] += 1

    def init(**kwargs):
        calls["init"].append(kwargs)
        return FakeRun()

    monkeypatch.setitem(sys.modules, "wandb", types.SimpleNamespace(init=init))
    with MetricsLogger(tmp_path, wandb=True, config={"train": {"lr": 1e-5}}) as logger:
        logger.log(3, {"reward/mean": 0.5, "kl": math.nan, "phase": "rl"})
        logger.log_eval(3, {"accuracy": 0.25, "by_task": {"a": 1.0}})
    assert calls["init"][0]["config"] == {"train": {"lr": 1e-5}}
    assert calls["log"] == [{"reward/mean": 0.5, "step": 3}, {"eval/accuracy": 0.25, "step": 3}]
    assert calls["finish"] == 1
