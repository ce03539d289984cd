"""The data model shared by every part of rlvr: plain dataclasses, no behaviour beyond helpers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: the data model (and so a config or a task) loads without torch
    import torch

    from rlvr.verifiers import VerifierError


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
    # Multi-turn episodes (rlvr.environments): `completion_ids` interleaves model-written and observation
    # tokens; `completion_mask[i]` is 1 where the model wrote token i (only those carry log-probs, advantages
    # and gradient) and 0 for observation tokens (their `logprobs` entry is 0). None: every token is the model's.
    completion_mask: list[int] | None = None
    episode: EpisodeRecord | None = None
    # Why `score` is None where the verifier itself failed on this sample (no reward, counted apart from the
    # sandbox's and the environment's faults in `verify/verifier_errors`); None otherwise.
    verifier_error: VerifierError | None = None


@dataclass
class ToolCallRecord:
    """One tool call of an episode: the tool's name (as the model wrote it), and `error`, the kind of failure
    ("malformed", "unknown_tool", "bad_arguments", "raised", "timeout", "limit", "infra") or None on success."""

    tool: str
    error: str | None = None
    seconds: float = 0.0
    replayed_cells: int = 0  # python: earlier cells run again to restore the episode's state


@dataclass
class EpisodeRecord:
    """What happened in one episode: model turns, tool calls, and the token spans in the completion
    (`segments`: (role, start, end) with role "model" or "observation", in order)."""

    turns: int = 0
    calls: list[ToolCallRecord] = field(default_factory=list)
    segments: list[tuple[str, int, int]] = field(default_factory=list)
    transcript: list[tuple[str, str]] = field(default_factory=list)  # (role, text) of each segment
    ended: str = "answer"  # "answer" (the model ended it), "done" (the environment did), "max_turns", "length"
    # An environment that gives its own reward (rlvr.environments.adapters) scores the episode: `env_score` is
    # its verdict, None where it gave none (`env_error` says why: it raised, or the episode was cut first).
    env_scored: bool = False
    env_score: Score | None = None
    env_error: str | None = None

    @property
    def tool_errors(self) -> int:
        return sum(c.error is not None for c in self.calls)


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
