"""Multi-turn episodes: environments that answer the model's turns, and the tools they run.

- `base`: the protocol (`Environment.open(problem) -> Episode`, `Episode.respond(turn) -> observation | None`)
  and `SingleTurn`, the one-turn case every plain task is;
- `tool_env`: `ToolEnvironment`, which answers tool calls (limits and error observations);
- `tools`: `calculator`, `python` (sandbox, state by replay) and user tools (`module:function`);
- `parsing`: the one tool-call parser, for the chat template's `<tool_call>` JSON, Llama 3's bare JSON turn
  and the `<call>` tag form;
- `metrics`: turns, tool calls by tool, error rate, tokens by role, for the trainer's log.
The engine side (pause at a call, resume from the KV cache) is `rlvr.rollout.episodes`.
"""

from rlvr.environments.base import Environment, Episode, SingleTurn, build_environment

__all__ = ["Environment", "Episode", "SingleTurn", "build_environment"]
