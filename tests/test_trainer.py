"""A whole (tiny) RL run: metrics, samples, checkpoints and a final policy that loads with transformers."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM

from rlvr.checkpoint import COMPLETE, latest_checkpoint, list_checkpoints
from rlvr.config import load_config
from rlvr.logging.metrics import read_jsonl
from rlvr.models.loading import load_policy
from rlvr.tasks.base import Task
from rlvr.tasks.filtering import SolvedFilter
from rlvr.tasks.kinds import KindSampler
from rlvr.trainer import InfraErrorRate, Trainer, VerifierErrorRate
from rlvr.types import Problem, Score
from rlvr.verifiers import InfraError, build_reward

REQUIRED = [
    "reward/mean",
    "accuracy",
    "format_rate",
    "response_length/mean",
    "response_length/max",
    "entropy",
    "clip_frac",
    "time/generate",
    "time/verify",
    "time/update",
]


@pytest.fixture
def three_step_run(tmp_path, tiny_recipe):
    cfg = load_config(tiny_recipe())
    trainer = Trainer(cfg, tmp_path / "run")
    last = trainer.run(progress=False)
    yield cfg, trainer, last
    trainer.logger.close()


def test_three_steps_write_metrics_samples_and_checkpoints(three_step_run):
    cfg, trainer, last = three_step_run
    run = trainer.run_dir
    rows = read_jsonl(run / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2, 3]
    for r in rows:
        missing = [k for k in REQUIRED if k not in r]
        assert not missing, missing
        assert r["phase"] == "rl"
        assert 0 < r["response_length/mean"] <= r["response_length/max"] <= cfg.rollout.max_new_tokens
        assert r["entropy"] > 0 and 0 <= r["accuracy"] <= 1
        assert r["cursor"] == r["step"] * cfg.train.prompts_per_step
    assert last["reward/mean"] == rows[-1]["reward/mean"]

    samples = read_jsonl(run / "samples.jsonl")
    assert {s["step"] for s in samples} == {1, 2, 3}
    assert all({"prompt", "completion", "reward", "correct"} <= set(s) for s in samples)
    assert all("<eos>" not in s["completion"] for s in samples)

    # checkpoint_every 1 with the last two kept; `latest` names the newest.
    assert [p.name for p in list_checkpoints(run)] == ["step_2", "step_3"]
    assert latest_checkpoint(run).name == "step_3" and (run / "checkpoints/step_3" / COMPLETE).exists()
    assert load_config(run / "config.yaml") == cfg


def test_final_policy_loads_with_transformers(three_step_run):
    cfg, trainer, _ = three_step_run
    final = AutoModelForCausalLM.from_pretrained(trainer.run_dir / "final")
    trained = trainer.model.state_dict()
    assert all(torch.equal(v, trained[k]) for k, v in final.state_dict().items())
    ckpt = AutoModelForCausalLM.from_pretrained(trainer.run_dir / "checkpoints/step_3/model")
    assert all(torch.equal(v, trained[k]) for k, v in ckpt.state_dict().items())
    # and training did change the weights (entropy bonus and KL give every step a gradient)
    fresh, _ = load_policy(cfg.model, seed=cfg.train.seed)
    assert not torch.equal(fresh.model.layers[0].mlp.up_proj.weight, final.model.layers[0].mlp.up_proj.weight)


def test_eval_writes_a_row(three_step_run):
    _, trainer, _ = three_step_run
    result = trainer.run_eval("final")
    assert result["n"] == 4 and 0 <= result["accuracy"] <= 1
    (row,) = read_jsonl(trainer.run_dir / "eval.jsonl")
    assert row["step"] == 3 and row["phase"] == "final" and row["n"] == 4


class _Cycle(Task):
    """Three problems in a cycle; `rule(problem, text)` decides correctness."""

    name = "cycle"

    def __init__(self, rule):
        self.rule = rule
        self.problems = [Problem(f"p{i}", f"{i}+{i}=", 2 * i, "cycle", meta={"key": str(i)}) for i in range(3)]

    def train_problem(self, index):
        return self.problems[index % 3]

    def eval_problems(self, n=None):
        return self.problems[: n or 3]

    def verify(self, problem, text):
        ok = self.rule(problem, text)
        return Score(float(ok), ok, True)


def _resumes_the_same_draws(trainer, make_task) -> None:
    """A checkpoint of `trainer` resumed with a fresh `make_task()`: the task's state and its next draws agree."""
    trainer.save_checkpoint()
    trainer.logger.close()
    resumed = Trainer(trainer.cfg, trainer.run_dir, resume=True, task=make_task())
    assert resumed.task.state_dict() == trainer.task.state_dict()
    assert resumed.next_problems(3) == trainer.next_problems(3)
    resumed.logger.close()


