"""The data model shared by every part of rlvr: plain dataclasses, no behaviour beyond helpers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: the data model (and so a config or a task) loads without torch
    import torch


@dataclass
class Problem:
    """One verifiable question.

    `prompt` is plain text or a list of chat messages (`{"role", "content"}`); `answer` is whatever the
    task's verifier needs (a number, an expression, a choice letter, test cases).
    """

    id: str
    prompt: str | list[dict[str, str]]
    answer: Any
    task: str
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Score:
    """A verifier's verdict: `reward` is what the learner sees; `details` says why (parsed answer, error)."""

    reward: float
    correct: bool
    formatted: bool
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"reward": self.reward, "correct": self.correct, "formatted": self.formatted, "details": self.details}


@dataclass
class Rollout:
    """One sampled completion of one problem, with the log-probs of the policy that sampled it."""

    problem: Problem
    prompt_ids: list[int]
    completion_ids: list[int]
    logprobs: list[float]
    text: str
    finish_reason: str  # "stop" | "length"
    group: int = 0  # index of the prompt group inside its step
    score: Score | None = None
    policy_version: int = 0


@dataclass
class Batch:
    """Tensors the learner needs, right-padded; built by `rlvr.batching.make_batch`.

    `input_ids`/`attention_mask` are (N, T) over prompt + completion. The per-token tensors are (N, T-1) and
    aligned with the targets `input_ids[:, 1:]`: `completion_mask[i, t]` is 1 when target t+1 is a completion
    token, and `old_logprobs[i, t]` is its sampling log-prob (zero off the completion).
    """

    input_ids: torch.Tensor  # (N, T) long
    attention_mask: torch.Tensor  # (N, T) long
    completion_mask: torch.Tensor  # (N, T-1) float
    old_logprobs: torch.Tensor  # (N, T-1) float
    advantages: torch.Tensor  # (N,) float
    ref_logprobs: torch.Tensor | None = None  # (N, T-1) float, only when a KL term is used

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def select(self, idx: torch.Tensor | slice) -> Batch:
        """Rows `idx` of every tensor (for micro-batching)."""
        ref = None if self.ref_logprobs is None else self.ref_logprobs[idx]
        return Batch(
            self.input_ids[idx],
            self.attention_mask[idx],
            self.completion_mask[idx],
            self.old_logprobs[idx],
            self.advantages[idx],
            ref,
        )
