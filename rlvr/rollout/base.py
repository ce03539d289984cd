"""The engine protocol: the trainer talks to every rollout engine through these types only, and asks for
each prompt's samples with its own seed (`sample_seed`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import torch

from rlvr.types import EpisodeRecord


@dataclass
class SamplingParams:
    """How to sample. `temperature=0` is greedy; log-probs are those of the distribution sampled from: the
    temperature-scaled policy (the learner scales its logits the same way), renormalised over the nucleus
    with `top_p < 1`. `ignore_eos`: stop tokens do not end a completion (nor are they masked: they may be
    sampled), so every completion has exactly `max_new_tokens` tokens (fixed-length benchmarks). `stop`: strings
    that end a completion as a stop token does, the string kept."""

    n: int = 1
    max_new_tokens: int = 64
    temperature: float = 1.0
    top_p: float = 1.0
    stop_token_ids: tuple[int, ...] = field(default_factory=tuple)
    ignore_eos: bool = False
    # strings that end a completion, kept in it (`</answer>` after a reply primed with `<answer>`): the
    # completion ends with the token in which one of them is complete. Not with ignore_eos.
    stop: tuple[str, ...] = ()


@dataclass
class Completion:
    """One sampled continuation: its tokens (stop token included), their log-probs, and why it ended."""

    token_ids: list[int]
    logprobs: list[float]
    finish_reason: str  # "stop" | "length"
    # multi-turn episodes only (rlvr.rollout.episodes): 1 = model-written token, 0 = observation token
    mask: list[int] | None = None
    episode: EpisodeRecord | None = None
    # the prompt this sample continues, where the episode's own program rendered it (verifiers); None: the
    # prompt the engine was asked for
    prompt_ids: list[int] | None = None


class Engine(Protocol):
    """What every engine does, and all that the loop (and evaluation) asks of one: the torch engine, vLLM,
    and Ray's `RolloutPool` of rollout workers. The loop never asks which one it holds."""

    version: int  # the policy version it samples from: how many updates made the weights it holds

    def generate(self, prompts: list[list[int]], sampling: SamplingParams, generator: torch.Generator | None = None,
                 seeds: list[int] | None = None) -> list[list[Completion]]:
        """`sampling.n` completions for each prompt (token ids, no padding), grouped by prompt, each with the
        log-probs of the distribution it was sampled from. With `seeds` (one per prompt, see `sample_seed`) a
        prompt's samples depend only on its seed and the weights, never on the rest of the batch; without,
        `generator` draws them (evaluation)."""

    def load_weights(self, state: dict[str, torch.Tensor], version: int) -> None:
        """Sample from the policy `state` (its full state dict; across processes, a reference to one) from
        now on, and call it `version`. Tensors the engine already holds are skipped: the torch engine that
        shares the learner's model copies nothing."""


def sample_seed(seed: int, index: int) -> int:
    """The sampling seed of the problem at cursor `index` (splitmix64 of the pair): a problem's completions
    depend on the run's seed, its place in the stream and the weights only, never on how the batch is split."""
    x = (seed * 0x9E3779B97F4A7C15 + index + 1) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return (x ^ (x >> 31)) & 0x7FFFFFFFFFFFFFFF
