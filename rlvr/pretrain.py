"""The imitation phase: next-token training on a task's worked solutions (flawed teacher included).

The model sees `prompt + worked solution + EOS`; the loss covers the solution tokens only. The corpus is
drawn from the task's training stream, so held-out problems never appear in it.
"""

from __future__ import annotations

import random
import time

import torch

from rlvr.batching import pad_sequences
from rlvr.optim import autocast, build_optimizer, build_scheduler, clip_and_step, loss_scaler


def build_corpus(task, tokenizer, encode, num_examples: int, seed: int, observations: bool = False
                 ) -> tuple[list[list[int]], list[int], float, list, list[list[int]] | None]:
    """Tokenised worked solutions: (sequences, index where each solution starts, share correct, problems,
    loss masks). With `observations` (a task with tools) each solution is a transcript whose `<result>`
    observations are the environment's, not the model's: it is tokenized as the engine assembles it and its
    mask (one entry per token from the start on, the EOS included) is 0 on them, as the RL learner masks
    observations; without, the masks are None (every solution token is imitated)."""
    from rlvr.environments.parsing import transcript_ids

    rng = random.Random(seed)
    seqs, starts, correct, problems, masks = [], [], 0, [], []
    for i in range(num_examples):
        problem = task.train_problem(i)
        text, ok = task.worked_solution(problem, rng)
        prompt = encode(problem)
        ids, mask = transcript_ids(tokenizer, text) if observations else (
            tokenizer(text, add_special_tokens=False)["input_ids"], None)
        seqs.append(prompt + ids + [tokenizer.eos_token_id])
        starts.append(len(prompt))
        masks.append(None if mask is None else mask + [1])
        correct += ok
        problems.append(problem)
    return seqs, starts, correct / max(num_examples, 1), problems, masks if observations else None


def imitation_loss(model: torch.nn.Module, ids: torch.Tensor, attn: torch.Tensor, lmask: torch.Tensor,
                   compute_dtype: torch.dtype | None = None) -> torch.Tensor:
    """Mean next-token loss of `model` over the tokens `lmask` covers (a `pad_sequences` batch), the forward
    under autocast in `compute_dtype`."""
    with autocast(ids.device, compute_dtype):
        logits = model(input_ids=ids, attention_mask=attn).logits[:, :-1]
    nll = torch.nn.functional.cross_entropy(logits.float().transpose(1, 2), ids[:, 1:], reduction="none")
    return (nll * lmask).sum() / lmask.sum()


def pretrain(model: torch.nn.Module, tokenizer, corpus: tuple[list[list[int]], list[int]], cfg, seed: int = 0,
             on_step=None, compute_dtype: torch.dtype | None = None) -> dict[str, float]:
    """`cfg.steps` AdamW steps of `cfg.batch_size` random solutions; `on_step(step, metrics)` is called
    every step. Returns the final loss and the wall time. As in RL, the weights `model` holds (fp32 masters
    by default) are what the optimiser steps, and forward and backward run under autocast in `compute_dtype`.
    Also returns the tokens trained (those the loss covers)."""
    seqs, starts = corpus[:2]
    masks = corpus[2] if len(corpus) > 2 else None  # per-token loss masks (transcripts with observations)
    device = next(model.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    optimizer = build_optimizer(model, cfg.lr, 0.0)
    scheduler = build_scheduler(optimizer, cfg.warmup_steps, cfg.steps, "cosine")
    scaler = loss_scaler(model, compute_dtype)
    model.train()
    t0, loss_ema, tokens = time.time(), None, 0
    for step in range(cfg.steps):
        idx = torch.randint(len(seqs), (cfg.batch_size,), generator=gen).tolist()
        ids, attn, lmask = pad_sequences([seqs[i] for i in idx], [starts[i] for i in idx], tokenizer.pad_token_id,
                                         None if masks is None else [masks[i] for i in idx])
        ids, attn, lmask = ids.to(device), attn.to(device), lmask.to(device)
        loss = imitation_loss(model, ids, attn, lmask, compute_dtype)
        tokens += int(lmask.sum())
        (loss if scaler is None else scaler.scale(loss)).backward()
        clip_and_step(model, optimizer, scheduler, 1.0, scaler)
        loss_ema = loss.item() if loss_ema is None else 0.95 * loss_ema + 0.05 * loss.item()
        if on_step is not None:
            on_step(step + 1, {"pretrain/loss": loss.item(), "pretrain/lr": scheduler.get_last_lr()[0]})
    model.eval()
    return {"loss": loss_ema or 0.0, "seconds": time.time() - t0, "tokens": tokens}
