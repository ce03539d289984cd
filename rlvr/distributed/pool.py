"""The engine and learner protocols over Ray actors: `RolloutPool` (rollout workers, weight sync, lost
workers replaced) and `LearnerGroup` (data-parallel learners; a lost learner stops the run)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from rlvr.distributed import LearnerLost, require_ray
from rlvr.distributed.actors import LearnerWorker, RolloutWorker, Verifier
from rlvr.rollout.base import Completion, SamplingParams
from rlvr.types import Batch


def split_evenly(n: int, parts: int) -> list[tuple[int, int]]:
    """Contiguous [lo, hi) ranges covering range(n), sizes differing by at most one; empty ones left out."""
    bounds = [n * i // parts for i in range(parts + 1)]
    return [(lo, hi) for lo, hi in zip(bounds, bounds[1:]) if hi > lo]


def kill_actors(actors) -> None:
    """Stop these actors for good; one already gone is fine."""
    ray = require_ray()
    for a in actors:
        try:
            ray.kill(a, no_restart=True)
        except Exception:  # noqa: BLE001 - it is already gone
            pass


def _brief(error: Exception) -> str:
    return f"{type(error).__name__}: {str(error)[:200]}"


@dataclass
class _Check:
    """Groups lo..hi of a step being scored by verifier actor `verifier`."""

    verifier: int
    handle: object
    lo: int
    hi: int
    future: object


@dataclass
class _Part:
    """Groups lo..hi of a step being sampled by rollout worker `worker` (and scored by `checks`, if the
    pool has verifier actors)."""

    worker: int
    handle: object
    lo: int
    hi: int
    future: object
    texts: object = None  # ObjectRef of the groups' decoded texts, which the checks read
    checks: list[_Check] = field(default_factory=list)


@dataclass
class Pending:
    """Generation in flight: prompts split into parts, one per worker. `problems` open the episodes of a
    task with tools, and with `score` the completions are scored against them."""

    prompts: list[list[int]]
    sampling: SamplingParams
    seeds: list[int]
    problems: list | None
    parts: list[_Part]
    score: bool = True


class RolloutPool:
    """Rollout workers behind the engine protocol (`generate`, `load_weights`, `version`), and the
    verifier actors that score what they sample (`distributed.verifiers`; with none, each worker scores
    its own completions).

    A prompt's samples depend only on its seed and the weights, so any split over workers gives the groups
    the one-process engine gives. Weights travel through Ray's object store: one copy per node, fetched by
    the workers that need it. A verifier's call is sent with the worker's call, its input the worker's
    output ObjectRef, so scoring starts as soon as the texts exist, without a round trip to the driver. A
    worker or verifier that dies is replaced (a worker with the newest weights) and its prompts are sent
    again; `on_event` hears of it.

    With a multi-turn `environment` (a task with tools) every worker runs episodes of it (the worker builds
    its own from the config); the pool keeps the driver's copy as `environment`, which says that its
    `generate` takes the problems and which tools prompts show (`rlvr.rollout.episodes.runs_episodes`)."""

    def __init__(self, cfg, weights, version: int, on_event: Callable[..., None], task=None, environment=None):
        ray = require_ray()
        d = cfg.distributed
        self.cfg = cfg
        self.version = version
        self.environment = environment if environment is not None and environment.multi_turn else None
        self.weights = cfg.rollout.weights  # the form each worker's engine samples from (the run header)
        self._weights = weights  # ObjectRef of the newest state
        self._task = task  # ObjectRef of the task (None: the caller scores)
        self._actor = ray.remote(num_cpus=d.worker_cpus, num_gpus=d.worker_gpus)(RolloutWorker)
        self._verifier = ray.remote(num_cpus=d.verifier_cpus)(Verifier)
        self.workers = [self._spawn(i) for i in range(d.rollout_workers)]
        self.verifiers = [self._spawn_verifier() for _ in range(d.verifiers if task is not None else 0)]
        self.on_event = on_event
        self.restarts = 0
        self.resent_prompts = 0
        self.verifier_restarts = 0
        self.rescored_prompts = 0

    def _spawn(self, i: int):
        """Rollout worker i; it is given the task (and scores) only when there are no verifier actors."""
        task = self._task if not self.cfg.distributed.verifiers else None
        return self._actor.remote(self.cfg, i, self._weights, self.version, task)

    def _spawn_verifier(self):
        return self._verifier.remote(self._task, self.cfg.distributed.verifier_cpus)

    # --- weights --------------------------------------------------------------------------------
    def load_weights(self, weights, version: int, wait: bool = False) -> None:
        """Every worker loads `weights` (an ObjectRef) after the calls already queued on it; with `wait`,
        return once they all have (a worker that died meanwhile is replaced at its next generation)."""
        if weights is None:
            raise ValueError("RolloutPool.load_weights needs the weights' ObjectRef (its workers share no model)")
        ray = require_ray()
        self._weights, self.version = weights, version
        acks = [w.load_weights.remote(weights, version) for w in self.workers]
        for ack in acks if wait else []:
            try:
                ray.get(ack)
            except ray.exceptions.RayActorError:
                pass

    # --- sampling -------------------------------------------------------------------------------
    def submit(self, prompts: list[list[int]], sampling: SamplingParams, seeds: list[int],
               problems: list | None = None, score: bool = True) -> Pending:
        """Send the prompts out (split over the workers) and return at once; with `problems` (which open the
        episodes of a task with tools) and `score` the workers score their completions too."""
        pending = Pending(prompts, sampling, seeds, problems, [], score)
        for i, (lo, hi) in enumerate(split_evenly(len(prompts), len(self.workers))):
            pending.parts.append(self._send(i, lo, hi, pending))
        return pending

    def _send(self, i: int, lo: int, hi: int, pending: Pending) -> _Part:
        handle = self.workers[i]
        args = (pending.prompts[lo:hi], pending.sampling, pending.seeds[lo:hi])
        problems = None if pending.problems is None else pending.problems[lo:hi]
        if not self.verifiers or problems is None or not pending.score:
            return _Part(i, handle, lo, hi, handle.generate.remote(*args, problems, pending.score))
        out, texts = handle.sample.options(num_returns=2).remote(*args, problems)
        part = _Part(i, handle, lo, hi, out, texts)
        for j, (a, b) in enumerate(split_evenly(hi - lo, len(self.verifiers))):  # spread over the verifiers
            part.checks.append(self._check((i + j) % len(self.verifiers), lo + a, lo + b, part, pending))
        return part

    def _check(self, v: int, lo: int, hi: int, part: _Part, pending: Pending) -> _Check:
        handle = self.verifiers[v]
        future = handle.score.remote(pending.problems[lo:hi], part.texts, lo - part.lo, hi - part.lo)
        return _Check(v, handle, lo, hi, future)

    def gather(self, pending: Pending) -> tuple[list[list[Completion]], list[int], list | None]:
        """The groups in prompt order, the policy version that made each one, and their scores (None
        unless the problems were given and the workers hold the task)."""
        ray = require_ray()
        groups: list = [None] * len(pending.prompts)
        versions: list = [None] * len(pending.prompts)
        scores: list | None = [None] * len(pending.prompts)
        todo = list(pending.parts)
        while todo:
            ready, _ = ray.wait([p.future for p in todo], num_returns=1)
            part = next(p for p in todo if p.future == ready[0])
            todo.remove(part)
            try:
                out, version, scored = ray.get(part.future)
            except ray.exceptions.RayActorError as e:
                todo.append(self._recover(part, pending, e))
                continue
            if part.checks:
                scored = [s for check in part.checks for s in self._scores(check, part, pending)]
            groups[part.lo : part.hi] = out
            versions[part.lo : part.hi] = [version] * (part.hi - part.lo)
            if scored is None:
                scores = None
            elif scores is not None:
                scores[part.lo : part.hi] = scored
        return groups, versions, scores

    def _replace(self, actors: list, i: int, handle, spawn: Callable[[], object], counter: str, what: str,
                 error: Exception) -> bool:
        """Replace `actors[i]` if it is still `handle` (once, however many of its calls fail), counting the
        restart in `self.<counter>` against `max_restarts`; True when it was replaced."""
        if actors[i] is not handle:
            return False
        n = getattr(self, counter) + 1
        setattr(self, counter, n)
        if n > self.cfg.distributed.max_restarts:
            raise RuntimeError(f"{what} died {n} times (distributed.max_restarts="
                               f"{self.cfg.distributed.max_restarts}); last: {error}") from error
        kill_actors([handle])
        actors[i] = spawn()
        return True

    def _recover(self, part: _Part, pending: Pending, error: Exception) -> _Part:
        """Replace a dead worker and send its prompts again, with the same seeds."""
        self._replace(self.workers, part.worker, part.handle, lambda: self._spawn(part.worker), "restarts",
                      "rollout workers", error)
        self.resent_prompts += part.hi - part.lo
        self.on_event("rollout_worker_restarted", worker=part.worker, resent_prompts=part.hi - part.lo,
                      error=_brief(error))
        return self._send(part.worker, part.lo, part.hi, pending)

    def _scores(self, check: _Check, part: _Part, pending: Pending) -> list:
        """A check's scores; a verifier that died is replaced and the groups are scored again from the
        texts, which live in the object store, not in the dead actor."""
        ray = require_ray()
        while True:
            try:
                return ray.get(check.future)
            except ray.exceptions.RayActorError as e:
                if self._replace(self.verifiers, check.verifier, check.handle,
                                 self._spawn_verifier, "verifier_restarts", "verifiers", e):
                    self.on_event("verifier_restarted", verifier=check.verifier, error=_brief(e))
                self.rescored_prompts += check.hi - check.lo
                check = self._check(check.verifier, check.lo, check.hi, part, pending)

    def generate(self, prompts: list[list[int]], sampling: SamplingParams, generator: torch.Generator | None = None,
                 seeds: list[int] | None = None, problems: list | None = None) -> list[list[Completion]]:
        """The engine protocol: without `seeds`, each prompt's seed is drawn from `generator`; `problems`
        open the episodes of a task with tools (nothing is scored here)."""
        if not prompts:
            return []
        if seeds is None:
            seeds = torch.randint(0, 2**62, (len(prompts),), generator=generator).tolist()
        return self.gather(self.submit(prompts, sampling, seeds, problems, score=False))[0]

    def close(self) -> None:
        kill_actors(self.workers + self.verifiers)


class LearnerGroup:
    """Data-parallel learners behind the learner protocol (`update`, `reference_logprobs`, `state_dict`).

    Rows are dealt round-robin in length order, so every learner gets about the same number of tokens."""

    def __init__(self, cfg, checkpoint: str | None):
        ray = require_ray()
        d = cfg.distributed
        actor = ray.remote(num_cpus=d.learner_cpus, num_gpus=d.learner_gpus)(LearnerWorker)
        self.actors = [actor.remote(cfg, r, d.learners) for r in range(d.learners)]
        self.sharded = d.sharding == "fsdp"
        self.step = 0  # the trainer's step count, for the message of a `LearnerLost`
        master = self._all(lambda r, a: a.master_address.remote(), only=self.actors[:1])[0]
        # every learner takes the same decisions (`workers_behaviour_differs`, ...); the run header shows them
        learner = self._all(lambda r, a: a.setup.remote(master, checkpoint))[0]
        self.correct_offpolicy, self.watch_updates = learner["correct_offpolicy"], learner["watch_updates"]

    def _all(self, call, only=None) -> list:
        """Results of `call(rank, actor)` on every learner (or the first `only`); a dead learner raises
        `LearnerLost` at once (the others may be waiting for it inside a collective operation, so they are
        not waited for)."""
        ray = require_ray()
        futures = [call(r, a) for r, a in enumerate(only or self.actors)]
        pending = list(futures)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            try:
                ray.get(ready[0])
            except ray.exceptions.RayActorError as e:
                raise LearnerLost(futures.index(ready[0]), self.step, e) from e
        return ray.get(futures)

    def _rows(self, batch: Batch) -> list[torch.Tensor]:
        order = torch.argsort(batch.attention_mask.sum(-1), stable=True)
        return [order[r :: len(self.actors)] for r in range(len(self.actors))]

    def update(self, batch: Batch) -> dict[str, float]:
        ray = require_ray()
        ref, rows = ray.put(batch), self._rows(batch)
        stats = self._all(lambda r, a: a.update.remote(ref, rows[r]))
        return stats[0]  # every learner holds the group's reduced diagnostics

    def reference_logprobs(self, batch: Batch) -> torch.Tensor:
        ray = require_ray()
        ref, rows = ray.put(batch), self._rows(batch)
        parts = self._all(lambda r, a: a.reference_logprobs.remote(ref, rows[r]))
        return torch.stack(parts).sum(0)  # each learner filled its own rows, zeros elsewhere

    def weights(self):
        """An ObjectRef of the policy's state, from rank 0. Replicas (ddp) are identical, so rank 0 alone
        answers; shards (fsdp) are gathered by all learners together."""
        refs = [a.weights.remote() for a in (self.actors if self.sharded else self.actors[:1])]
        return refs[0]

    def state_dict(self) -> dict:
        return self._all(lambda r, a: a.state_dict.remote(), only=None if self.sharded else self.actors[:1])[0]

    def load_state_dict(self, state: dict) -> None:
        self._all(lambda r, a: a.load_state_dict.remote(state))

    def close(self) -> None:
        kill_actors(self.actors)
