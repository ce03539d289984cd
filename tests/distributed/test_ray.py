"""The loop on a local Ray cluster (2 CPUs, 2 rollout workers, 2 gloo learners) against the single-process
reference: same weights and metrics, a killed rollout worker, a killed learner and its resume, async
staleness (also of tool episodes).

In one file so that a parallel run (pytest-xdist, `--dist loadfile`) holds one local cluster at a time."""

from __future__ import annotations

import copy
import time

import pytest
import torch

ray = pytest.importorskip("ray")

from rlvr.checkpoint import COMPLETE, latest_checkpoint  # noqa: E402
from rlvr.config import load_config  # noqa: E402
from rlvr.distributed import LearnerLost  # noqa: E402
from rlvr.distributed.trainer import RayTrainer  # noqa: E402
from rlvr.logging.metrics import read_jsonl  # noqa: E402
from rlvr.trainer import Trainer  # noqa: E402

STEPS, B, G = 4, 4, 4
# Overlong shaping gives the groups of an untrained model reward differences, so the policy gradient is
# not zero; KL and the entropy bonus are on too, so every part of the loss is compared.
RUN = {"train.steps": STEPS, "train.prompts_per_step": B, "train.checkpoint_every": 2,
       "rollout.num_generations": G, "algorithm.overlong_buffer": 8, "algorithm.overlong_penalty": 1.0}
RAY = {"backend": "ray", "rollout_workers": 2, "learners": 2, "worker_cpus": 0.25, "learner_cpus": 0.25}
COMPARED = ["reward/mean", "reward/std", "accuracy", "response_length/mean", "sampled_tokens", "cursor"]
CLOSE = ["loss", "kl", "entropy", "grad_norm", "clip_frac", "ratio_mean"]


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _config(tiny_recipe, **distributed):
    sets = [f"distributed.{k}={v}" for k, v in {**RAY, **distributed}.items()]
    return load_config(tiny_recipe(**RUN), sets)


def _reference(cfg, tmp_path):
    """The single-process run on the same config: its weights and per-step metrics."""
    trainer = Trainer(cfg, tmp_path / "single")
    trainer.run(progress=False)
    trainer.logger.close()
    return trainer.model.state_dict(), read_jsonl(tmp_path / "single" / "metrics.jsonl")


def _kill_and_wait(actor, deadline_s=60.0):
    """Kill an actor and return once a call to it fails, so the test cannot race the kill: `ray.kill` is
    asynchronous, and a call made just after it may still be served."""
    ray.kill(actor, no_restart=True)
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            ray.get(actor.pid.remote(), timeout=5)
        except ray.exceptions.RayActorError:
            return
        except ray.exceptions.GetTimeoutError:
            pass
        time.sleep(0.1)
    pytest.fail(f"the actor still answered {deadline_s:.0f} s after ray.kill")


def _before_submit(trainer, step: int, action) -> None:
    """Run `action` once, as step `step` sends its prompts out."""
    submit, done = trainer.engine.submit, []

    def act_then_submit(*args, **kwargs):
        if trainer.step_count == step - 1 and not done:
            done.append(action())
        return submit(*args, **kwargs)

    trainer.engine.submit = act_then_submit


def _local_and_total_elements(learner):
    """(elements this learner holds, elements of the whole model) of its policy."""
    from torch.distributed.tensor import DTensor

    params = list(learner.model.parameters())
    local = sum((p.to_local() if isinstance(p, DTensor) else p).numel() for p in params)
    return local, sum(p.numel() for p in params)


def _assert_same(state, ref_state, rows, ref_rows, steps=STEPS):
    for k, v in ref_state.items():
        torch.testing.assert_close(state[k], v, rtol=1e-4, atol=1e-5, msg=k)
    assert [r["step"] for r in rows] == [r["step"] for r in ref_rows] == list(range(1, steps + 1))
    for r, q in zip(rows, ref_rows):
        assert {k: r[k] for k in COMPARED} == {k: q[k] for k in COMPARED}
        logged = [k for k in CLOSE if k in q]  # kl only with a KL term
        assert logged == [k for k in CLOSE if k in r], r["step"]
        for k in logged:
            assert r[k] == pytest.approx(q[k], rel=1e-4, abs=1e-6), (r["step"], k)


