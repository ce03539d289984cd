"""How the model calls a tool and how the answer comes back: one parser for two written forms.

- **json** (the chat template's own form, Qwen2.5 and its kin):
  `<tool_call>{"name": "calculator", "arguments": {"expression": "347*26"}}</tool_call>`; the observation is
  rendered by the tokenizer's chat template as a `tool` message followed by the next assistant header.
- **tags** (templates without a tools branch: SmolLM2's converted template, the tiny models):
  `<call>NAME ARGS</call>`, where ARGS is a JSON object of arguments or plain text that fills the tool's main
  parameter (`<call>calculator 347*26</call>`); the observation is `<result>OUTPUT</result>`.

`parse_call` reads the last complete call of a model turn in either form; a call that cannot be read is
returned with `error` set (a malformed call gets an error observation; it never raises).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

CALL_RE = re.compile(r"<tool_call>(.*?)</tool_call>|<call>(.*?)</call>", re.DOTALL)
TAG_NAME_RE = re.compile(r"\s*([A-Za-z_][\w.-]*)\s*(.*)", re.DOTALL)
# Stop strings: a model turn pauses where one of them ends a call.
CALL_ENDS = ("</tool_call>", "</call>")


@dataclass
class ToolCall:
    """A call read from a model turn: `name` and `arguments` (a dict, or a plain string for the tool's main
    parameter), or `error` saying why it could not be read."""

    name: str | None
    arguments: dict[str, Any] | str | None
    error: str | None = None


def parse_call(text: str) -> ToolCall | None:
    """The last complete tool call in `text` (either form), or None when the turn holds no call."""
    found = list(CALL_RE.finditer(text))
    if not found:
        return None
    json_body, tag_body = found[-1].groups()
    return _parse_json(json_body) if json_body is not None else _parse_tag(tag_body)


def json_calls(text: str) -> tuple[str, list[ToolCall]]:
    """The json-form calls in `text` that can be read, and the text without them (calls that cannot be read
    stay in the text, where the reader sees what the model wrote)."""
    calls, kept, at = [], [], 0
    for m in CALL_RE.finditer(text):
        if m.group(1) is None:
            continue
        call = _parse_json(m.group(1))
        if call.error is None:
            calls.append(call)
            kept.append(text[at:m.start()])
            at = m.end()
    kept.append(text[at:])
    return "".join(kept).strip(), calls


def _parse_json(body: str) -> ToolCall:
    try:
        obj = json.loads(body)
    except json.JSONDecodeError as e:
        return ToolCall(None, None, f"the tool call is not valid JSON ({e.msg} at character {e.pos})")
    if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
        return ToolCall(None, None, 'the tool call must be a JSON object {"name": ..., "arguments": {...}}')
    args = obj.get("arguments", {})
    if isinstance(args, str):  # some templates serialise the arguments as a JSON string
        try:
            args = json.loads(args)
        except json.JSONDecodeError:
            return ToolCall(obj["name"], None, "the tool call's arguments are not a JSON object")
    if not isinstance(args, dict):
        return ToolCall(obj["name"], None, "the tool call's arguments are not a JSON object")
    return ToolCall(obj["name"], args)


def _parse_tag(body: str) -> ToolCall:
    m = TAG_NAME_RE.fullmatch(body)
    if m is None:
        return ToolCall(None, None, "the call names no tool: write <call>NAME ARGUMENTS</call>")
    name, rest = m.group(1), m.group(2).strip()
    if rest.startswith("{"):
        try:
            args = json.loads(rest)
            if isinstance(args, dict):
                return ToolCall(name, args)
        except json.JSONDecodeError:
            pass
    return ToolCall(name, rest)


class Format:
    """How observations are written back for one of the two forms (see the module docstring)."""

    name = "tags"

    def observation(self, output: str) -> str:
        return f"<result>{output}</result>"


class ChatFormat(Format):
    """The json form: the observation is what the chat template writes for a `tool` message after an
    assistant turn, up to the next assistant header (the assistant's end-of-turn marker included)."""

    name = "json"
    MARK = "\x00RLVR-SPLIT\x00"

    def __init__(self, tokenizer):
        msgs = [{"role": "user", "content": "q"}, {"role": "assistant", "content": self.MARK}]
        text = tokenizer.apply_chat_template(msgs + [{"role": "tool", "content": self.MARK}], tokenize=False,
                                             add_generation_prompt=True)
        first, second = text.index(self.MARK), text.rindex(self.MARK)
        self.before = text[first + len(self.MARK) : second]
        self.after = text[second + len(self.MARK) :]

    def observation(self, output: str) -> str:
        return f"{self.before}{output}{self.after}"


def has_tools_branch(tokenizer) -> bool:
    """Whether the tokenizer's chat template writes `<tool_call>` calls (Qwen2.5-style)."""
    return "tool_call" in (getattr(tokenizer, "chat_template", None) or "")


def build_format(kind: str, tokenizer) -> Format:
    """`tags`, `json`, or `auto`: json where the chat template has a tools branch."""
    if kind == "json" or (kind == "auto" and has_tools_branch(tokenizer)):
        return ChatFormat(tokenizer)
    return Format()


OBSERVATION_RE = re.compile(r"<result>.*?</result>", re.DOTALL)


def transcript_ids(tokenizer, text: str) -> tuple[list[int], list[int]]:
    """A worked tag-form transcript as token ids and a mask (1: the model writes it, 0: a `<result>`
    observation the environment writes), tokenized piece by piece as the engine assembles it."""
    ids: list[int] = []
    mask: list[int] = []
    at = 0
    for m in [*OBSERVATION_RE.finditer(text), None]:
        end = len(text) if m is None else m.start()
        for piece, keep in ((text[at:end], 1), ("" if m is None else m.group(0), 0)):
            if piece:
                part = tokenizer(piece, add_special_tokens=False)["input_ids"]
                ids += part
                mask += [keep] * len(part)
        at = len(text) if m is None else m.end()
    return ids, mask