def test_filter_solved_is_fed_by_the_trainer_logged_and_checkpointed(tmp_path, tiny_recipe):
    cfg = load_config(tiny_recipe(**{"train.prompts_per_step": 3}))

    def make_task():  # p0 is always solved, the others never
        return SolvedFilter(_Cycle(lambda p, text: p.id == "p0"), "always")

    trainer = Trainer(cfg, tmp_path / "run", task=make_task())
    first = trainer.step()
    assert first["filter/known"] == 3 and first["filter/skipped_always"] == 0
    second = trainer.step()
    assert second["filter/skipped_always"] == 2  # p0 came round twice more (stream 3..7) and was skipped
    assert second["cursor"] == 6
    _resumes_the_same_draws(trainer, make_task)


def test_kind_sampling_is_fed_by_the_trainer_logged_and_resumes_the_same_draws(tmp_path, tiny_recipe):
    cfg = load_config(tiny_recipe(**{"train.prompts_per_step": 3}))

    def make_task():  # p0 is always solved, the others never: every kind's groups are constant
        task = _Cycle(lambda p, text: p.id == "p0")
        for p in task.problems:
            p.meta["kind"] = p.id
        return KindSampler(task, cfg.rollout.num_generations, seed=1)

    trainer = Trainer(cfg, tmp_path / "run", task=make_task())
    assert trainer.step()["kinds/seen"] == 3
    second = trainer.step()
    assert second["kinds/above_floor"] == 0 and second["kinds/passed_over_frac"] > 0.5
    _resumes_the_same_draws(trainer, make_task)


def test_dynamic_sampling_drops_constant_groups_and_fills_the_batch(tmp_path, tiny_recipe):
    cfg = load_config(
        tiny_recipe(**{"train.prompts_per_step": 2, "rollout.num_generations": 4}),
        ["algorithm.dynamic_sampling=true", "algorithm.max_sampling_draws=8"],
    )
    # p1 is never solved (a constant group); p0 and p2 pass on half the texts, so their groups vary.
    rule = lambda p, text: p.id != "p1" and sum(map(ord, text)) % 2 == 0  # noqa: E731
    trainer = Trainer(cfg, tmp_path / "run", task=_Cycle(rule))
    collect, collected = trainer.collect, []
    trainer.collect = lambda: collected.append(collect()) or collected[-1]
    metrics = trainer.step()
    sampled = collected[0].sampled
    G = cfg.rollout.num_generations
    assert metrics["dynamic/dropped_groups"] >= 1 and metrics["dynamic/draws"] >= 2
    assert metrics["groups/all_equal_frac"] == 0.0  # every kept group has a reward spread
    assert len(sampled) == G * (trainer.cursor)  # every drawn group was sampled, counted once
    assert metrics["sampled_tokens"] == sum(len(r.completion_ids) for r in sampled)
    trainer.logger.close()


class _FlakySandbox(_Cycle):
    """Every sample of problem p1 hits a sandbox fault (`InfraError`); the rest score right or wrong."""

    def verify(self, problem, text):
        if problem.id == "p1":
            raise InfraError("injected: the sandbox could not start the run")
        return Score(float(problem.id == "p0"), problem.id == "p0", True)


def _recording_updates(trainer) -> list:
    """The batches `trainer`'s learner will be given, recorded as they go in."""
    seen = []
    update = trainer.learner.update
    trainer.learner.update = lambda batch: (seen.append(batch), update(batch))[1]
    return seen


