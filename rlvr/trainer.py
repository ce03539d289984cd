"""The RL loop: problems -> rollouts -> scores -> advantages -> update -> new weights. Orchestration only.

One step (see `Trainer.step`):
1. take `prompts_per_step` problems from the task (seeded cursor, stored in checkpoints);
2. the engine samples `num_generations` completions for each, with their log-probs;
3. every completion is scored by the task's verifier;
4. advantages are computed inside each group;
5. the learner runs the policy loss (one or more passes);
6. the engine gets the new weights; metrics, samples and (on schedule) a checkpoint are written.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from rlvr.algorithms.advantages import compute_advantages
from rlvr.algorithms.dapo import nonconstant_groups, overlong_penalty
from rlvr.algorithms.kl import kl_estimate
from rlvr.batching import make_batch
from rlvr.checkpoint import latest_checkpoint, restore_metric_files, save_checkpoint
from rlvr.config import Config, save_config
from rlvr.evaluate import evaluate_held_out
from rlvr.learner import Learner
from rlvr.logging.metrics import MetricsLogger
from rlvr.logging.progress import Progress
from rlvr.models.loading import decode_completion, encode_prompt, save_policy, stop_token_ids
from rlvr.models.policy import build_policy
from rlvr.rng import restore_rng, rng_state, seed_everything
from rlvr.rollout import build_engine
from rlvr.rollout.base import SamplingParams, sample_seed
from rlvr.tasks.registry import build_task
from rlvr.types import Problem, Rollout
from rlvr.verifiers import safe_score


class Trainer:
    """Builds the parts from a `Config` and runs the loop; `resume=True` continues from the last checkpoint."""

    def __init__(self, cfg: Config, run_dir: str | Path | None = None, resume: bool = False, task=None,
                 logger: MetricsLogger | None = None):
        self.cfg = cfg
        self.run_dir = Path(run_dir or cfg.train.out_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        seed_everything(cfg.train.seed)
        self.task = task or build_task(cfg.task, eval_size=cfg.eval.num_problems)
        checkpoint = latest_checkpoint(self.run_dir) if resume else None
        if resume and checkpoint is None:
            raise FileNotFoundError(f"--resume: no complete checkpoint under {self.run_dir / 'checkpoints'}")
        self.build_parts(checkpoint)
        self.generator = torch.Generator(device=self.device).manual_seed(cfg.train.seed)
        self.stop_ids = stop_token_ids(self.tokenizer)
        self.step_count, self.cursor, self.sampled_tokens = 0, 0, 0
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
        self.engine = build_engine(cfg, self.model, self.tokenizer, self.device)
        self.learner = Learner(self.model, cfg.train, cfg.algorithm, cfg.rollout.temperature,
                               cfg.rollout.max_new_tokens, self.ref_model)

    def sync_weights(self) -> None:
        """After an update: the engine samples from the new weights, policy version `step_count` (an engine
        that shares the learner's model copies nothing)."""
        self.engine.load_weights(self.model.state_dict(), self.step_count)

    # --- parts of a step ----------------------------------------------------------------------------
    def encode(self, problem: Problem) -> list[int]:
        return encode_prompt(problem, self.tokenizer, self.cfg.model.system_prompt, self.cfg.model.response_prefix)

    def next_problems(self, n: int) -> list[Problem]:
        problems = [self.task.train_problem(self.cursor + i) for i in range(n)]
        self.cursor += n
        return problems

    def sampling(self) -> SamplingParams:
        r = self.cfg.rollout
        return SamplingParams(r.num_generations, r.max_new_tokens, r.temperature, r.top_p, self.stop_ids)

    def requests(self, problems: list[Problem], start: int) -> tuple[list[list[int]], list[int]]:
        """Prompt ids and sampling seeds of `problems`, which sit at cursor positions `start`, `start + 1`, ..."""
        prompts = [self.encode(p) for p in problems]
        return prompts, [sample_seed(self.cfg.train.seed, start + i) for i in range(len(problems))]

    def rollout(self, problems: list[Problem], start: int) -> list[Rollout]:
        """Sample the groups of `problems`, which sit at cursor positions `start`, `start + 1`, ..."""
        prompts, seeds = self.requests(problems, start)
        groups = self.engine.generate(prompts, self.sampling(), seeds=seeds)
        return self.to_rollouts(problems, prompts, groups, [self.engine.version] * len(problems))

    def to_rollouts(self, problems, prompts, groups, versions: list[int]) -> list[Rollout]:
        """Rollouts of sampled groups, each tagged with the policy version that sampled it."""
        rollouts = []
        for g, (problem, prompt, completions, version) in enumerate(zip(problems, prompts, groups, versions)):
            for c in completions:
                text = decode_completion(self.tokenizer, c.token_ids, self.cfg.model.response_prefix)
                rollouts.append(Rollout(problem, prompt, c.token_ids, c.logprobs, text, c.finish_reason, g,
                                        policy_version=version))
        return rollouts

    def score(self, rollouts: list[Rollout]) -> None:
        for r in rollouts:
            r.score = safe_score(self.task.verify, r.problem, r.text)

    def collect(self) -> tuple[list[Rollout], dict[str, float]]:
        """Sample and score one step's groups; with DAPO dynamic sampling, drop groups whose rewards are all
        equal and draw more prompts until the batch is full or `max_sampling_draws` is reached."""
        a, B, G = self.cfg.algorithm, self.cfg.train.prompts_per_step, self.cfg.rollout.num_generations
        kept: list[Rollout] = []
        info = {"time/generate": 0.0, "time/verify": 0.0, "dynamic/draws": 0, "dynamic/dropped_groups": 0}
        all_rollouts: list[Rollout] = []
        for draw in range(a.max_sampling_draws if a.dynamic_sampling else 1):
            need = B - len(kept) // G
            t0 = time.time()
            start = self.cursor
            rollouts = self.rollout(self.next_problems(need), start)
            t1 = time.time()
            self.score(rollouts)
            for g in range(0, len(rollouts), G):  # e.g. filter_solved learns which problems are always solved
                self.task.observe(rollouts[g].problem, [r.score.correct for r in rollouts[g : g + G]])
            info["time/generate"] += t1 - t0
            info["time/verify"] += time.time() - t1
            info["dynamic/draws"] = draw + 1
            all_rollouts += rollouts
            if not a.dynamic_sampling:
                kept = rollouts
                break
            rewards = torch.tensor([r.score.reward for r in rollouts])
            keep = nonconstant_groups(rewards, G)
            info["dynamic/dropped_groups"] += int((~keep).sum())
            for g in torch.nonzero(keep).flatten().tolist():
                kept += rollouts[g * G : (g + 1) * G]
            if len(kept) // G >= B:
                kept = kept[: B * G]
                break
        if not kept:  # every group was constant: nothing to learn from, train on the last draw (zero advantage)
            kept = rollouts
        self._all_rollouts = all_rollouts
        return kept, info

    def rewards_for(self, rollouts: list[Rollout]) -> torch.Tensor:
        """Verifier rewards plus DAPO's overlong shaping (when configured)."""
        a = self.cfg.algorithm
        rewards = torch.tensor([r.score.reward for r in rollouts], dtype=torch.float32)
        if a.overlong_buffer > 0:
            lengths = torch.tensor([len(r.completion_ids) for r in rollouts])
            rewards = rewards + overlong_penalty(lengths, self.cfg.rollout.max_new_tokens, a.overlong_buffer,
                                                 a.overlong_penalty)
        return rewards

    # --- one step -----------------------------------------------------------------------------------
    def step(self) -> dict[str, float]:
        a, G = self.cfg.algorithm, self.cfg.rollout.num_generations
        t_start = time.time()
        rollouts, info = self.collect()
        for i, r in enumerate(rollouts):
            r.group = i // G
        rewards = self.rewards_for(rollouts)
        batch = make_batch(rollouts, torch.zeros(len(rollouts)), self.tokenizer.pad_token_id)
        if a.kl_coef > 0:
            batch.ref_logprobs = self.learner.reference_logprobs(batch)
            if a.kl_in_reward:  # KL folded into the reward, per sequence
                seq_kl = (kl_estimate(batch.old_logprobs, batch.ref_logprobs, a.kl_estimator)
                          * batch.completion_mask).sum(-1)
                rewards = rewards - a.kl_coef * seq_kl
        batch.advantages = compute_advantages(rewards, G, a.advantage, a.scale_rewards)
        if a.mask_truncated:
            truncated = torch.tensor([r.finish_reason == "length" for r in rollouts])
            batch.completion_mask[truncated] = 0.0
        t_update = time.time()
        stats = self.learner.update(batch)
        self.step_count += 1
        t_sync = time.time()
        self.sync_weights()
        info["time/weight_sync"] = time.time() - t_sync
        self.sampled_tokens += sum(len(r.completion_ids) for r in self._all_rollouts)
        metrics = self._metrics(rollouts, rewards, stats, info)
        metrics["time/update"] = time.time() - t_update
        metrics["time/step"] = time.time() - t_start
        return metrics

    def _metrics(self, rollouts, rewards, stats, info) -> dict[str, float]:
        G = self.cfg.rollout.num_generations
        lengths = torch.tensor([len(r.completion_ids) for r in rollouts], dtype=torch.float32)
        correct = torch.tensor([r.score.correct for r in rollouts], dtype=torch.float32)
        m = {
            "phase": "rl",
            "reward/mean": float(rewards.mean()),
            "reward/std": float(rewards.std()) if len(rewards) > 1 else 0.0,
            "accuracy": float(correct.mean()),
            "format_rate": sum(r.score.formatted for r in rollouts) / len(rollouts),
            "response_length/mean": float(lengths.mean()),
            "response_length/max": float(lengths.max()),
            "truncated_frac": sum(r.finish_reason == "length" for r in rollouts) / len(rollouts),
            "groups/all_equal_frac": float((~nonconstant_groups(rewards, G)).float().mean()),
            "sampled_tokens": self.sampled_tokens,
            "cursor": self.cursor,
            **stats,
            **info,
            **self.task.stats(),
        }
        tasks = sorted({r.problem.task for r in rollouts})
        if len(tasks) > 1:
            for t in tasks:
                sel = [r.score.correct for r in rollouts if r.problem.task == t]
                m[f"accuracy/{t}"] = sum(sel) / len(sel)
        return m

    # --- the loop -----------------------------------------------------------------------------------
    def run_eval(self, phase: str) -> dict:
        result = evaluate_held_out(self.cfg, self.engine, self.tokenizer, self.task, self.generator, keep=8)
        examples = result.pop("examples")
        self.logger.log_eval(self.step_count, {"phase": phase, **result})
        result["examples"] = examples
        return result

    def run(self, progress: bool | None = None) -> dict:
        """Train until `train.steps`; returns the last step's metrics."""
        total = self.cfg.train.steps
        every = self.cfg.train.checkpoint_every
        last: dict[str, float] = {}
        show = self.cfg.logging.progress if progress is None else progress
        if self.cfg.eval.every and self.step_count == 0:  # the starting point of the eval curve
            self.run_eval("initial")
        with Progress(total, "RL (GRPO family)", enabled=show) as bar:
            bar.update(self.step_count, {})
            while self.step_count < total:
                metrics = self.step()
                self.logger.log(self.step_count, metrics)
                self.logger.log_samples(self.step_count, self._samples())
                if self.cfg.eval.every and self.step_count % self.cfg.eval.every == 0:
                    metrics["eval/accuracy"] = self.run_eval("rl")["accuracy"]
                if (every and self.step_count % every == 0) or self.step_count == total:
                    self.save_checkpoint()
                bar.update(self.step_count, metrics)
                last = metrics
        self.save_final()
        return last

    def save_final(self) -> None:
        save_policy(self.model, self.tokenizer, self.run_dir / "final", merge=self.cfg.model.merge_lora)

    def close(self) -> None:
        """Release what the run holds beyond this process (nothing here; actors with Ray)."""

    def _samples(self) -> list[dict]:
        k = self.cfg.logging.samples_per_step
        picked = self._all_rollouts[:: max(1, len(self._all_rollouts) // max(k, 1))][:k]
        return [{"task": r.problem.task, "prompt": r.problem.prompt if isinstance(r.problem.prompt, str)
                 else str(r.problem.prompt), "completion": r.text, "reward": r.score.reward,
                 "correct": r.score.correct, "formatted": r.score.formatted, "details": r.score.details}
                for r in picked]

    # --- checkpoints --------------------------------------------------------------------------------
    def counters(self) -> dict[str, int]:
        """Run-long counts that the metrics report cumulatively (none here), saved so a resume goes on."""
        return {}

    def load_counters(self, counters: dict[str, int]) -> None:
        """Restore what `counters` saved."""

    def save_checkpoint(self) -> Path:
        state = {
            "step": self.step_count,
            "cursor": self.cursor,
            "sampled_tokens": self.sampled_tokens,
            "learner": self.learner.state_dict(),
            "rng": rng_state(self.generator),
            "task": self.task.state_dict(),
            "counters": self.counters(),
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
        restore_metric_files(checkpoint, self.run_dir)
        self.sync_weights()
