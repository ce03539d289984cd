"""What runs inside Ray's processes: rollout workers (which may also verify), verifiers and learners.

These are plain classes and functions; `rlvr.distributed.pool` turns them into Ray actors and tasks with
the resources the config asks for. Nothing here imports Ray, so it is testable without a cluster.
"""

from __future__ import annotations

import os
import socket
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist

from rlvr.distributed.data_parallel import DataParallel, FullyShardedDataParallel
from rlvr.environments import build_environment
from rlvr.learner import Learner
from rlvr.models.loading import compute_dtype, decode_completion, load_policy
from rlvr.models.policy import build_policy
from rlvr.rng import seed_everything
from rlvr.rollout import build_engine, rollout_form_differs
from rlvr.rollout.base import Completion, SamplingParams
from rlvr.rollout.episodes import generate_for, with_environment
from rlvr.types import Batch, Problem, Score
from rlvr.verifiers import VerifierError, score_or_none


def use_threads(cpus: float) -> None:
    """Torch threads = the CPUs Ray reserved for this actor (Ray sets OMP_NUM_THREADS the same way)."""
    torch.set_num_threads(max(1, int(cpus)))


class RolloutWorker:
    """One engine on one node: samples groups with the policy version it was last given, and scores them
    with the task's verifier right there (code runs in that node's sandbox), so verification scales with
    the workers and, in async mode, overlaps the learners' update like generation does.

    A task with tools makes every sample an episode here too: the worker's engine is an `EpisodeEngine`
    over the environment the config describes (built on this node, so `module:function` tools import here
    and the python tool and sandboxed user tools run in this node's sandbox pool)."""

    def __init__(self, cfg, rank: int, weights: dict[str, torch.Tensor] | None, version: int, task=None):
        use_threads(cfg.distributed.worker_cpus)
        self.rank, self.task, self.prefix = rank, task, cfg.model.response_prefix
        # The same architecture (and LoRA adapter) as the learner's, so its state loads strictly.
        model, self.tokenizer = load_policy(cfg.model, seed=cfg.train.seed, training=False)  # compute dtype
        environment = build_environment(cfg.task, self.tokenizer, cfg.rollout.max_new_tokens,
                                        cfg.model.response_prefix)
        self.engine = with_environment(build_engine(cfg, model, self.tokenizer), environment, self.tokenizer)
        if weights is not None:
            self.engine.load_weights(weights, version)

    def generate(self, prompts: list[list[int]], sampling: SamplingParams, seeds: list[int],
                 problems: list[Problem] | None = None, score: bool = True
                 ) -> tuple[list[list[Completion]], int, list | None]:
        """The groups, the policy version that made them (whatever version the caller believes in) and,
        given the problems, a task and `score`, each completion's `Score`. The problems open the episodes of
        a task with tools."""
        groups = generate_for(self.engine, problems, prompts, sampling, seeds=seeds)
        scores = None
        if score and problems is not None and self.task is not None:
            scores = score_groups(self.task, problems, self._texts(groups))
        return groups, self.engine.version, scores

    def sample(self, prompts: list[list[int]], sampling: SamplingParams, seeds: list[int],
               problems: list[Problem] | None = None):
        """((groups, policy version, None), their texts): two Ray objects (`num_returns=2`), so verifier
        actors take the texts straight from this worker's node while the groups go to the driver."""
        groups = generate_for(self.engine, problems, prompts, sampling, seeds=seeds)
        return (groups, self.engine.version, None), self._texts(groups)

    def _texts(self, groups: list[list[Completion]]) -> list[list[str]]:
        return [[decode_completion(self.tokenizer, c.token_ids, self.prefix) for c in group] for group in groups]

    def load_weights(self, weights: dict[str, torch.Tensor], version: int) -> int:
        self.engine.load_weights(weights, version)
        return version

    def pid(self) -> int:
        return os.getpid()


def score_groups(task, problems: list[Problem], texts: list[list[str]], threads: int = 1
                 ) -> list[list[Score | None]]:
    """Each group's texts scored against its problem, `threads` completions at once (sandbox runs are
    subprocesses), in order. A completion the sandbox could not run, or the verifier itself failed on
    (`VerifierError`), gets None, and the driver scores it again (a retry) before leaving it out: there the
    trainer counts it by cause, a verifier fault with its message, as in one process."""

    def one(problem: Problem, text: str) -> Score | None:
        try:
            return score_or_none(task.verify, problem, text)
        except VerifierError:
            return None

    pairs = [(p, t) for p, group in zip(problems, texts) for t in group]
    if threads > 1 and len(pairs) > 1:
        with ThreadPoolExecutor(min(threads, len(pairs)), thread_name_prefix="rlvr-verify") as pool:
            flat = list(pool.map(lambda pt: one(*pt), pairs))
    else:
        flat = [one(p, t) for p, t in pairs]
    it = iter(flat)
    return [[next(it) for _ in group] for group in texts[: len(problems)]]