@pytest.mark.parametrize("sharding", ["ddp", "fsdp", "ddp+lora", "ddp+skip", "fsdp+skip"])
def test_synchronous_ray_run_matches_the_single_process_run(cluster, tiny_recipe, tmp_path, sharding):
    cfg = _config(tiny_recipe, sharding=sharding.split("+")[0])
    if sharding.endswith("lora"):  # the adapter alone trains, and the KL reference is the adapter switched off
        cfg.model.lora_r, cfg.model.lora_alpha, cfg.model.lora_dropout = 4, 8, 0.0
    if sharding.endswith("skip"):  # no KL or entropy term: the learners leave zero-advantage rows out
        cfg.algorithm.kl_coef, cfg.algorithm.entropy_coef, cfg.algorithm.overlong_buffer = 0.0, 0.0, 2
    ref_state, ref_rows = _reference(cfg, tmp_path)
    # something was learned: the gradient is not zero (the on-policy loss itself is ~0 where the advantages of
    # each group sum to zero, so its value says nothing)
    assert any(r["grad_norm"] > 1e-2 for r in ref_rows)
    if sharding.endswith("skip"):  # rows left out (12 of 16 at two steps: a learner may get none of its own)
        assert sum(r["update/skipped_rows"] for r in ref_rows) > 0
    trainer = RayTrainer(cfg, tmp_path / "ray")
    pids = ray.get([w.pid.remote() for w in trainer.engine.workers] + [a.pid.remote() for a in trainer.learner.actors])
    assert len(set(pids)) == 4  # two rollout workers and two learners, each its own process
    held = ray.get([a.__ray_call__.remote(_local_and_total_elements) for a in trainer.learner.actors])
    total = held[0][1]
    if sharding.endswith("lora"):
        assert trainer.model.peft_config  # the driver's copy, workers and learners all carry the adapter
    if sharding.startswith("fsdp"):  # each learner holds its half of every weight
        assert [h[1] for h in held] == [total, total] and sum(h[0] for h in held) == total
        assert all(h[0] < 0.6 * total for h in held)
    else:
        assert held == [(total, total)] * 2
    trainer.run(progress=False)
    trainer.logger.close()
    rows = read_jsonl(tmp_path / "ray" / "metrics.jsonl")
    _assert_same(trainer.model.state_dict(), ref_state, rows, ref_rows)
    assert all(r["async/staleness_max"] == 0 for r in rows)
    # the workers hold exactly the learners' values: nothing to correct, as in one process
    assert "off-policy correction off" in trainer.header()
    assert all(r["offpolicy/active"] == 0.0 == q["offpolicy/active"] for r, q in zip(rows, ref_rows))
    assert rows[-1]["verify/scored"] == STEPS * B * G
    trainer.close()


def test_screening_on_rollout_workers_matches_the_single_process_run(cluster, tiny_recipe, tmp_path, monkeypatch):
    """Prompt screening on Ray: the workers sample and score each round's screens and the top-ups (the driver
    scores nothing), and the run equals the single-process one (same candidates, screens, kept groups and
    weights)."""
    from tests.test_screening import _ParityArithmetic

    cfg = _config(tiny_recipe, sharding="ddp")
    cfg.algorithm.screening, cfg.algorithm.screen_samples, cfg.algorithm.screen_rounds = True, 2, 3
    trainer = Trainer(cfg, tmp_path / "single", task=_ParityArithmetic())
    trainer.run(progress=False)
    trainer.logger.close()
    ref_state, ref_rows = trainer.model.state_dict(), read_jsonl(tmp_path / "single" / "metrics.jsonl")
    assert all(r["screen/candidates"] > r["screen/passed"] > 0 for r in ref_rows)  # screens failed and passed
    on_driver, score = [], Trainer.score
    monkeypatch.setattr(Trainer, "score", lambda self, rollouts: (on_driver.extend(rollouts), score(self, rollouts)))
    trainer = RayTrainer(cfg, tmp_path / "ray", task=_ParityArithmetic())
    trainer.run(progress=False)
    trainer.logger.close()
    assert on_driver == []
    rows = read_jsonl(tmp_path / "ray" / "metrics.jsonl")
    _assert_same(trainer.model.state_dict(), ref_state, rows, ref_rows)
    screen = [k for k in ref_rows[0] if k.startswith("screen/")]
    assert [{k: r[k] for k in screen} for r in rows] == [{k: q[k] for k in screen} for q in ref_rows]
    trainer.close()


