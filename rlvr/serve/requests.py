"""OpenAI-style request bodies read into what the engine needs. A field that cannot be honoured is a
`RequestError` naming it (the endpoint answers 400 with OpenAI's error shape); fields rlvr has no use for and
that change nothing (`user`, `stream_options`, `parallel_tool_calls`, ...) are ignored, as vLLM ignores them."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from rlvr.environments.parsing import template_form
from rlvr.models.loading import encode_prompt
from rlvr.types import Problem

ROLES = ("system", "developer", "user", "assistant", "tool")
MAX_N = 128
MAX_TOP_LOGPROBS = 20


class RequestError(ValueError):
    """A request the endpoint refuses: `param` is the field, `status` the HTTP status (400 or 404)."""

    def __init__(self, param: str, message: str, status: int = 400):
        super().__init__(f"{param}: {message}")
        self.param, self.status = param, status


@dataclass
class GenRequest:
    """One request: its prompts as token ids (one for chat, one or more for completions) and how to sample.
    `top_logprobs` > 0 asks for that many alternatives per token; `logprobs` for the sampled tokens' own."""

    prompts: list[list[int]]
    n: int = 1
    max_tokens: int = 64
    temperature: float = 1.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None
    logprobs: bool = False
    top_logprobs: int = 0
    tools: list[dict] | None = None  # chat: the schemas the template showed the model (tool calls are parsed)
    messages: list[dict] = field(default_factory=list)


def _int(body: dict, key: str, low: int, high: int | None = None, default: int | None = None) -> int | None:
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise RequestError(key, f"must be an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        raise RequestError(key, f"must be between {low} and {high}, got {value}" if high is not None
                           else f"must be >= {low}, got {value}")
    return value


def _number(body: dict, key: str, low: float, high: float, default: float, open_low: bool = False) -> float:
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RequestError(key, f"must be a number, got {value!r}")
    if value > high or value < low or (open_low and value == low):
        raise RequestError(key, f"must be in {'(' if open_low else '['}{low}, {high}], got {value}")
    return float(value)


def _refuse_unsupported(body: dict) -> None:
    """Fields that would change what is sampled, or how it is returned, in ways the engine cannot do."""
    if body.get("stream") not in (None, True, False):
        raise RequestError("stream", f"must be true or false, got {body.get('stream')!r}")
    for key in ("presence_penalty", "frequency_penalty", "repetition_penalty"):
        if body.get(key) not in (None, 0, 0.0, 1.0 if key == "repetition_penalty" else 0):
            raise RequestError(key, "penalties are not supported: they would change the behaviour policy")
    if body.get("logit_bias"):
        raise RequestError("logit_bias", "not supported: it would change the behaviour policy")
    fmt = body.get("response_format")
    if fmt and (not isinstance(fmt, dict) or fmt.get("type") != "text"):
        raise RequestError("response_format", "only {\"type\": \"text\"} is supported (no constrained decoding)")


def _stop(body: dict) -> tuple[str, ...]:
    stop = body.get("stop")
    if stop is None:
        return ()
    stops = [stop] if isinstance(stop, str) else stop
    if not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops):
        raise RequestError("stop", f"must be a non-empty string or a list of them, got {stop!r}")
    return tuple(dict.fromkeys(stops))


def _sampling(body: dict, req: GenRequest, default_max_tokens: int, max_len: int | None) -> GenRequest:
    _refuse_unsupported(body)
    req.n = _int(body, "n", 1, MAX_N, 1)
    if body.get("best_of") not in (None, req.n):
        raise RequestError("best_of", "not supported (every sample is returned; use n)")
    key = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
    req.max_tokens = _int(body, key, 1, None, default_max_tokens)
    longest = max(len(p) for p in req.prompts)
    if max_len is not None and longest + req.max_tokens > max_len:
        raise RequestError(key, f"the prompt ({longest} tokens) plus {key} ({req.max_tokens}) exceeds the "
                                f"model's context of {max_len} tokens")
    req.temperature = _number(body, "temperature", 0.0, 2.0, 1.0)
    req.top_p = _number(body, "top_p", 0.0, 1.0, 1.0, open_low=True)
    req.stop = _stop(body)
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise RequestError("seed", f"must be a non-negative integer, got {seed!r}")
    req.seed = seed
    return req


def _content(message: dict, i: int) -> str | None:
    content = message.get("content")
    if content is None or isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise RequestError(f"messages[{i}].content", "only text parts ({\"type\": \"text\", \"text\": ...}) "
                                                             "are supported")
            texts.append(part["text"])
        return "".join(texts)
    raise RequestError(f"messages[{i}].content", f"must be a string or a list of text parts, got {content!r}")


