"""Turning rollouts into the learner's `Batch`, and padded imitation batches."""

from __future__ import annotations

import torch

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