# The calculator as a user tool that runs in the sandbox only (it raises anywhere else): on Ray, the
# workers' episodes send their calls to the worker node's sandbox pool.
SANDBOXED_CALCULATOR = {"name": "calculator", "function": "tests.environments.userlib:sandboxed_product",
                        "parameters": {"type": "object", "properties": {"expression": {"type": "string"}},
                                       "required": ["expression"]}}


@pytest.mark.parametrize("verifiers", [0, 1])
def test_multi_turn_episodes_on_rollout_workers_match_the_single_process_run(cluster, tool_model, tmp_path,
                                                                             verifiers):
    """Tool episodes of a tiny model that learned to call the calculator, on two rollout workers (each
    scoring its own episodes, or a verifier actor scoring them), against the single-process run: the same
    samples, episodes, tool calls and rewards, and the same weights within float tolerance."""
    from rlvr.rollout.episodes import EpisodeEngine
    from tests.conftest import TINY_RUN, tool_run

    steps = 2
    data = {**copy.deepcopy(TINY_RUN), **tool_run(tool_model, [SANDBOXED_CALCULATOR])}
    data["train"].update({"steps": steps, "prompts_per_step": B, "checkpoint_every": 0})
    data["distributed"] = {**RAY, "verifiers": verifiers, "verifier_cpus": 0.25}
    cfg = load_config(base=data)
    ref_state, ref_rows = _reference(cfg, tmp_path)
    trainer = RayTrainer(cfg, tmp_path / "ray")
    kinds = ray.get([w.__ray_call__.remote(lambda worker: type(worker.engine).__name__)
                     for w in trainer.engine.workers])
    assert kinds == [EpisodeEngine.__name__] * 2  # the episodes run on the workers
    trainer.run(progress=False)
    trainer.logger.close()
    fed = ray.get([w.__ray_call__.remote(lambda worker: worker.engine.stats["fed_tokens"])
                   for w in trainer.engine.workers])
    assert min(fed) > 0  # each worker decoded its share
    rows = read_jsonl(tmp_path / "ray" / "metrics.jsonl")
    _assert_same(trainer.model.state_dict(), ref_state, rows, ref_rows, steps)
    # the workers hold exactly the learners' values, as the one-process episode engine samples the learner's
    # own module: neither corrects
    assert [r["offpolicy/active"] for r in rows] == [q["offpolicy/active"] for q in ref_rows] == [0.0] * steps
    for r, q in zip(rows, ref_rows):  # turns, calls by tool, errors by kind, tokens by role
        episodes = {k: v for k, v in q.items() if k.startswith("episode/")}
        assert "episode/tool_calls" in episodes
        assert {k: v for k, v in r.items() if k.startswith("episode/")} == episodes
    # Calls that answered ran in the sandbox (the tool raises anywhere else), on the workers' node.
    answered = [r["episode/tool_calls"] * B * G - sum(v for k, v in r.items() if k.startswith("episode/tool_errors/"))
                for r in rows]
    assert sum(answered) > 0 and sum(r["episode/observation_tokens"] for r in rows) > 0
    samples = read_jsonl(tmp_path / "ray" / "samples.jsonl")
    assert any(p["role"] == "observation" for s in samples for p in s["transcript"])
    assert rows[-1]["verify/scored"] == steps * B * G
    trainer.close()