def test_infra_faults_leave_their_groups_out_and_are_counted_never_scored_zero(tmp_path, tiny_recipe):
    cfg = load_config(tiny_recipe(**{"train.prompts_per_step": 3, "train.max_infra_error_rate": 0.5}))
    trainer = Trainer(cfg, tmp_path / "run", task=_FlakySandbox(None))
    seen = _recording_updates(trainer)
    m = trainer.step()
    G = cfg.rollout.num_generations
    assert m["verify/infra_errors"] == G and m["verify/infra_dropped_groups"] == 1
    assert m["verify/infra_errors_total"] == G
    assert len(seen[0].advantages) == 2 * G  # p1's group is not in the batch: no reward of 0 reached the learner
    events = read_jsonl(tmp_path / "run/events.jsonl")
    assert events[-1]["event"] == "verify_infra_errors" and events[-1]["samples"] == G
    assert trainer.counters()["infra_errors"] == G  # kept in checkpoints


def test_a_run_stops_when_the_sandbox_fails_too_often(tmp_path, tiny_recipe):
    cfg = load_config(tiny_recipe(**{"train.prompts_per_step": 3, "train.max_infra_error_rate": 0.2}))
    trainer = Trainer(cfg, tmp_path / "run", task=_FlakySandbox(None))
    with pytest.raises(InfraErrorRate, match="max_infra_error_rate"):
        trainer.step()


# --- the verifier's own fault: no reward, counted apart from the sandbox's -------------------------------
HANG = """
import time
from rlvr.types import Score

def slow_on_p1(problem, text):
    if problem.id == "p1":
        time.sleep(2.0)
    return Score(float(problem.id == "p0"), problem.id == "p0", True)
"""


class _FaultyVerifier(_Cycle):
    """The verifier itself fails on every sample of problem p1 (raises, or returns garbage); the rest score."""

    def __init__(self, fault, on=("p1",)):
        super().__init__(None)
        self.fault, self.on = fault, on

    def verify(self, problem, text):
        if problem.id in self.on:
            if self.fault == "raise":
                raise KeyError("answer")
            return "yes"  # garbage: not a Score
        return Score(float(problem.id == "p0"), problem.id == "p0", True)


class _ComposedTask(_Cycle):
    """The reward is composed (`build_reward`); its user term runs past timeout_s on problem p1."""

    def __init__(self, verify):
        super().__init__(None)
        self.verify = verify


def _faulty(fault, tmp_path, monkeypatch):
    if fault != "timeout":
        return _FaultyVerifier(fault), "_FaultyVerifier.verify"
    (tmp_path / "slow_rewards.py").write_text(HANG)
    monkeypatch.syspath_prepend(str(tmp_path))
    term = "slow_rewards:slow_on_p1"
    return _ComposedTask(build_reward([{"name": term, "timeout_s": 0.2}, {"name": "format", "weight": 0.1}])), term


@pytest.mark.parametrize("fault,message", [("raise", "raised KeyError"), ("garbage", "returned str, not Score"),
                                           ("timeout", "timed out after 0.2s")])
def test_verifier_faults_leave_their_groups_out_and_are_counted_never_scored_zero(tmp_path, tiny_recipe, monkeypatch,
                                                                                 fault, message):
    cfg = load_config(tiny_recipe(**{"train.prompts_per_step": 3, "train.max_verifier_error_rate": 0.5}))
    task, verifier = _faulty(fault, tmp_path, monkeypatch)
    trainer = Trainer(cfg, tmp_path / "run", task=task)
    seen = _recording_updates(trainer)
    m = trainer.step()
    G = cfg.rollout.num_generations
    assert m["verify/verifier_errors"] == G and m["verify/verifier_dropped_groups"] == 1
    assert m["verify/verifier_errors_total"] == G and m["verify/infra_errors"] == 0  # told apart from the sandbox
    assert len(seen[0].advantages) == 2 * G  # p1's group is not in the batch: no reward of 0 reached the learner
    event = read_jsonl(tmp_path / "run/events.jsonl")[-1]
    assert event["event"] == "verify_verifier_errors" and event["samples"] == G
    assert event["verifier"] == verifier and event["problem"] == "p1" and message in event["error"]
    assert trainer.counters()["verifier_errors"] == G  # kept in checkpoints
    trainer.logger.close()
    trainer.load_counters({"verifier_errors": 5})
    assert trainer.verifier_errors == 5


