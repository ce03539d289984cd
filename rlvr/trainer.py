"""The RL loop: problems -> rollouts -> scores -> advantages -> update -> new weights. Orchestration only.

One step (`Trainer.step`):
1. `collect`: take `prompts_per_step` problems from the task (seeded cursor, stored in checkpoints); the
   engine samples `num_generations` completions for each, with their log-probs; the task's verifier scores
   every one; `keep_groups` says which groups join the batch (DAPO's dynamic sampling draws more);
2. `assemble`: rewards (verifier, overlong shaping, KL in the reward), advantages inside each group, masks;
3. the learner runs the policy loss (one or more passes);
4. the engine gets the new weights; the step's metrics and samples are written.
`run` repeats it, with evaluation and checkpoints on schedule. The parts are built in their own modules
(`build_policy`, `build_engine`, `Learner`); data moves between the calls by return value.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch

from rlvr.algorithms.dapo import nonconstant_groups
from rlvr.batching import assemble_batch, batch_metrics
from rlvr.checkpoint import latest_checkpoint, restore_metric_files, save_checkpoint
from rlvr.config import Config, save_config
from rlvr.environments import build_environment
from rlvr.environments.metrics import episode_metrics
from rlvr.evaluate import evaluate_held_out
from rlvr.faults import (  # noqa: F401 - the run's errors
    InfraErrorRate,
    VerifierErrorRate,
    check_engine_gap,
    count_unscored,
    scored_group,
)
from rlvr.learner import Learner
from rlvr.logging.metrics import MetricsLogger, sample_rows
from rlvr.logging.progress import Progress
from rlvr.models.host_memory import keeps_freed_memory
from rlvr.models.loading import (
    compute_dtype,
    cpu_has_native_bf16,
    decode_completion,
    encode_prompt,
    num_params,
    save_policy,
    stop_token_ids,
)
from rlvr.models.policy import build_policy
from rlvr.rng import restore_rng, rng_state, seed_everything
from rlvr.rollout import behaviour_differs, build_engine
from rlvr.rollout.base import SamplingParams, sample_seed
from rlvr.rollout.episodes import generate_for, with_environment
from rlvr.screening import Screener, salted_seed
from rlvr.tasks.registry import build_task
from rlvr.types import Batch, Problem, Rollout
from rlvr.verifiers import VerifierError, score_sample


@dataclass
class Collected:
    """One step's scored samples: the groups the batch trains on, and every group drawn to find them."""

    kept: list[Rollout]  # whole groups of G, contiguous: what the batch is made of
    sampled: list[Rollout]  # every group drawn this step, dropped ones too (counted and logged)
    info: dict[str, float]  # time/generate, time/verify, dynamic/draws, dynamic/dropped_groups, ...


