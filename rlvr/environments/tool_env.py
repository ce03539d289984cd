"""The tool environment: each model turn that ends in a tool call is answered with the tool's output, or an
error message the model can read; a turn without a call ends the episode (the model answered).

What can go wrong, and what the model sees (each counted by kind in the episode's record):
- "malformed": the call cannot be read (bad JSON, no tool name);
- "unknown_tool": no tool of that name;
- "bad_arguments": arguments missing, unknown or of the wrong type for the tool's schema;
- "raised": the tool failed on these arguments (a bad expression, an exception in the code);
- "timeout": the call ran past `tool_timeout_s`;
- "limit": more calls than `max_tool_calls`;
- "infra": the sandbox could not run the call (the host's fault; still an observation, never a crash).
Observation text is cut to `max_observation_chars`, and `<answer>` tags inside it are defused, so a tool
can never write the final answer for the model.
"""

from __future__ import annotations

import time

from rlvr.environments.base import Environment, Episode
from rlvr.environments.parsing import Format
from rlvr.environments.tools import Tool, ToolError, check_arguments
from rlvr.types import Problem, ToolCallRecord


def clean_output(text: str, limit: int) -> str:
    text = text.replace("<answer>", "[answer]").replace("</answer>", "[/answer]").strip()
    return text if len(text) <= limit else text[:limit] + f"... [{len(text) - limit} more characters]"


class ToolEpisode(Episode):
    def __init__(self, env: ToolEnvironment):
        super().__init__()
        self.env = env
        self.state: dict[str, dict] = {}  # per tool: e.g. python's replayed cells

    def respond(self, turn: str) -> str | None:
        env, rec = self.env, self.record
        if rec.turns == 0:  # the first turn starts in the prompt with the response prefix
            turn = env.response_prefix + turn
        rec.turns += 1
        call = env.format.read(turn)
        if call is None:
            rec.ended = "answer"
            return None
        if rec.turns >= env.max_turns:  # no turn left to read the answer in
            rec.ended = "max_turns"
            return None
        t0 = time.perf_counter()
        entry = ToolCallRecord(call.name or "?")
        try:
            output = self._run(call, entry)
        except ToolError as e:
            entry.error = e.kind
            output = f"error: {e}"
        entry.seconds = time.perf_counter() - t0
        rec.calls.append(entry)
        return env.format.observation(clean_output(output, env.max_observation_chars))

    def _run(self, call, entry: ToolCallRecord) -> str:
        env = self.env
        if call.error is not None:
            raise ToolError("malformed", call.error)
        if len(self.record.calls) >= env.max_tool_calls:
            raise ToolError("limit", f"no more tool calls in this episode (at most {env.max_tool_calls})")
        tool = env.tools.get(call.name)
        if tool is None:
            raise ToolError("unknown_tool", f"unknown tool {call.name!r}; tools: {', '.join(env.tools)}")
        args = call.arguments
        if isinstance(args, str):
            if tool.main is None:
                raise ToolError("bad_arguments", f"{tool.name} takes a JSON object of arguments")
            args = {tool.main: args}
        check_arguments(tool.parameters, args)
        state = self.state.setdefault(tool.name, {})
        state.pop("replayed", None)
        try:
            return tool.call(args, state, env.timeout_s)
        finally:
            entry.replayed_cells = state.get("replayed", 0)


class ToolEnvironment(Environment):
    """Episodes in which the model may call `tools` (see the module docstring for limits and errors)."""

    def __init__(self, tools: list[Tool], format: Format, max_turns: int = 4, max_tool_calls: int = 3,
                 timeout_s: float = 5.0, max_tokens: int | None = None, max_observation_chars: int = 400,
                 response_prefix: str | None = None):
        self.tools = {t.name: t for t in tools}
        self.format = format
        self.pause_strings = format.ends  # where a turn that calls a tool ends
        self.max_turns, self.max_tool_calls = max_turns, max_tool_calls
        self.timeout_s, self.max_tokens = timeout_s, max_tokens
        self.max_observation_chars = max_observation_chars
        self.response_prefix = response_prefix or ""  # the first turn's start, in the prompt
        # a chat template's own form (json, llama): its prompt lists the tools (the tag form is taught)
        self.prompt_tools = self.schemas() if format.shows_tools else None

    def open(self, problem: Problem | None) -> Episode:
        return ToolEpisode(self)

    def schemas(self) -> list[dict]:
        """The tools as chat templates take them (`apply_chat_template(..., tools=...)`)."""
        return [t.schema() for t in self.tools.values()]