def test_a_verifier_that_fails_on_every_sample_stops_the_run_naming_it(tmp_path, tiny_recipe):
    # a limit of its own: even a run that tolerates any sandbox fault stops on a broken verifier
    cfg = load_config(tiny_recipe(**{"train.max_infra_error_rate": 1.0}))
    trainer = Trainer(cfg, tmp_path / "run", task=_FaultyVerifier("raise", on=("p0", "p1", "p2")))
    trainer.learner.update = lambda batch: pytest.fail("trained on zeros")
    with pytest.raises(VerifierErrorRate, match=r"max_verifier_error_rate=0\.1.*_FaultyVerifier\.verify.*"
                                                r"failed on problem p0: raised KeyError: 'answer'"):
        trainer.step()
    trainer.logger.close()


def test_samples_that_did_not_come_from_the_policy_are_reported(tmp_path, tiny_recipe):
    """An engine whose log-probs are not the learner's on the same tokens (here shifted by 1 nat, as a corrupted
    prefill or a weight sync that did not happen would give) writes an `engine_learner_mismatch` event at every
    step; the same run with the engine intact writes none."""
    from rlvr.faults import ENGINE_GAP_LIMIT

    cfg = load_config(tiny_recipe(**{"train.steps": 2, "train.skip_zero_advantage": False}))
    for shift, run in ((0.0, "clean"), (-1.0, "shifted")):
        trainer = Trainer(cfg, tmp_path / run)
        generate = trainer.engine.generate

        def shifted(*args, _generate=generate, _shift=shift, **kwargs):
            groups = _generate(*args, **kwargs)
            for group in groups:
                for c in group:
                    c.logprobs = [x + _shift for x in c.logprobs]
            return groups

        trainer.engine.generate = shifted
        rows = [trainer.step() for _ in range(2)]
        trainer.logger.close()
        events = [e for e in (read_jsonl(tmp_path / run / "events.jsonl") if (tmp_path / run / "events.jsonl").exists()
                              else []) if e["event"] == "engine_learner_mismatch"]
        if shift == 0.0:
            assert all(r["offpolicy/kl"] < 1e-4 for r in rows) and not events
        else:
            assert all(r["offpolicy/kl"] > ENGINE_GAP_LIMIT for r in rows)
            assert [e["step"] for e in events] == [1, 2] and events[0]["kl"] > ENGINE_GAP_LIMIT


def test_rollout_stop_ends_training_samples_and_eval_stop_overrides_it_for_evaluation(tmp_path, tiny_recipe):
    """`rollout.stop` reaches the engine from the config: every training completion that holds a stop string
    ends at its first one; evaluation samples with the same strings unless `eval.stop` says otherwise."""
    cfg = load_config(tiny_recipe(**{"train.steps": 1, "rollout.stop": ["1", "2"], "rollout.max_new_tokens": 16}))
    trainer = Trainer(cfg, tmp_path / "run")
    seen, generate = [], trainer.engine.generate

    def record(prompts, sampling, *args, **kwargs):
        groups = generate(prompts, sampling, *args, **kwargs)
        seen.append((sampling.stop, [c for g in groups for c in g]))
        return groups

    trainer.engine.generate = record
    trainer.step()
    trainer.run_eval("rl")
    trainer.cfg.eval.stop = []
    trainer.run_eval("rl")
    trainer.logger.close()
    assert [s for s, _ in seen] == [("1", "2"), ("1", "2"), ()]
    texts = [(trainer.tokenizer.decode(c.token_ids), c.finish_reason) for c in seen[0][1]]
    for text, reason in texts:  # a stop string, where there is one, is the completion's last character
        first = min((text.find(s) + 1 for s in "12" if s in text), default=None)
        assert first in (None, len(text)) and (first is None or reason == "stop"), text
    assert sum(t.endswith(("1", "2")) for t, _ in texts) >= 1