class Trainer:
    """Builds the parts from a `Config` and runs the loop; `resume=True` continues from the last checkpoint."""

    def __init__(self, cfg: Config, run_dir: str | Path | None = None, resume: bool = False, task=None,
                 logger: MetricsLogger | None = None, environment=None):
        self.cfg = cfg
        self.run_dir = Path(run_dir or cfg.train.out_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        seed_everything(cfg.train.seed)
        self.task = task or build_task(cfg.task, eval_size=cfg.eval.num_problems,
                                       group_size=cfg.rollout.num_generations)
        checkpoint = latest_checkpoint(self.run_dir) if resume else None
        if resume and checkpoint is None:
            raise FileNotFoundError(f"--resume: no complete checkpoint under {self.run_dir / 'checkpoints'}")
        self.environment = environment  # None: the task's own (`task.tools`, else single turn)
        self.build_parts(checkpoint)
        self.generator = torch.Generator(device=self.device).manual_seed(cfg.train.seed)
        self.stop_ids = stop_token_ids(self.tokenizer)
        self.step_count, self.cursor, self.sampled_tokens = 0, 0, 0
        self.infra_errors = 0  # samples the sandbox (or the environment) could not score, over the run
        self.verifier_errors = 0  # samples the verifier itself failed on, over the run
        self.skipped_steps = 0  # steps with no update: every group was dropped
        self.screener = Screener(cfg.algorithm, cfg.rollout.num_generations, cfg.train.prompts_per_step) \
            if cfg.algorithm.screening else None
        if checkpoint is not None:
            self._load_state(checkpoint)
        else:
            save_config(cfg, self.run_dir / "config.yaml")
        self.logger = logger or MetricsLogger(self.run_dir, tensorboard=cfg.logging.tensorboard, wandb=cfg.logging.wandb,
                                    mlflow=cfg.logging.mlflow, config=cfg.to_dict(),
                                    resume_step=self.step_count if checkpoint is not None else None)

    def build_parts(self, checkpoint: Path | None) -> None:
        """The policy, engine and learner: one process, the engine sampling from the learner's own model."""
        cfg = self.cfg
        self.model, self.tokenizer, self.ref_model = build_policy(cfg, checkpoint)
        self.device = next(self.model.parameters()).device
        self.dtype = compute_dtype(cfg.model, self.model)
        # a task with tools: every sample is an episode (the engine pauses at tool calls); else the engine itself
        if self.environment is None:
            self.environment = build_environment(cfg.task, self.tokenizer, cfg.rollout.max_new_tokens,
                                                 cfg.model.response_prefix)
        self.engine = with_environment(build_engine(cfg, self.model, self.tokenizer, self.device, self.dtype),
                                       self.environment, self.tokenizer)
        self.learner = Learner(self.model, cfg.train, cfg.algorithm, cfg.rollout.temperature,
                               cfg.rollout.max_new_tokens, self.ref_model, self.dtype,
                               behaviour_differs(self.engine, self.model, cfg.rollout.top_p))

    def sync_weights(self) -> None:
        """After an update: the engine samples from the new weights, policy version `step_count` (an engine
        that shares the learner's model copies nothing; a bf16 copy beside fp32 masters, or vLLM, is refreshed)."""
        self.engine.load_weights(self.model.state_dict(), self.step_count)

    def header(self) -> str:
        """What trains in which precision (printed when a run starts)."""
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        master = str(trainable[0].dtype).removeprefix("torch.") if trainable else "none"
        correction = "on" if self.learner.correct_offpolicy else "off"  # (a Ray learner group: its learners')
        sampler = getattr(self.engine, "engine", self.engine)  # the torch engine under an episode engine
        fast = []  # the CPU decode paths in force (rlvr.rollout.cpu_kernels, rlvr.rollout.layer_loop)
        if getattr(sampler, "packed", None) is not None and sampler.packed.covers():
            fast.append("CPU decode on packed int8 weights and activations" if sampler.packed.int8
                        else "CPU decode on packed weights")
        if getattr(sampler, "loops_layers", False):
            fast.append("decode steps as a layer loop")
        if getattr(sampler, "compile_loop", False):
            fast.append("loop steps compiled")
        if self.device.type == "cpu" and keeps_freed_memory():
            fast.append("freed host memory kept for reuse")
        packed = f" ({', '.join(fast)})" if fast else ""
        line = (f"rlvr: {num_params(self.model) / 1e6:.1f}M parameters ({sum(p.numel() for p in trainable) / 1e6:.1f}M "
                f"trainable) on {self.device.type}; compute {str(self.dtype).removeprefix('torch.')}, "
                f"trainable weights and optimiser state {master}; engine {type(self.engine).__name__}, rollout "
                f"weights {getattr(self.engine, 'weights', 'same')}{packed}, off-policy correction {correction} "
                f"({self.cfg.algorithm.offpolicy_correction})")
        if self.device.type == "cpu" and not cpu_has_native_bf16() and torch.bfloat16 in (
                self.dtype, *(p.dtype for p in getattr(sampler, "model", self.model).parameters())):
            line += ("\nrlvr: WARNING bf16 on a CPU without native bf16 (no AVX-512 BF16 or AMX): its products are "
                     "emulated, about 3x slower than fp32 (benchmarks/cpu_linears.py); model.dtype: auto with "
                     "rollout.weights: same computes in float32 on this CPU")
        if self.learner.watch_updates:
            line += ("\nrlvr: WARNING pure low-precision training (train.master_weights: false): updates below "
                     "half an ulp of a weight round away; update/changed_frac is logged every step")
        return line

    # --- one step ----------------------------------------------------------------------------------
    def step(self) -> dict[str, float]:
        """One step of the loop: sample and score groups, assemble the batch, update the policy, give the
        engine the new weights, write the step's metrics and samples. Returns the metrics. A step in which
        no group could be scored (possible with `train.max_infra_error_rate: 1.0` or
        `train.max_verifier_error_rate: 1.0`) makes no update: it is logged with `update/skipped` 1 and the run
        goes on (the engine's version still moves)."""
        t_start = time.time()
        collected = self.collect()
        skipped = not collected.kept  # every group was dropped (no reward in any): a step with no update
        self.skipped_steps += skipped
        batch, rewards = (None, None) if skipped else self.assemble(collected.kept)
        t_update = time.time()
        stats = {} if skipped else self.learner.update(batch)
        self.step_count += 1
        t_sync = time.time()
        self.sync_weights()
        collected.info["time/weight_sync"] = time.time() - t_sync
        self.sampled_tokens += sum(len(r.completion_ids) for r in collected.sampled)
        metrics = self.metrics(collected.kept, rewards, stats, collected.info)
        metrics["time/update"] = time.time() - t_update
        metrics["time/step"] = time.time() - t_start
        check_engine_gap(metrics, self.step_count, self.logger.log_event)
        self.logger.log(self.step_count, metrics)
        self.logger.log_samples(self.step_count, sample_rows(collected.sampled, self.cfg.logging.samples_per_step))
        return metrics

    # --- sampling -----------------------------------------------------------------------------------
    def encode(self, problem: Problem) -> list[int]:
        """Prompt token ids of `problem` (system prompt, chat template, response prefix)."""
        tools = None if self.environment is None else self.environment.prompt_tools
        return encode_prompt(problem, self.tokenizer, self.cfg.model.system_prompt, self.cfg.model.response_prefix,
                             tools)

    def next_problems(self, n: int) -> list[Problem]:
        """The next `n` training problems; the cursor moves past them."""
        problems = [self.task.train_problem(self.cursor + i) for i in range(n)]
        self.cursor += n
        return problems

    def sampling(self) -> SamplingParams:
        """How training groups are sampled: `num_generations` per prompt at the rollout temperature."""
        r = self.cfg.rollout
        return SamplingParams(r.num_generations, r.max_new_tokens, r.temperature, r.top_p, self.stop_ids,
                              r.ignore_eos, tuple(r.stop))

    def requests(self, problems: list[Problem], start: int) -> tuple[list[list[int]], list[int]]:
        """Prompt ids and sampling seeds of `problems`, which sit at cursor positions `start`, `start + 1`, ..."""
        prompts = [self.encode(p) for p in problems]
        return prompts, [sample_seed(self.cfg.train.seed, start + i) for i in range(len(problems))]

    def rollout(self, problems: list[Problem], start: int) -> list[Rollout]:
        """Sample the groups of `problems`, which sit at cursor positions `start`, `start + 1`, ..."""
        prompts, seeds = self.requests(problems, start)
        return self.generate(problems, prompts, self.sampling(), seeds)

    def generate(self, problems: list[Problem], prompts: list[list[int]], sampling: SamplingParams,
                 seeds: list[int]) -> list[Rollout]:
        """`sampling.n` rollouts of each prompt from the engine, one seed per prompt."""
        groups = generate_for(self.engine, problems, prompts, sampling, seeds=seeds)
        return self.to_rollouts(problems, prompts, groups, [self.engine.version] * len(problems))

    def to_rollouts(self, problems, prompts, groups, versions: list[int]) -> list[Rollout]:
        """Rollouts of sampled groups, each tagged with the policy version that sampled it."""
        rollouts = []
        for g, (problem, prompt, completions, version) in enumerate(zip(problems, prompts, groups, versions)):
            for c in completions:
                text = decode_completion(self.tokenizer, c.token_ids, self.cfg.model.response_prefix)
                rollouts.append(Rollout(problem, c.prompt_ids or prompt, c.token_ids, c.logprobs, text, c.finish_reason,
                                        g, policy_version=version, completion_mask=c.mask, episode=c.episode))
        return rollouts

    def score(self, rollouts: list[Rollout]) -> None:
        """Each rollout's `score` from the task's verifier, or from its environment where that gives the reward
        (`score_sample`). Where the sandbox could not run the candidate, the environment gave no reward, or the
        verifier itself failed (its `VerifierError` kept in `verifier_error`), the score stays None: no reward,
        never a 0."""
        for r in rollouts:
            if r.score is None:
                try:
                    r.score = score_sample(self.task.verify, r.problem, r.text, r.episode)
                    r.verifier_error = None
                except VerifierError as e:
                    r.verifier_error = e

    # --- the batch: the one place where samples are kept, dropped or screened ------------------------
    def collect(self) -> Collected:
        """Sample and score groups until the batch holds `prompts_per_step` of them: each draw's groups pass
        `keep_groups`, and while groups are missing (DAPO dynamic sampling) more prompts are drawn, up to
        `max_sampling_draws` draws. With `algorithm.screening`, `Screener.collect` finds the groups instead."""
        if self.screener is not None:
            return Collected(*self.screener.collect(self.draw, self.sample, self.task.observe))
        a, B, G = self.cfg.algorithm, self.cfg.train.prompts_per_step, self.cfg.rollout.num_generations
        kept: list[Rollout] = []
        sampled: list[Rollout] = []
        info = {"time/generate": 0.0, "time/verify": 0.0, "dynamic/draws": 0, "dynamic/dropped_groups": 0}
        for draw in range(a.max_sampling_draws if a.dynamic_sampling else 1):
            t0 = time.time()
            start = self.cursor
            rollouts = self.rollout(self.next_problems(B - len(kept) // G), start)
            t1 = time.time()
            self.score(rollouts)
            self.check_infra(rollouts, info)
            for g in range(0, len(rollouts), G):  # e.g. filter_solved learns which problems are always solved
                if scored_group(rollouts[g : g + G]):
                    self.task.observe(rollouts[g].problem, [r.score.correct for r in rollouts[g : g + G]])
            info["time/generate"] += t1 - t0
            info["time/verify"] += time.time() - t1
            info["dynamic/draws"] = draw + 1
            sampled += rollouts
            keep = self.keep_groups(rollouts)
            info["dynamic/dropped_groups"] += int((~keep).sum())
            for g in torch.nonzero(keep).flatten().tolist():
                kept += rollouts[g * G : (g + 1) * G]
            if len(kept) // G >= B:
                kept = kept[: B * G]
                break
        if not kept:  # every group was constant: nothing to learn from, train on the last draw (zero advantage)
            kept = [r for g in range(0, len(rollouts), G) for r in rollouts[g : g + G]
                    if scored_group(rollouts[g : g + G])]
        return Collected(kept, sampled, info)

    def draw(self, n: int) -> tuple[list[Problem], int]:
        """The next `n` training problems and the cursor position of the first."""
        start = self.cursor
        return self.next_problems(n), start

    def sample(self, problems: list[Problem], positions: list[int], n: int, salts: list[int], info: dict
               ) -> list[Rollout]:
        """`n` scored samples of each of `problems` (at cursor `positions`), seeded by position and salt (see
        `salted_seed`); generation and verification times add to `info`."""
        t0 = time.time()
        prompts = [self.encode(p) for p in problems]
        seeds = [salted_seed(self.cfg.train.seed, i, salt) for i, salt in zip(positions, salts)]
        sampling = self.sampling()
        sampling.n = n
        rollouts = self.generate(problems, prompts, sampling, seeds)
        t1 = time.time()
        self.score(rollouts)
        self.check_infra(rollouts, info)
        info["time/generate"] += t1 - t0
        info["time/verify"] += time.time() - t1
        return rollouts

    def keep_groups(self, rollouts: list[Rollout]) -> torch.Tensor:
        """(groups,) bool: which groups of a draw join the batch. All of them; with DAPO dynamic sampling only
        those whose rewards differ (a constant group has zero advantage: it teaches nothing)."""
        G = self.cfg.rollout.num_generations
        scored = torch.tensor([scored_group(rollouts[g : g + G]) for g in range(0, len(rollouts), G)],
                              dtype=torch.bool)  # (groups,)
        if not self.cfg.algorithm.dynamic_sampling:
            return scored
        rewards = torch.tensor([r.score.reward if r.score is not None else 0.0 for r in rollouts])
        return scored & nonconstant_groups(rewards, G)

    def check_infra(self, rollouts: list[Rollout], info: dict) -> None:
        """Count the samples with no reward, by cause (`rlvr.faults.count_unscored`: the sandbox's or the
        environment's fault, or the verifier's own), leave their groups out, and stop the run past a limit."""
        count_unscored(rollouts, self.cfg.rollout.num_generations, self.cfg.train, info, self.step_count + 1,
                       self.logger.log_event, totals=self)

    def assemble(self, rollouts: list[Rollout]) -> tuple[Batch, torch.Tensor]:
        """The learner's batch from the kept groups, and their (N,) rewards (`assemble_batch`)."""
        return assemble_batch(rollouts, self.cfg.algorithm, self.cfg.rollout, self.tokenizer.pad_token_id,
                              self.learner.reference_logprobs)

    def metrics(self, rollouts: list[Rollout], rewards: torch.Tensor | None, stats: dict, info: dict
                ) -> dict[str, float]:
        """The step's diagnostics: reward, accuracy, format, lengths and spread of the trained groups (none
        when no group was kept), the learner's stats, the sampling info and the task's counters (by task
        when there are several)."""
        G = self.cfg.rollout.num_generations
        m = {"phase": "rl", **(batch_metrics(rollouts, rewards, G) if rollouts else {}),
             "update/skipped": int(not rollouts), "update/skipped_total": self.skipped_steps,
             "sampled_tokens": self.sampled_tokens, "cursor": self.cursor,
             "verify/infra_errors_total": self.infra_errors, "verify/verifier_errors_total": self.verifier_errors,
             **stats, **info, **self.task.stats(),
             **episode_metrics(rollouts)}
        return m

    # --- the loop -----------------------------------------------------------------------------------
    def run_eval(self, phase: str) -> dict:
        """Held-out evaluation of the current policy, logged to eval.jsonl under `phase`."""
        result = evaluate_held_out(self.cfg, self.engine, self.tokenizer, self.task, self.generator, keep=8)
        examples = result.pop("examples")
        self.logger.log_eval(self.step_count, {"phase": phase, **result})
        result["examples"] = examples
        return result

    def run(self, progress: bool | None = None) -> dict:
        """Train until `train.steps`, evaluating and checkpointing on schedule; returns the last step's metrics."""
        total = self.cfg.train.steps
        every = self.cfg.train.checkpoint_every
        last: dict[str, float] = {}
        show = self.cfg.logging.progress if progress is None else progress
        if show:
            print(self.header(), flush=True)
        if self.cfg.eval.every and self.step_count == 0:  # the starting point of the eval curve
            self.run_eval("initial")
        with Progress(total, "RL (GRPO family)", enabled=show) as bar:
            bar.update(self.step_count, {})
            while self.step_count < total:
                metrics = self.step()
                if self.cfg.eval.every and self.step_count % self.cfg.eval.every == 0:
                    metrics["eval/accuracy"] = self.run_eval("rl")["accuracy"]
                if (every and self.step_count % every == 0) or self.step_count == total:
                    self.save_checkpoint()
                bar.update(self.step_count, metrics)
                last = metrics
        self.save_final()
        return last

    def save_final(self) -> None:
        """The trained policy in `run_dir/final` (LoRA merged unless `model.merge_lora` is off)."""
        save_policy(self.model, self.tokenizer, self.run_dir / "final", merge=self.cfg.model.merge_lora)

    def close(self) -> None:
        """Release what the run holds beyond this process (nothing here; actors with Ray)."""

    # --- checkpoints --------------------------------------------------------------------------------
    def counters(self) -> dict[str, int]:
        """Run-long counts that the metrics report cumulatively, saved so a resume goes on."""
        return {"infra_errors": self.infra_errors, "verifier_errors": self.verifier_errors,
                "skipped_steps": self.skipped_steps}

    def load_counters(self, counters: dict[str, int]) -> None:
        """Restore what `counters` saved."""
        self.infra_errors = counters.get("infra_errors", 0)
        self.verifier_errors = counters.get("verifier_errors", 0)
        self.skipped_steps = counters.get("skipped_steps", 0)

    def save_checkpoint(self) -> Path:
        state = {
            "step": self.step_count,
            "cursor": self.cursor,
            "sampled_tokens": self.sampled_tokens,
            "learner": self.learner.state_dict(),
            "rng": rng_state(self.generator),
            "task": self.task.state_dict(),
            "counters": self.counters(),
            "screening": self.screener.state_dict() if self.screener else {},
        }
        return save_checkpoint(self.run_dir, self.step_count, lambda d: save_policy(self.model, self.tokenizer, d),
                               state)

    def _load_state(self, checkpoint: Path) -> None:
        state = torch.load(checkpoint / "state.pt", map_location="cpu", weights_only=False)
        self.step_count, self.cursor = state["step"], state["cursor"]
        self.sampled_tokens = state["sampled_tokens"]
        self.learner.load_state_dict(state["learner"])
        self.task.load_state_dict(state.get("task", {}))
        restore_rng(state["rng"], self.generator)
        self.load_counters(state.get("counters", {}))
        if self.screener is not None:
            self.screener.load_state_dict(state.get("screening", {}))
        restore_metric_files(checkpoint, self.run_dir)
        self.sync_weights()
