"""`RayTrainer`: the loop of `rlvr.trainer.Trainer` with rollout workers and learners on a Ray cluster.

Synchronous (the default): each step's prompts are split over the rollout workers, which sample them and
score the completions with the task's verifier on their node (or hand the texts to verifier actors,
`distributed.verifiers`); the batch is split over the learners, whose summed gradients equal the
one-process gradient; the new weights then reach every worker, tagged with their version. On the same
seed this gives the single-process run's weights (within float tolerance) and metrics.

Asynchronous (`distributed.async_rollouts`): the prompts of the next `prefetch_steps` steps are generated
while the learners update, so generation and learning overlap. A group made by a policy more than
`max_staleness` versions older than the one being trained is dropped (counted) and its prompt sampled
again; the loss's importance ratios are taken against the sampling log-probs the engine returned. Nothing
is prefetched past a checkpoint, so a resumed async run repeats the uninterrupted one exactly.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path

from rlvr.distributed import LearnerLost, require_ray
from rlvr.distributed.pool import LearnerGroup, RolloutPool
from rlvr.environments import build_environment
from rlvr.models.loading import compute_dtype
from rlvr.models.policy import build_policy
from rlvr.trainer import Trainer
from rlvr.types import Problem, Rollout


def start_ray(address: str):
    """Join the cluster at `address` ("auto": the one on this node) or, with "", start a local one."""
    ray = require_ray()
    if not ray.is_initialized():
        ray.init(address=address or None, include_dashboard=False, log_to_driver=False)
    return ray


def check_resources(d, available: dict) -> None:
    """Refuse a layout the cluster cannot place (its actors would wait forever), naming the keys."""
    for kind in ("CPU", "GPU"):
        key = kind.lower() + "s"
        asks = [(d.rollout_workers, "rollout workers", f"worker_{key}", getattr(d, f"worker_{key}")),
                (d.learners, "learners", f"learner_{key}", getattr(d, f"learner_{key}"))]
        if kind == "CPU" and d.verifiers:  # verifiers take CPUs only
            asks.append((d.verifiers, "verifiers", "verifier_cpus", d.verifier_cpus))
        need = sum(n * each for n, _, _, each in asks)
        have = available.get(kind, 0.0)
        if need > have + 1e-9:
            parts = " + ".join(f"{n} {what} x distributed.{k}={each}" for n, what, k, each in asks)
            raise ValueError(f"distributed: {parts} need {need:g} {kind}s, and the Ray cluster has {have:g}; "
                             "lower them (fractions are allowed) or add nodes")


class RayTrainer(Trainer):
    """`Trainer` whose engine is a `RolloutPool` and whose learner is a `LearnerGroup` on a Ray cluster."""

    def __init__(self, cfg, run_dir=None, resume: bool = False, task=None, logger=None):
        self.ray = start_ray(cfg.distributed.address)
        self._pending_events: list[tuple[str, dict]] = []
        self._prefetched: deque = deque()
        self.stale_dropped = 0  # groups dropped for staleness (async)
        self.prefetch_discarded = 0  # prefetched groups whose prompts the run did not ask for after all
        self.scored = 0  # completions scored, each exactly once
        self._parts_ready = False
        super().__init__(cfg, run_dir, resume=resume, task=task, logger=logger)
        for event, details in self._pending_events:
            self.logger.log_event(self.step_count, event, **details)
        self._pending_events.clear()

    # --- parts ---------------------------------------------------------------------------------------
    def build_parts(self, checkpoint: Path | None) -> None:
        """The learner group (from config or `checkpoint`), then rollout workers holding its weights. The
        driver keeps a copy of the policy too, refreshed only to write checkpoints and the final policy."""
        cfg = self.cfg
        check_resources(cfg.distributed, self.ray.cluster_resources())
        self.model, self.tokenizer, _ = build_policy(cfg, checkpoint, with_reference=False)
        self.device = next(self.model.parameters()).device
        self.dtype = compute_dtype(cfg.model, self.model)  # what the learners compute in (the run header)
        self.ref_model = None  # it lives in the learners
        self.learner = LearnerGroup(cfg, str(checkpoint) if checkpoint is not None else None)
        self._weights = self.learner.weights()
        try:  # the task travels to the workers (or verifiers) once, and they score what is sampled
            task_ref = self.ray.put(self.task)
        except Exception as e:  # noqa: BLE001 - a task that cannot be pickled is scored here instead
            self._event("task_scored_on_driver", reason=f"{type(e).__name__}: {e}")
            task_ref = None
        # a task with tools: the workers run its episodes; the driver's copy gives the prompts their tools
        self.environment = build_environment(cfg.task, self.tokenizer, cfg.rollout.max_new_tokens,
                                             cfg.model.response_prefix)
        self.engine = RolloutPool(cfg, self._weights, 0, self._event, task_ref, self.environment)
        self._parts_ready = True

    def sync_weights(self) -> None:
        """The learners' new weights go to the object store once and to every worker with their version.
        Synchronous runs wait until every worker holds them (so time/weight_sync is the real cost); async
        runs do not (the workers load them after the generation already queued)."""
        self.learner.step = self.step_count
        self._weights = self.learner.weights()
        self.engine.load_weights(self._weights, self.step_count, wait=not self.cfg.distributed.async_rollouts)

    def _pull_weights(self) -> None:
        self.model.load_state_dict(self.ray.get(self._weights), strict=True)

    def _event(self, event: str, **details) -> None:
        if getattr(self, "logger", None) is None:
            self._pending_events.append((event, details))
        else:
            self.logger.log_event(self.step_count, event, **details)

    # --- sampling and scoring --------------------------------------------------------------------
    def rollout(self, problems: list[Problem], start: int) -> list[Rollout]:
        pending = self._take_prefetched(start, problems) if self.cfg.distributed.async_rollouts else None
        if pending is None:
            prompts, seeds = self.requests(problems, start)
            return self.generate(problems, prompts, self.sampling(), seeds)
        return self._gather(pending, problems)

    def generate(self, problems: list[Problem], prompts: list[list[int]], sampling, seeds: list[int]):
        """The rollout workers sample (and score) the prompts: the step's groups, and screening's samples."""
        return self._gather(self.engine.submit(prompts, sampling, seeds, problems), problems)

    def _gather(self, pending, problems: list[Problem]) -> list[Rollout]:
        prompts, seeds = pending.prompts, pending.seeds
        groups, versions, scores = self.engine.gather(pending)
        # The batch trains the policy of version step_count: older groups beyond the bound are sampled again.
        stale = [i for i, v in enumerate(versions) if self.step_count - v > self.cfg.distributed.max_staleness]
        if stale:
            self.stale_dropped += len(stale)
            again = self.engine.submit([prompts[i] for i in stale], pending.sampling, [seeds[i] for i in stale],
                                       [problems[i] for i in stale])
            new_groups, new_versions, new_scores = self.engine.gather(again)
            for j, i in enumerate(stale):
                groups[i], versions[i] = new_groups[j], new_versions[j]
                if scores is not None:
                    scores[i] = new_scores[j]
        rollouts = self.to_rollouts(problems, prompts, groups, versions)
        if scores is not None:
            for r, s in zip(rollouts, (s for group in scores for s in group)):
                r.score = s
        return rollouts

    def _take_prefetched(self, start: int, problems: list[Problem]):
        while self._prefetched:
            first, ids, pending = self._prefetched[0]
            if first > start:
                return None
            self._prefetched.popleft()
            if first == start and ids == [p.id for p in problems]:
                return pending
            self.prefetch_discarded += len(ids)  # e.g. a filter changed which problem sits at that index
        return None

    def prefetch_horizon(self) -> int:
        """How many steps after the one being run may be generated now: up to `prefetch_steps`, but never
        past the next checkpoint. A checkpoint is a point where nothing is in flight, so the run resumed
        from it samples exactly what the uninterrupted run sampled (one step in `checkpoint_every` gives up
        its overlap)."""
        t = self.cfg.train
        step = self.step_count + 1  # the step being run
        last = t.steps
        if t.checkpoint_every:  # the next step that ends with a checkpoint
            last = min(last, -(-step // t.checkpoint_every) * t.checkpoint_every)
        return min(self.cfg.distributed.prefetch_steps, last - step)

    def _prefetch(self) -> None:
        """Send the prompts of the next steps to the workers now, so they sample while the learners update."""
        B = self.cfg.train.prompts_per_step
        while len(self._prefetched) < self.prefetch_horizon():
            start = self.cursor + B * len(self._prefetched)
            problems = [self.task.train_problem(start + i) for i in range(B)]
            prompts, seeds = self.requests(problems, start)
            self._prefetched.append((start, [p.id for p in problems],
                                     self.engine.submit(prompts, self.sampling(), seeds, problems)))

    def collect(self):
        """The step's groups, as `Trainer.collect`; then (async) the next steps' prompts go out, and the
        staleness, verification and fault counts join the step's info."""
        collected = super().collect()
        if self.cfg.distributed.async_rollouts:
            self._prefetch()  # before the update: it overlaps the learners' work
        G = self.cfg.rollout.num_generations
        staleness = [self.step_count - r.policy_version for r in collected.sampled[::G]]  # one per group
        collected.info.update({
            "async/staleness_mean": sum(staleness) / max(len(staleness), 1),
            "async/staleness_max": max(staleness, default=0),
            "async/stale_dropped": self.stale_dropped,
            "async/prefetch_discarded": self.prefetch_discarded,
            "faults/rollout_restarts": self.engine.restarts,
            "faults/resent_prompts": self.engine.resent_prompts,
            "faults/verifier_restarts": self.engine.verifier_restarts,
            "faults/rescored_prompts": self.engine.rescored_prompts,
            "verify/scored": self.scored,
        })
        return collected

    def score(self, rollouts: list[Rollout]) -> None:
        """The workers scored their completions already; whatever they could not score (a sandbox or verifier
        fault) is scored again here, and what still has no reward is counted by cause (`Trainer.check_infra`)."""
        todo = [r for r in rollouts if r.score is None]
        if todo:
            super().score(todo)
        self.scored += len(rollouts)

    # --- the loop, checkpoints, shutdown -----------------------------------------------------------
    def run(self, progress: bool | None = None) -> dict:
        try:
            return super().run(progress)
        except LearnerLost as e:
            self.logger.log_event(self.step_count, "learner_lost", rank=e.rank, message=str(e))
            self.close()
            raise

    _COUNTS = ("stale_dropped", "prefetch_discarded", "scored", "infra_errors", "verifier_errors",
               "skipped_steps")  # the trainer's
    _POOL_COUNTS = ("restarts", "resent_prompts", "verifier_restarts", "rescored_prompts")  # the pool's

    def counters(self) -> dict[str, int]:
        """The async, verification and fault counts, so their metrics go on counting after a resume (and
        `max_restarts` caps the whole run)."""
        return {**{k: getattr(self, k) for k in self._COUNTS},
                **{k: getattr(self.engine, k) for k in self._POOL_COUNTS}}

    def load_counters(self, counters: dict[str, int]) -> None:
        for k in self._COUNTS:
            setattr(self, k, counters.get(k, 0))
        for k in self._POOL_COUNTS:
            setattr(self.engine, k, counters.get(k, 0))

    def save_checkpoint(self) -> Path:
        self._pull_weights()
        return super().save_checkpoint()

    def save_final(self) -> None:
        self._pull_weights()
        super().save_final()

    def close(self) -> None:
        """Stop the actors (the Ray cluster itself is left as it was)."""
        if self._parts_ready:
            self.engine.close()
            self.learner.close()
            self._parts_ready = False