def test_a_killed_rollout_worker_loses_no_prompt_and_scores_none_twice(cluster, tiny_recipe, tmp_path):
    cfg = _config(tiny_recipe)
    ref_state, ref_rows = _reference(cfg, tmp_path)
    trainer = RayTrainer(cfg, tmp_path / "ray")
    observed = []
    task_observe = trainer.task.observe
    trainer.task.observe = lambda problem, correct: (observed.append(problem.id), task_observe(problem, correct))
    pool, killed = trainer.engine, []
    # Step 2 has begun: worker 0 dies, then its prompts go out to it.
    _before_submit(trainer, 2, lambda: (killed.append(pool.workers[0]), _kill_and_wait(pool.workers[0])))
    trainer.run(progress=False)
    trainer.logger.close()
    rows = read_jsonl(tmp_path / "ray" / "metrics.jsonl")
    events = read_jsonl(tmp_path / "ray" / "events.jsonl")
    assert [(e["step"], e["event"], e["worker"], e["resent_prompts"]) for e in events] == [
        (1, "rollout_worker_restarted", 0, B // 2)]
    assert pool.workers[0] is not killed[0] and rows[-1]["faults/resent_prompts"] == B // 2
    # Every problem of the run was scored exactly once, in order; nothing lost, nothing twice.
    assert observed == [trainer.task.train_problem(i).id for i in range(STEPS * B)]
    assert rows[-1]["verify/scored"] == STEPS * B * G
    # The re-sent prompts were sampled with the same seeds and weights: the run is the uninterrupted one.
    _assert_same(trainer.model.state_dict(), ref_state, rows, ref_rows)
    trainer.close()


def test_verifier_actors_score_every_completion_once_and_a_killed_one_is_replaced(cluster, tiny_recipe,
                                                                                   tmp_path):
    """Two verifier actors score what two rollout workers sample; verifier 0 dies before step 2."""
    cfg = _config(tiny_recipe, verifiers=2, verifier_cpus=0.25)
    ref_state, ref_rows = _reference(cfg, tmp_path)
    trainer = RayTrainer(cfg, tmp_path / "ray")
    pool, before = trainer.engine, []
    driver_scored, score = [], trainer.score

    def record_then_score(rollouts):  # what reaches the driver unscored would be scored there
        driver_scored.extend(r for r in rollouts if r.score is None)
        score(rollouts)

    trainer.score = record_then_score
    assert len(pool.verifiers) == 2

    def kill_verifier_0():
        before.append(ray.get(pool.verifiers[0].count.remote()))  # what it scored in step 1
        _kill_and_wait(pool.verifiers[0])

    _before_submit(trainer, 2, kill_verifier_0)
    trainer.run(progress=False)
    trainer.logger.close()
    rows = read_jsonl(tmp_path / "ray" / "metrics.jsonl")
    events = read_jsonl(tmp_path / "ray" / "events.jsonl")
    assert [(e["step"], e["event"], e["verifier"]) for e in events] == [(1, "verifier_restarted", 0)]
    # Verifier 0 held one group of each worker's two: B // 2 groups were scored again by its replacement.
    assert rows[-1]["faults/verifier_restarts"] == 1 and rows[-1]["faults/rescored_prompts"] == B // 2
    assert rows[-1]["faults/rollout_restarts"] == 0
    # Every completion was scored by a verifier actor exactly once: none by the workers or the driver.
    counts = ray.get([v.count.remote() for v in pool.verifiers])
    assert before[0] > 0 and min(counts) > 0 and before[0] + sum(counts) == STEPS * B * G
    assert driver_scored == [] and rows[-1]["verify/scored"] == STEPS * B * G
    _assert_same(trainer.model.state_dict(), ref_state, rows, ref_rows)
    trainer.close()


def test_async_never_trains_past_max_staleness_and_resumes_exactly(cluster, tiny_recipe, tmp_path):
    """Two steps generated ahead with a bound of one and a checkpoint at step 3: step 1 prefetches steps 2
    and 3 (version 0), so step 3's groups are two versions old and must be dropped; nothing is prefetched
    past the checkpoint, so a run stopped at step 4 and resumed from step 3 repeats the uninterrupted run."""
    cfg = _config(tiny_recipe, async_rollouts=True, max_staleness=1, prefetch_steps=2)
    cfg.train.checkpoint_every = 3
    trainer = RayTrainer(cfg, tmp_path / "ray")
    # stale groups: the learners run the decoupled objective against the workers' behaviour log-probs
    assert trainer.learner.correct_offpolicy and "off-policy correction on" in trainer.header()
    trained = []
    collect = trainer.collect

    def record():
        collected = collect()
        trained.append((trainer.step_count, [r.policy_version for r in collected.kept]))
        return collected

    trainer.collect = record
    trainer.run(progress=False)
    trainer.logger.close()
    rows = read_jsonl(tmp_path / "ray" / "metrics.jsonl")
    assert len(trained) == STEPS
    staleness = [step - v for step, versions in trained for v in versions]
    assert max(staleness) <= 1 and 1 in staleness  # it did overlap, and never past the bound
    assert rows[-1]["async/stale_dropped"] == B  # all of step 3's prefetched groups
    assert all(r["async/staleness_max"] <= 1 for r in rows)
    assert all(r["offpolicy/active"] == 1.0 for r in rows)
    stale = [r for r in rows if r["async/staleness_max"] == 1]
    assert stale and all(r["offpolicy/kl"] > 0 for r in stale)  # what it corrected: a version's gap
    assert rows[-1]["verify/scored"] == STEPS * B * G  # a dropped group is sampled again before scoring
    state = trainer.model.state_dict()
    trainer.close()

    stopped = RayTrainer(cfg, tmp_path / "stopped")
    collect_stopped = stopped.collect

    def stop_at_step_4():
        if stopped.step_count == 3:
            raise KeyboardInterrupt
        return collect_stopped()

    stopped.collect = stop_at_step_4
    with pytest.raises(KeyboardInterrupt):
        stopped.run(progress=False)
    stopped.logger.close()
    stopped.close()
    resumed = RayTrainer(cfg, tmp_path / "stopped", resume=True)
    assert resumed.step_count == 3 and resumed.stale_dropped == B  # the counters went on from the checkpoint
    resumed.run(progress=False)
    resumed.logger.close()
    again = read_jsonl(tmp_path / "stopped" / "metrics.jsonl")
    _assert_same(resumed.model.state_dict(), state, again, rows)
    for key in ("async/staleness_mean", "async/staleness_max", "async/stale_dropped", "verify/scored"):
        assert [r[key] for r in again] == [r[key] for r in rows], key
    resumed.close()


def test_async_tool_episodes_train_one_version_behind(cluster, tool_model, tmp_path):
    """Asynchronous runs on a task with tools: the workers run tool episodes of the next step while the
    learners update, and those episodes train with their observations masked."""
    from tests.conftest import TINY_RUN, tool_run

    steps, B, G = 3, 2, 4
    data = {**copy.deepcopy(TINY_RUN), **tool_run(tool_model, [SANDBOXED_CALCULATOR])}
    data["train"].update({"steps": steps, "prompts_per_step": B, "checkpoint_every": 0})
    data["distributed"] = {**RAY, "async_rollouts": True, "prefetch_steps": 1, "max_staleness": 1}
    cfg = load_config(base=data)
    trainer = RayTrainer(cfg, tmp_path / "ray")
    trained = []
    collect = trainer.collect

    def record():
        collected = collect()
        trained.append([(trainer.step_count - r.policy_version, r.completion_mask) for r in collected.kept])
        return collected

    trainer.collect = record
    trainer.run(progress=False)
    trainer.logger.close()
    trainer.close()
    rows = read_jsonl(tmp_path / "ray" / "metrics.jsonl")
    assert [r["step"] for r in rows] == list(range(1, steps + 1)) and len(trained) == steps
    assert all(len(kept) == B * G for kept in trained)
    staleness = [s for kept in trained for s, _ in kept]
    assert max(staleness) == 1  # later steps trained on episodes sampled while the previous step updated
    assert all(r["offpolicy/active"] == 1.0 for r in rows)  # ... corrected against the workers' log-probs
    masks = [m for kept in trained for _, m in kept]
    assert any(m is not None and 0 in m for m in masks)  # episodes with observations reached the learner
    assert sum(r["episode/tool_calls"] for r in rows) > 0 and sum(r["episode/observation_tokens"] for r in rows) > 0
    assert rows[-1]["verify/scored"] == steps * B * G
    samples = read_jsonl(tmp_path / "ray" / "samples.jsonl")
    assert any(p["role"] == "observation" for s in samples for p in s["transcript"])


@pytest.mark.parametrize("sharding", ["ddp", "fsdp"])
def test_a_killed_learner_stops_cleanly_and_resume_finishes_on_a_new_cluster(cluster, tiny_recipe, tmp_path,
                                                                              sharding):
    """With fsdp the checkpoint's optimiser state is gathered from the shards and split again on resume."""
    cfg = _config(tiny_recipe, sharding=sharding)
    ref_state, ref_rows = _reference(cfg, tmp_path)
    run_dir = tmp_path / "ray"
    trainer = RayTrainer(cfg, run_dir)
    group, update = trainer.learner, trainer.learner.update

    def kill_then_update(batch):  # step 3: learner 1 dies as the update begins
        if trainer.step_count == 2:
            _kill_and_wait(group.actors[1])
        return update(batch)

    group.update = kill_then_update
    with pytest.raises(LearnerLost, match="learner 1 died during step 3"):
        trainer.run(progress=False)
    trainer.logger.close()
    checkpoint = latest_checkpoint(run_dir)
    assert checkpoint.name.endswith("2") and (checkpoint / COMPLETE).exists()
    assert [e["event"] for e in read_jsonl(run_dir / "events.jsonl")] == ["learner_lost"]

    ray.shutdown()  # a new cluster
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    resumed = RayTrainer(load_config(run_dir / "config.yaml"), run_dir, resume=True)
    assert resumed.step_count == 2
    resumed.run(progress=False)
    resumed.logger.close()
    _assert_same(resumed.model.state_dict(), ref_state, read_jsonl(run_dir / "metrics.jsonl"), ref_rows)
    resumed.close()


def test_cli_train_ray_runs_evaluates_and_reports(cluster, tiny_recipe, tmp_path, capsys):
    from rlvr.cli import main

    sets = [f"distributed.{k}={v}" for k, v in RAY.items() if k != "backend"] + ["train.steps=2"]
    out = tmp_path / "cli"
    assert main(["train", "--config", str(tiny_recipe(**RUN)), "--ray", "auto", "--out", str(out),
                 "--no-progress", *sum((["--set", s] for s in sets), [])]) == 0
    assert '"step": 2' in capsys.readouterr().out
    cfg = load_config(out / "config.yaml")
    assert cfg.distributed.backend == "ray" and cfg.distributed.address == "auto"
    assert (out / "report.html").exists() and (out / "final" / "config.json").exists()
    assert read_jsonl(out / "eval.jsonl")[-1]["phase"] == "final"


def test_without_ray_the_error_names_the_extra(monkeypatch):
    import sys

    from rlvr.distributed import require_ray

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ImportError, match=r"rlvr\[ray\]"):
        require_ray()


def test_a_layout_the_cluster_cannot_place_is_refused_naming_the_keys():
    from rlvr.config import DistributedConfig
    from rlvr.distributed.trainer import check_resources

    d = DistributedConfig(backend="ray", rollout_workers=2, learners=1)  # 3 CPUs by default
    with pytest.raises(ValueError, match=r"distributed.worker_cpus=1.0.*need 3 CPUs.*has 2"):
        check_resources(d, {"CPU": 2.0})
    check_resources(DistributedConfig(rollout_workers=2, learners=1, worker_cpus=0.5), {"CPU": 2.0})
    with pytest.raises(ValueError, match="learner_gpus"):
        check_resources(DistributedConfig(learners=2, learner_gpus=1.0), {"CPU": 8.0, "GPU": 1.0})
    with pytest.raises(ValueError, match=r"2 verifiers x distributed.verifier_cpus=0.5 need 2.5 CPUs"):
        check_resources(DistributedConfig(worker_cpus=0.5, verifiers=2, verifier_cpus=0.5), {"CPU": 2.0})


@pytest.mark.parametrize("every, expected", [(0, [2, 2, 1, 0]), (3, [2, 1, 0, 0]), (2, [1, 0, 1, 0]),
                                             (1, [0, 0, 0, 0])])
def test_nothing_is_prefetched_past_a_checkpoint_or_the_last_step(every, expected):
    from types import SimpleNamespace

    from rlvr.config import Config

    cfg = Config()
    cfg.train.steps, cfg.train.checkpoint_every, cfg.distributed.prefetch_steps = 4, every, 2
    horizon = [RayTrainer.prefetch_horizon(SimpleNamespace(cfg=cfg, step_count=done)) for done in range(4)]
    assert horizon == expected  # steps that may be generated ahead while steps 1..4 run
