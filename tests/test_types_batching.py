"""Rollouts -> the learner's right-padded `Batch`: per-token tensors aligned with the targets `ids[:, 1:]`."""

from __future__ import annotations

import torch

from rlvr.batching import make_batch, pad_sequences
from rlvr.types import Problem, Rollout, Score

PAD = 0
PROBLEM = Problem(id="p0", prompt="1+2=", answer=3, task="arithmetic")


def _rollouts() -> list[Rollout]:
    return [
        Rollout(
            PROBLEM,
            prompt_ids=[1, 10, 11],
            completion_ids=[20, 21, 2],
            logprobs=[-0.1, -0.2, -0.3],
            text="",
            finish_reason="stop",
        ),
        Rollout(
            PROBLEM,
            prompt_ids=[1, 12],
            completion_ids=[22],
            logprobs=[-0.5],
            text="",
            finish_reason="length",
            group=1,
        ),
        Rollout(
            PROBLEM,
            prompt_ids=[1, 13, 14, 15],
            completion_ids=[],
            logprobs=[],
            text="",
            finish_reason="length",
            group=1,
        ),
    ]


def test_make_batch_on_a_hand_made_example():
    batch = make_batch(_rollouts(), torch.tensor([1.0, -1.0, 0.0]), PAD)
    assert torch.equal(
        batch.input_ids, torch.tensor([[1, 10, 11, 20, 21, 2], [1, 12, 22, 0, 0, 0], [1, 13, 14, 15, 0, 0]])
    )
    assert torch.equal(
        batch.attention_mask, torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 0, 0]])
    )
    # Position t predicts input_ids[:, t + 1]: the mask covers exactly the completion targets.
    assert torch.equal(
        batch.completion_mask, torch.tensor([[0.0, 0, 1, 1, 1], [0, 1, 0, 0, 0], [0, 0, 0, 0, 0]])
    )
    assert torch.allclose(
        batch.old_logprobs, torch.tensor([[0.0, 0, -0.1, -0.2, -0.3], [0, -0.5, 0, 0, 0], [0, 0, 0, 0, 0]])
    )
    assert batch.advantages.dtype == torch.float32 and batch.advantages.tolist() == [1.0, -1.0, 0.0]
    assert batch.ref_logprobs is None and len(batch) == 3


def test_masked_targets_are_the_completions():
    rollouts = _rollouts()
    batch = make_batch(rollouts, torch.zeros(3), PAD)
    targets = batch.input_ids[:, 1:]
    for i, r in enumerate(rollouts):
        on = batch.completion_mask[i].bool()
        assert targets[i][on].tolist() == r.completion_ids
        assert batch.old_logprobs[i][on].tolist() == torch.tensor(r.logprobs).tolist()


def test_select_keeps_rows_together():
    batch = make_batch(_rollouts(), torch.tensor([1.0, -1.0, 0.5]), PAD)
    batch.ref_logprobs = torch.arange(15, dtype=torch.float32).reshape(3, 5)
    part = batch.select(torch.tensor([2, 0]))
    assert torch.equal(part.input_ids, batch.input_ids[[2, 0]])
    assert torch.equal(part.completion_mask, batch.completion_mask[[2, 0]])
    assert torch.equal(part.ref_logprobs, batch.ref_logprobs[[2, 0]])
    assert part.advantages.tolist() == [0.5, 1.0]
    assert len(batch.select(slice(1, 3))) == 2


def test_pad_sequences_masks_the_solution_only():
    ids, attn, lmask = pad_sequences([[1, 5, 6, 7, 2], [1, 8, 2]], loss_from=[2, 2], pad_token_id=PAD)
    assert torch.equal(ids, torch.tensor([[1, 5, 6, 7, 2], [1, 8, 2, 0, 0]]))
    assert torch.equal(attn, torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]))
    # Targets ids[:, 1:]: row 0 learns 6, 7, 2 (from index 2 on), row 1 learns 2.
    assert torch.equal(lmask, torch.tensor([[0.0, 1, 1, 1], [0, 1, 0, 0]]))


def test_score_to_dict():
    score = Score(1.1, True, True, {"parsed": 3})
    assert score.to_dict() == {"reward": 1.1, "correct": True, "formatted": True, "details": {"parsed": 3}}