def _tool_calls(calls: Any, i: int) -> list[dict]:
    """Assistant tool calls as the chat template reads them (arguments as a mapping, not a JSON string)."""
    if not isinstance(calls, list):
        raise RequestError(f"messages[{i}].tool_calls", "must be a list")
    out = []
    for k, call in enumerate(calls):
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise RequestError(f"messages[{i}].tool_calls[{k}].function", "must be {\"name\": ..., \"arguments\": ...}")
        args = fn.get("arguments") or {}
        if isinstance(args, str):
            try:
                args = json.loads(args)
            except json.JSONDecodeError:
                raise RequestError(f"messages[{i}].tool_calls[{k}].function.arguments", "is not valid JSON") from None
        out.append({"id": call.get("id"), "type": "function", "function": {"name": fn["name"], "arguments": args}})
    return out


def chat_messages(body: dict) -> list[dict]:
    """The request's messages, checked and normalised (text content, tool-call arguments as mappings)."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestError("messages", "must be a non-empty list of {\"role\", \"content\"} messages")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            raise RequestError(f"messages[{i}].role", f"must be one of {', '.join(ROLES)}, got "
                                                      f"{m.get('role') if isinstance(m, dict) else m!r}")
        msg = {"role": "system" if m["role"] == "developer" else m["role"], "content": _content(m, i) or ""}
        if m.get("tool_calls"):
            msg["tool_calls"] = _tool_calls(m["tool_calls"], i)
        for key in ("tool_call_id", "name"):
            if isinstance(m.get(key), str):
                msg[key] = m[key]
        out.append(msg)
    return out


def _tools(body: dict, tokenizer) -> list[dict] | None:
    tools = body.get("tools")
    if tools is None or body.get("tool_choice") == "none":
        return None
    if not isinstance(tools, list) or not all(isinstance(t, dict) and isinstance(t.get("function"), dict)
                                              and isinstance(t["function"].get("name"), str) for t in tools):
        raise RequestError("tools", "must be a list of {\"type\": \"function\", \"function\": {\"name\", ...}}")
    choice = body.get("tool_choice")
    if choice not in (None, "auto"):
        raise RequestError("tool_choice", f"only \"auto\" and \"none\" are supported, got {choice!r}")
    return tools if template_form(tokenizer) != "tags" else None


def read_chat(body: dict, tokenizer, default_max_tokens: int, max_len: int | None) -> GenRequest:
    """A `/v1/chat/completions` body: the messages through the model's chat template (`tools=` where the
    template has a tools branch; elsewhere the schemas are not shown and no call is parsed). `max_len`: the
    context that prompt + max_tokens must fit (None: checked later, by a session)."""
    messages = chat_messages(body)
    tools = _tools(body, tokenizer)
    ids = encode_prompt(Problem("request", messages, None, "serve"), tokenizer, tools=tools)
    req = GenRequest([ids], tools=tools, messages=messages)
    logprobs = body.get("logprobs")
    if logprobs is not None and not isinstance(logprobs, bool):
        raise RequestError("logprobs", f"must be true or false, got {logprobs!r}")
    req.logprobs = bool(logprobs)
    req.top_logprobs = _int(body, "top_logprobs", 0, MAX_TOP_LOGPROBS, 0)
    if req.top_logprobs and not req.logprobs:
        raise RequestError("top_logprobs", "needs logprobs: true")
    return _sampling(body, req, default_max_tokens, max_len)


def read_completion(body: dict, tokenizer, default_max_tokens: int, max_len: int) -> GenRequest:
    """A `/v1/completions` body: `prompt` as text, token ids, or a list of either (one prompt each)."""
    prompt = body.get("prompt")
    if isinstance(prompt, str) or (isinstance(prompt, list) and prompt and all(isinstance(t, int) for t in prompt)):
        prompt = [prompt]
    if not isinstance(prompt, list) or not prompt:
        raise RequestError("prompt", "must be a string, a list of token ids, or a non-empty list of either")
    prompts = []
    vocab = len(tokenizer)
    for i, p in enumerate(prompt):
        if isinstance(p, str):
            ids = tokenizer(p, add_special_tokens=True)["input_ids"]
        elif isinstance(p, list) and p and all(isinstance(t, int) and not isinstance(t, bool) for t in p):
            ids = p
        else:
            raise RequestError(f"prompt[{i}]", f"must be a non-empty string or list of token ids, got {p!r}")
        if not ids or any(t < 0 or t >= vocab for t in ids):
            raise RequestError(f"prompt[{i}]", f"token ids must be in [0, {vocab}) and not empty")
        prompts.append(list(ids))
    if body.get("echo"):
        raise RequestError("echo", "not supported (the response carries prompt_token_ids instead)")
    if body.get("suffix"):
        raise RequestError("suffix", "not supported")
    req = GenRequest(prompts)
    top = _int(body, "logprobs", 0, MAX_TOP_LOGPROBS, None)
    req.logprobs, req.top_logprobs = top is not None, top or 0
    return _sampling(body, req, default_max_tokens, max_len)
