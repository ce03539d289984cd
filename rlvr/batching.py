"""Turning rollouts into the learner's `Batch` (rewards, shaping, advantages, masks) and its metrics, and padded
imitation batches."""

from __future__ import annotations

from collections.abc import Callable

import torch

from rlvr.algorithms.advantages import compute_advantages
from rlvr.algorithms.dapo import nonconstant_groups, overlong_penalty
from rlvr.algorithms.kl import kl_penalized_rewards
from rlvr.types import Batch, Rollout


def make_batch(rollouts: list[Rollout], advantages: torch.Tensor, pad_token_id: int) -> Batch:
    """Right-padded prompt+completion rows; per-token tensors are aligned with the targets `ids[:, 1:]`.

    `completion_mask[i, t]` is 1 when target token t+1 of row i is a completion token the model wrote (an
    episode's observation tokens are 0: no log-prob, advantage or gradient), and `old_logprobs[i, t]` is
    the sampling log-prob of that token.
    """
    lengths = [len(r.prompt_ids) + len(r.completion_ids) for r in rollouts]
    N, T = len(rollouts), max(lengths)
    ids = torch.full((N, T), pad_token_id, dtype=torch.long)
    attn = torch.zeros((N, T), dtype=torch.long)
    cmask = torch.zeros((N, T - 1), dtype=torch.float32)
    old = torch.zeros((N, T - 1), dtype=torch.float32)
    for i, r in enumerate(rollouts):
        P, C = len(r.prompt_ids), len(r.completion_ids)
        ids[i, : P + C] = torch.tensor(r.prompt_ids + r.completion_ids, dtype=torch.long)
        attn[i, : P + C] = 1
        if C:
            cmask[i, P - 1 : P - 1 + C] = 1.0 if r.completion_mask is None else \
                torch.tensor(r.completion_mask, dtype=torch.float32)
            old[i, P - 1 : P - 1 + C] = torch.tensor(r.logprobs, dtype=torch.float32)
    return Batch(ids, attn, cmask, old, advantages.float())


def pad_sequences(seqs: list[list[int]], loss_from: list[int], pad_token_id: int,
                  masks: list[list[int]] | None = None) -> tuple[torch.Tensor, ...]:
    """Imitation batch: (ids, attention_mask, loss_mask) where the loss covers tokens from `loss_from[i]` on
    (aligned with targets `ids[:, 1:]`, like `make_batch`); with `masks`, only those of them where `masks[i]`
    (one entry per token from `loss_from[i]` on) is 1: a transcript's tool observations are not imitated."""
    N, T = len(seqs), max(len(s) for s in seqs)
    ids = torch.full((N, T), pad_token_id, dtype=torch.long)
    attn = torch.zeros((N, T), dtype=torch.long)
    lmask = torch.zeros((N, T - 1), dtype=torch.float32)
    for i, (s, start) in enumerate(zip(seqs, loss_from)):
        ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
        attn[i, : len(s)] = 1
        lmask[i, start - 1 : len(s) - 1] = 1.0 if masks is None else torch.tensor(masks[i], dtype=torch.float32)
    return ids, attn, lmask


def assemble_batch(rollouts: list[Rollout], a, rollout, pad_token_id: int,
                   reference_logprobs: Callable[[Batch], torch.Tensor]) -> tuple[Batch, torch.Tensor]:
    """The learner's batch from whole groups of `rollout.num_generations` (contiguous, scored), and their (N,)
    rewards: the verifier's reward plus DAPO's overlong shaping, minus the KL penalty with `kl_in_reward`;
    advantages within each group; with `mask_truncated`, no loss on completions cut at the length limit.
    `a` is the algorithm config; `reference_logprobs(batch)` is called only when `a.kl_coef > 0`."""
    G = rollout.num_generations
    for i, r in enumerate(rollouts):  # groups renumbered in batch order
        r.group = i // G
    rewards = torch.tensor([r.score.reward for r in rollouts], dtype=torch.float32)  # (N,)
    if a.overlong_buffer > 0:
        lengths = torch.tensor([len(r.completion_ids) for r in rollouts])
        rewards = rewards + overlong_penalty(lengths, rollout.max_new_tokens, a.overlong_buffer, a.overlong_penalty)
    batch = make_batch(rollouts, torch.zeros(len(rollouts)), pad_token_id)
    if a.kl_coef > 0:
        batch.ref_logprobs = reference_logprobs(batch)
        if a.kl_in_reward:
            rewards = kl_penalized_rewards(rewards, batch.old_logprobs, batch.ref_logprobs, batch.completion_mask,
                                           a.kl_coef, a.kl_estimator)
    batch.advantages = compute_advantages(rewards, G, a.advantage, a.scale_rewards)
    if a.mask_truncated:
        truncated = torch.tensor([r.finish_reason == "length" for r in rollouts])
        batch.completion_mask[truncated] = 0.0
    return batch, rewards


def batch_metrics(rollouts: list[Rollout], rewards: torch.Tensor, G: int) -> dict[str, float]:
    """Reward, accuracy, format, lengths and group spread of the (non-empty) trained groups of G, and the
    accuracy per task when they come from several."""
    lengths = torch.tensor([len(r.completion_ids) for r in rollouts], dtype=torch.float32)
    correct = torch.tensor([r.score.correct for r in rollouts], dtype=torch.float32)
    spread = nonconstant_groups(rewards, G)
    m = {
        "reward/mean": float(rewards.mean()),
        "reward/std": float(rewards.std()) if len(rewards) > 1 else 0.0,
        "accuracy": float(correct.mean()),
        "format_rate": sum(r.score.formatted for r in rollouts) / len(rollouts),
        "response_length/mean": float(lengths.mean()),
        "response_length/max": float(lengths.max()),
        "truncated_frac": sum(r.finish_reason == "length" for r in rollouts) / len(rollouts),
        "groups/all_equal_frac": float((~spread).float().mean()),
        "groups/informative_frac": float(spread.float().mean()),
    }
    tasks = sorted({r.problem.task for r in rollouts})
    if len(tasks) > 1:
        for t in tasks:
            sel = [r.score.correct for r in rollouts if r.problem.task == t]
            m[f"accuracy/{t}"] = sum(sel) / len(sel)
    return m
