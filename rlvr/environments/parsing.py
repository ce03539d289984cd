"""How the model calls a tool and how the answer comes back: one parser for three written forms.

- **json** (the chat template's own form, Qwen2.5 and its kin):
  `<tool_call>{"name": "calculator", "arguments": {"expression": "347*26"}}</tool_call>`; the observation is
  rendered by the tokenizer's chat template as a `tool` message followed by the next assistant header.
- **llama** (Llama 3.1/3.2/3.3 templates with `tools=`): the whole assistant turn is the call, a bare JSON
  object `{"name": "calculator", "parameters": {"expression": "347*26"}}` (`"arguments"` is read too),
  optionally after `<|python_tag|>`, ended by `<|eom_id|>` or `<|eot_id|>`; the observation is the
  template's `ipython` message (`tool` where the template knows no `ipython` role) and the next assistant
  header. A bare JSON turn is a call only in this form: on any other template it is an answer.
- **tags** (templates without a tools branch: SmolLM2's converted template, the tiny models):
  `<call>NAME ARGS</call>`, where ARGS is a JSON object of arguments or plain text that fills the tool's main
  parameter (`<call>calculator 347*26</call>`); the observation is `<result>OUTPUT</result>`.

`parse_call` reads the last complete call of a model turn (with `bare_json`, the turn itself as Llama 3's
call); a call that cannot be read is returned with `error` set (a malformed call gets an error observation;
it never raises). A `Format` says where a turn ends (`ends`, the engine's pause strings), reads the call that
ends it (`read`) and writes the observation back.
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
# Llama 3: the end of a turn (eom: "end of message", the model waits for a tool; eot: end of turn) and the tag
# that may open a call
LLAMA_ENDS = ("<|eom_id|>", "<|eot_id|>")
PYTHON_TAG = "<|python_tag|>"


@dataclass
class ToolCall:
    """A call read from a model turn: `name` and `arguments` (a dict, or a plain string for the tool's main
    parameter), or `error` saying why it could not be read."""

    name: str | None
    arguments: dict[str, Any] | str | None
    error: str | None = None


def parse_call(text: str, bare_json: bool = False) -> ToolCall | None:
    """The last complete tool call in `text` (`<tool_call>` or `<call>` form), or None when the turn holds no
    call. With `bare_json` (Llama 3's form, for templates that use it) the turn itself is the call when, its
    end-of-turn marker and spaces dropped, it opens with `<|python_tag|>` or `{`: the rest is read as one
    JSON object."""
    if bare_json:
        body = text.strip()
        for end in LLAMA_ENDS:
            body = body.removesuffix(end)
        body = body.strip()
        if body.startswith(PYTHON_TAG):
            body = body[len(PYTHON_TAG):].strip()
        elif not body.startswith("{"):
            return None
        return _parse_json(body, "parameters")
    found = list(CALL_RE.finditer(text))
    if not found:
        return None
    json_body, tag_body = found[-1].groups()
    return _parse_json(json_body) if json_body is not None else _parse_tag(tag_body)


def json_calls(text: str, bare_json: bool = False) -> tuple[str, list[ToolCall]]:
    """The json-form calls in `text` that can be read, and the text without them (calls that cannot be read
    stay in the text, where the reader sees what the model wrote). With `bare_json` (Llama 3's form) the whole
    reply is one call or none."""
    if bare_json:
        call = parse_call(text, bare_json=True)
        return ("", [call]) if call is not None and call.error is None else (text, [])
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


def _parse_json(body: str, key: str = "arguments") -> ToolCall:
    """`{"name": ..., "arguments": {...}}` (or `"parameters"`, Llama 3's key); `key` names the one the form
    writes, in the error messages."""
    try:
        obj = json.loads(body)
    except json.JSONDecodeError as e:
        return ToolCall(None, None, f"the tool call is not valid JSON ({e.msg} at character {e.pos})")
    if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
        return ToolCall(None, None, f'the tool call must be a JSON object {{"name": ..., "{key}": {{...}}}}')
    args = obj.get("arguments", obj.get("parameters", {}))
    if isinstance(args, str):  # some templates serialise the arguments as a JSON string
        try:
            args = json.loads(args)
        except json.JSONDecodeError:
            return ToolCall(obj["name"], None, f"the tool call's {key} are not a JSON object")
    if not isinstance(args, dict):
        return ToolCall(obj["name"], None, f"the tool call's {key} are not a JSON object")
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


MARK = "\x00RLVR-SPLIT\x00"


def after_assistant_turn(tokenizer, messages: list[dict]) -> str:
    """What the chat template writes after an assistant turn: its end-of-turn marker, `messages`, then the
    next assistant header (the generation prompt)."""
    msgs = [{"role": "user", "content": "q"}, {"role": "assistant", "content": MARK}, *messages]
    text = tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    return text[text.index(MARK) + len(MARK):]


class Format:
    """The tag form (see the module docstring): where a turn that calls a tool ends (`ends`), how the call is
    read (`read`), and how the observation is written back (`observation`); `shows_tools`: whether prompts
    pass the tools' schemas to the chat template (a template's own form; the tag form is taught)."""

    name = "tags"
    ends: tuple[str, ...] = CALL_ENDS
    bare_json = False
    shows_tools = False

    def read(self, turn: str) -> ToolCall | None:
        """The call that ends model turn `turn`, or None: the turn is an answer."""
        return parse_call(turn, self.bare_json) if turn.rstrip().endswith(self.ends) else None

    def observation(self, output: str) -> str:
        return f"<result>{output}</result>"


class ChatFormat(Format):
    """The json form: the observation is what the chat template writes for a `tool` message after an
    assistant turn, up to the next assistant header (the assistant's end-of-turn marker included)."""

    name = "json"
    shows_tools = True

    def __init__(self, tokenizer):
        text = after_assistant_turn(tokenizer, [{"role": "tool", "content": MARK}])
        self.before, self.after = text.split(MARK)

    def observation(self, output: str) -> str:
        return f"{self.before}{output}{self.after}"


class LlamaFormat(Format):
    """Llama 3's form: a turn that is a bare JSON call, ended by `<|eom_id|>` or `<|eot_id|>`, which the model
    writes itself (so the template's end-of-turn marker is not written again). The observation is the
    template's message of role `ipython` (`tool` where the template has no `ipython`), rendered for each
    output, since Llama 3.1's template writes a tool message's content through `tojson`."""

    name = "llama"
    ends = LLAMA_ENDS
    bare_json = True
    shows_tools = True

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.role = "ipython" if "ipython" in (getattr(tokenizer, "chat_template", None) or "") else "tool"

    def observation(self, output: str) -> str:
        text = after_assistant_turn(self.tokenizer, [{"role": self.role, "content": output}])
        for end in LLAMA_ENDS:
            if text.startswith(end):
                return text[len(end):]
        return text


def template_form(tokenizer) -> str:
    """The tool-call form the tokenizer's chat template defines: `llama` (Llama 3's header tokens and a
    tools branch without `<tool_call>` tags), `json` (a tools branch: `<tool_call>`, Qwen2.5-style), else
    `tags` (no tools branch, or no template)."""
    template = getattr(tokenizer, "chat_template", None) or ""
    if "tool_call" not in template:
        return "tags"
    if "<|start_header_id|>" in template and "<tool_call>" not in template:
        return "llama"
    return "json"


TEMPLATE_FORMATS = {"json": ChatFormat, "llama": LlamaFormat}  # the forms a chat template writes back


def build_format(kind: str, tokenizer) -> Format:
    """`tags`, `json`, `llama`, or `auto`: the form the chat template defines (`template_form`)."""
    kind = template_form(tokenizer) if kind == "auto" else kind
    return TEMPLATE_FORMATS[kind](tokenizer) if kind in TEMPLATE_FORMATS else Format()


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