class Verifier:
    """Scores completions apart from generation (`distributed.verifiers`), so verification, e.g. code run in
    the sandbox, gets CPUs of its own, on any node, and scales apart from the rollout workers. It holds the
    task once; its sandbox runs share the node's pool like any other process's."""

    def __init__(self, task, cpus: float = 1.0):
        self.task = task
        self.threads = max(1, int(cpus))  # completions scored at once
        self.scored = 0  # completions scored by this actor, for the tests' count

    def score(self, problems: list[Problem], texts: list[list[str]], lo: int, hi: int) -> list[list[Score]]:
        """Scores of groups lo..hi of `texts` (a rollout worker's output: its ObjectRef resolves here)."""
        scores = score_groups(self.task, problems, texts[lo:hi], self.threads)
        self.scored += sum(len(group) for group in scores)
        return scores

    def count(self) -> int:
        return self.scored

    def pid(self) -> int:
        return os.getpid()


def workers_behaviour_differs(cfg, model: torch.nn.Module, dtype: torch.dtype) -> bool:
    """Whether the policy the rollout workers sample from (the behaviour policy, whose log-probs every
    rollout carries) can differ from `model`, a learner's replica computing in `dtype`: with
    `distributed.async_rollouts` (a group may come from an older version: the staleness AReaL's decoupled
    objective is made for), a top-p nucleus, or another form of the weights on the workers (vLLM, a bf16 or
    quantised copy beside fp32 masters; `rlvr.rollout.rollout_form_differs`). Then
    `algorithm.offpolicy_correction: auto` is on, as in one process when the engine does not share the
    learner's module. Otherwise each worker holds exactly the learner's values and samples their policy."""
    return cfg.distributed.async_rollouts or cfg.rollout.top_p < 1.0 or rollout_form_differs(cfg, model, dtype)


class LearnerWorker:
    """One data-parallel replica of the policy, its optimiser and scheduler (`rlvr.learner.Learner`)."""

    def __init__(self, cfg, rank: int, world: int):
        use_threads(cfg.distributed.learner_cpus)
        self.cfg, self.rank, self.world = cfg, rank, world

    def master_address(self) -> str:
        """A rendezvous address on this (rank 0's) node: its IP and a free port."""
        import ray

        with socket.socket() as s:
            s.bind(("", 0))
            port = s.getsockname()[1]
        return f"tcp://{ray.util.get_node_ip_address()}:{port}"

    def setup(self, master: str, checkpoint: str | None) -> dict[str, bool]:
        """Join the process group and build the replica (from config, or from `checkpoint` on resume).
        Rank 0's weights are broadcast, so every replica starts identical whatever its seed did. Returns
        what the run header tells of the learner: whether it corrects for the gap to the behaviour policy
        (`correct_offpolicy`) and whether its trainable weights are low precision (`watch_updates`)."""
        cfg = self.cfg
        cuda = cfg.distributed.learner_gpus > 0 and torch.cuda.is_available()
        dist.init_process_group("nccl" if cuda else "gloo", init_method=master, rank=self.rank,
                                world_size=self.world, timeout=timedelta(seconds=cfg.distributed.timeout_s))
        seed_everything(cfg.train.seed)
        self.model, _, ref_model = build_policy(cfg, Path(checkpoint) if checkpoint else None)
        with torch.no_grad():
            for t in list(self.model.parameters()) + list(self.model.buffers()):
                dist.broadcast(t.data, src=0)
        device = next(self.model.parameters()).device
        dtype = compute_dtype(cfg.model, self.model)
        differs = workers_behaviour_differs(cfg, self.model, dtype)  # asked of the unsharded replica
        if cfg.distributed.sharding == "fsdp":
            self.dp = FullyShardedDataParallel(device)
            self.dp.wrap(self.model, dtype)
        else:
            self.dp = DataParallel(device)
        self.learner = Learner(self.model, cfg.train, cfg.algorithm, cfg.rollout.temperature,
                               cfg.rollout.max_new_tokens, ref_model, dtype, differs)
        self.learner.data_parallel = self.dp
        return {"correct_offpolicy": self.learner.correct_offpolicy, "watch_updates": self.learner.watch_updates}

    def update(self, batch: Batch, rows: torch.Tensor) -> dict[str, float]:
        return self.learner.update(batch, rows)

    def reference_logprobs(self, batch: Batch, rows: torch.Tensor) -> torch.Tensor:
        return self.learner.reference_logprobs(batch, rows)

    def weights(self) -> dict[str, torch.Tensor] | None:
        """The policy's full state (CPU tensors) on rank 0: what rollout workers and the driver load.
        (Sharded, every learner must take part in gathering it; the others return None.)"""
        state = self.dp.full_state(self.model)
        return state if self.rank == 0 else None

    def state_dict(self) -> dict | None:
        """Optimiser and scheduler in the one-process format (rank 0; every learner takes part)."""
        state = {"optimizer": self.dp.optimizer_state(self.learner.optimizer),
                 "scheduler": self.learner.scheduler.state_dict()}
        return state if self.rank == 0 else None

    def load_state_dict(self, state: dict) -> None:
        self.dp.load_optimizer_state(self.learner.optimizer, state["optimizer"])
        self.learner.scheduler.load_state_dict(state["scheduler"])

    def pid(self) -> int:
        return os.getpid()
