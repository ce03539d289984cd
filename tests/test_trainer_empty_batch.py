"""A step whose every group is dropped (no sample could be scored) with `train.max_infra_error_rate: 1.0`:
the step is logged with no update, the run goes on, and a resume from its checkpoint is exact."""

from __future__ import annotations

import torch

from rlvr.config import load_config
from rlvr.logging.metrics import read_jsonl
from rlvr.tasks.base import Task
from rlvr.trainer import Trainer
from rlvr.types import Problem, Score
from rlvr.verifiers import InfraError


class _LostSecondStep(Task):
    """Problem i is `i+i=`; the sandbox fails on every sample of problems 2 and 3 (the whole second step of
    two prompts), and scores the rest by the parity of the text."""

    name = "lost"

    def train_problem(self, index):
        return Problem(f"p{index}", f"{index}+{index}=", 2 * index, "lost", meta={"key": str(index)})

    def eval_problems(self, n=None):
        return [self.train_problem(100 + i) for i in range(n or 2)]

    def verify(self, problem, text):
        if problem.id in ("p2", "p3"):
            raise InfraError("injected: the sandbox could not start the run")
        ok = sum(map(ord, text)) % 2 == 0
        return Score(float(ok), ok, True)


def _weights(trainer):
    return {k: v.clone() for k, v in trainer.model.state_dict().items()}


def test_a_step_with_every_group_dropped_logs_no_update_and_resumes_exactly(tmp_path, tiny_recipe):
    cfg = load_config(tiny_recipe(**{"train.max_infra_error_rate": 1.0, "train.steps": 3}))
    G = cfg.rollout.num_generations
    trainer = Trainer(cfg, tmp_path / "run", task=_LostSecondStep())
    trainer.step()
    after_first = _weights(trainer)
    m = trainer.step()  # every sample of p2 and p3 is unscored: nothing to train on
    assert trainer.step_count == 2 and m["update/skipped"] == 1 and m["update/skipped_total"] == 1
    assert m["verify/infra_errors"] == 2 * G and m["verify/infra_dropped_groups"] == 2 and m["cursor"] == 4
    assert "reward/mean" not in m  # no reward was given: nothing is averaged over an empty batch
    assert all(torch.equal(after_first[k], v) for k, v in trainer.model.state_dict().items())
    trainer.save_checkpoint()
    last = trainer.step()  # the run goes on
    assert last["update/skipped"] == 0 and last["update/skipped_total"] == 1 and "reward/mean" in last
    final = _weights(trainer)
    trainer.logger.close()
    rows = [r for r in read_jsonl(tmp_path / "run/metrics.jsonl") if r.get("phase") == "rl"]
    assert [r["step"] for r in rows] == [1, 2, 3] and rows[1]["update/skipped"] == 1

    resumed = Trainer(cfg, tmp_path / "run", resume=True, task=_LostSecondStep())
    assert resumed.step_count == 2 and resumed.counters()["skipped_steps"] == 1
    again = resumed.step()
    resumed.logger.close()
    assert all(torch.equal(final[k], v) for k, v in resumed.model.state_dict().items())
    same = ("reward/mean", "loss", "cursor", "sampled_tokens", "update/skipped_total", "verify/infra_errors_total")
    assert {k: again.get(k) for k in same} == {k: last.get(k) for k in same}
