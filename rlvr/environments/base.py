"""The environment protocol: a problem opens an episode; the episode answers each model turn with an
observation (tool output, an error message, a new question) or ends it; the task's verifier scores the final
transcript.

A model turn ends where the model writes one of the environment's `pause_strings` (the end of a tool call)
or a stop token (end of sequence, `</answer>`). The engine (rlvr.rollout.episodes) then calls
`episode.respond(turn_text)` for every row that paused, concurrently; a returned string is tokenized and
appended (masked from the loss), None ends the episode. A single-turn task is the one-turn case:
`SingleTurn` never pauses and ends every episode after its first turn, and the engine it wraps runs its
plain single-turn path unchanged.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from rlvr.types import EpisodeRecord, Problem


class Episode(ABC):
    """One episode's state; `record` counts turns and tool calls as they happen."""

    def __init__(self) -> None:
        self.record = EpisodeRecord()

    @abstractmethod
    def respond(self, turn: str) -> str | None:
        """The observation that answers model turn `turn` (its text since the last observation), or None
        to end the episode. Never raises for anything the model wrote."""

    def cut(self, turn: str) -> None:
        """The episode's last turn, `turn`, was cut by the token budget: nothing answers it and the episode
        ends. Counted as a turn; an environment that judges every turn (the adapters) judges this one here."""
        self.record.turns += 1

    def close(self) -> None:
        """Release what the episode holds (default: nothing). The engine calls it for every episode of a
        batch once decoding ends, however each ended."""
        return None


class Environment(ABC):
    """Opens episodes. `pause_strings`: where a model turn ends besides a stop token; `max_tokens`: the
    completion budget of an episode (model and observation tokens; None: the sampling's max_new_tokens);
    `prompt_tools`: what prompts pass to the chat template as `tools=` (None: nothing)."""

    multi_turn: bool = True
    pause_strings: tuple[str, ...] = ()
    max_tokens: int | None = None
    prompt_tools: list[dict] | None = None  # function schemas the chat template shows the model (json form)

    @abstractmethod
    def open(self, problem: Problem | None) -> Episode:
        """A fresh episode for `problem` (None when the caller samples from bare prompts)."""


class _OneTurn(Episode):
    def respond(self, turn: str) -> str | None:
        self.record.turns += 1
        return None


class SingleTurn(Environment):
    """The one-turn case: the model answers once, nothing answers back."""

    multi_turn = False

    def open(self, problem: Problem | None) -> Episode:
        return _OneTurn()


def build_environment(task_cfg, tokenizer, max_new_tokens: int, response_prefix: str | None = None) -> Environment:
    """The environment of a `TaskConfig`: a library's environment (`task.environment`, see
    rlvr.environments.adapters), else `SingleTurn` without `tools`, else a `ToolEnvironment`.
    `response_prefix` (model.response_prefix) is the start of the model's first turn, written in the prompt:
    a reply primed with `<call>calculator ` opens a call there."""
    if getattr(task_cfg, "environment", None):
        from rlvr.environments.adapters import build_adapter

        return build_adapter(task_cfg, tokenizer, max_new_tokens)
    if not task_cfg.tools:
        return SingleTurn()
    from rlvr.environments.parsing import build_format
    from rlvr.environments.tool_env import ToolEnvironment
    from rlvr.environments.tools import build_tool

    e = task_cfg.episode
    return ToolEnvironment([build_tool(t) for t in task_cfg.tools], build_format(e.tool_format, tokenizer),
                           max_turns=e.max_turns, max_tool_calls=e.max_tool_calls, timeout_s=e.tool_timeout_s,
                           max_tokens=min(e.max_tokens or max_new_tokens, max_new_tokens),
                           max_observation_chars=e.max_observation_chars, response_prefix=response_prefix)
