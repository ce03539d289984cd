"""The engine protocol: the trainer talks to every rollout engine through these types only."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import torch


@dataclass
class SamplingParams:
    """How to sample. `temperature=0` is greedy; log-probs are those of the temperature-scaled policy
    (the learner scales its logits the same way), so importance ratios compare like with like."""

    n: int = 1
    max_new_tokens: int = 64
    temperature: float = 1.0
    top_p: float = 1.0
    stop_token_ids: tuple[int, ...] = field(default_factory=tuple)


@dataclass
class Completion:
    """One sampled continuation: its tokens (stop token included), their log-probs, and why it ended."""

    token_ids: list[int]
    logprobs: list[float]
    finish_reason: str  # "stop" | "length"


class Engine(Protocol):
    def generate(self, prompts: list[list[int]], sampling: SamplingParams,
                 generator: torch.Generator | None = None) -> list[list[Completion]]:
        """`sampling.n` completions for each prompt (token ids, no padding), grouped by prompt."""

    def load_weights(self, state: dict[str, torch.Tensor] | None, version: int) -> None:
        """Make the engine sample from these weights (policy `version`) from now on."""
