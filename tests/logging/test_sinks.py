"""The real metric sinks: each writes a short run that is read back with the sink's own reader."""

from __future__ import annotations

import json
import os
import struct
import time

import pytest

from rlvr.logging.metrics import MetricsLogger, MlflowSink

STEPS = [(0, 0.25), (1, 0.5), (2, 0.75)]


def _write(run, **sinks):
    with MetricsLogger(run, config={"train": {"lr": 1e-4}, "task": {"name": "arithmetic"}}, **sinks) as logger:
        for step, reward in STEPS:
            logger.log(step, {"reward/mean": reward, "phase": "rl", "kl": float("nan")})
        logger.log_eval(2, {"accuracy": 0.875, "by_task": {"arithmetic": 0.875}})


def test_tensorboard_events_read_back(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _write(tmp_path, tensorboard=True)
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    assert [(e.step, e.value) for e in events.Scalars("reward/mean")] == STEPS
    assert [(e.step, e.value) for e in events.Scalars("eval/accuracy")] == [(2, 0.875)]
    assert "kl" not in events.Tags()["scalars"]  # non-finite values are not forwarded


def test_mlflow_store_lives_in_the_run_dir_and_reads_back(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    run = tmp_path / "run"
    _write(run, mlflow=True)
    assert not os.listdir(cwd)  # nothing in the working directory
    client = MlflowClient(tracking_uri=MlflowSink.uri(run))
    (found,) = client.search_runs([client.get_experiment_by_name("rlvr").experiment_id])
    assert found.info.run_name == "run" and found.info.status == "FINISHED"
    history = client.get_metric_history(found.info.run_id, "reward/mean")
    assert sorted((m.step, m.value) for m in history) == STEPS
    assert [m.value for m in client.get_metric_history(found.info.run_id, "eval/accuracy")] == [0.875]
    assert found.data.params["train.lr"] == "0.0001"


def _wandb_records(path):
    """The records of a `.wandb` file, parsed with W&B's own protobuf schema. wandb 0.2x dropped its Python
    reader; the framing is LevelDB's log format (7-byte header, then 32 KiB blocks of checksummed chunks)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, block, pending = 7, 32768, b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a chunk header is padding
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if kind == 0 and length == 0:
            break
        pending += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # FULL or LAST: a whole record
            record = pb.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


def test_wandb_offline_run_reads_back(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    _write(tmp_path, wandb=True)
    (path,) = (tmp_path / "wandb").glob("offline-run-*/run-*.wandb")
    for _ in range(100):  # wandb's service process may still be flushing the file after finish() returns
        records = list(_wandb_records(path))
        if any(r.WhichOneof("record_type") == "exit" for r in records):
            break
        time.sleep(0.2)
    history = [{item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in r.history.item}
               for r in records if r.WhichOneof("record_type") == "history"]
    assert [(h["step"], h["reward/mean"]) for h in history if "reward/mean" in h] == STEPS
    assert [h["eval/accuracy"] for h in history if "eval/accuracy" in h] == [0.875]
