"""LLM proposers: any OpenAI-compatible chat endpoint, or a local Hugging Face model.

Both send the same instructions with the passage and read back a JSON list of
`{"question", "answer", "verifier"}`; a reply that is not such a list gives no proposals (and is
counted), never an exception. Nothing here is trusted: every proposal still passes the filters.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable

from rlvr.tasks.questions.filters import VERIFIERS, Proposal

logger = logging.getLogger(__name__)

INSTRUCTIONS = (
    "You write exam questions from a passage. Propose up to {k} questions whose answers are short, checkable "
    "facts stated explicitly in the passage: a number with its unit, a year, a named quantity, or a formula. "
    "The answer must be copied exactly from the passage and must not appear in the question; the question "
    "must make sense without the passage. Reply with only a JSON list, each item "
    '{{"question": "...?", "answer": "...", "verifier": "numeric" | "math" | "exact"}} '
    "(numeric: a number, optionally with a unit; math: a formula or expression; exact: a name or term). "
    "Reply [] when the passage states no such fact."
)
JSON_LIST_RE = re.compile(r"\[.*\]", re.DOTALL)

Complete = Callable[[list[dict[str, str]]], str]


def messages_for(passage: str, k: int = 5) -> list[dict[str, str]]:
    """The chat messages asking for up to `k` questions about `passage`."""
    return [
        {"role": "system", "content": INSTRUCTIONS.format(k=k)},
        {"role": "user", "content": f"Passage:\n\n{passage}"},
    ]


def parse_reply(reply: str, proposer: str) -> list[Proposal] | None:
    """Proposals from a model's reply (a JSON list, possibly in a code fence); None when unreadable."""
    m = JSON_LIST_RE.search(reply or "")
    if not m:
        return None
    try:
        items = json.loads(m.group())
    except json.JSONDecodeError:
        return None
    if not isinstance(items, list):
        return None
    out = []
    for item in items:
        if (
            isinstance(item, dict)
            and isinstance(item.get("question"), str)
            and isinstance(item.get("answer"), str | int | float)
        ):
            verifier = item.get("verifier") if item.get("verifier") in VERIFIERS else "exact"
            out.append(Proposal(item["question"].strip(), str(item["answer"]).strip(), verifier, proposer))
    return out


class LLMProposer:
    """Proposals from a chat model behind `complete(messages) -> reply text`."""

    def __init__(self, complete: Complete, name: str, per_passage: int = 5):
        self.complete, self.name, self.per_passage = complete, name, per_passage
        self.failures = 0

    def __call__(self, passage: str) -> list[Proposal]:
        try:
            reply = self.complete(messages_for(passage, self.per_passage))
        except (OSError, ValueError, KeyError, IndexError, TypeError) as e:
            self.failures += 1
            logger.warning("proposer %s failed on a passage: %s", self.name, e)
            return []
        proposals = parse_reply(reply, self.name)
        if proposals is None:
            self.failures += 1
            logger.warning("proposer %s: reply is not a JSON list: %.120r", self.name, reply)
            return []
        return proposals


def endpoint_url(endpoint: str) -> str:
    """`http://host:port/v1` -> `.../v1/chat/completions` (a full URL is kept)."""
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith("/chat/completions") else endpoint + "/chat/completions"


def openai_complete(
    endpoint: str,
    model: str,
    api_key_env: str = "OPENAI_API_KEY",
    timeout_s: float = 120.0,
    retries: int = 2,
    max_tokens: int = 1024,
) -> Complete:
    """`complete(messages)` against an OpenAI-compatible `/chat/completions` endpoint (temperature 0)."""
    url = endpoint_url(endpoint)

    def complete(messages: list[dict[str, str]]) -> str:
        body = json.dumps(
            {"model": model, "messages": messages, "temperature": 0.0, "max_tokens": max_tokens}
        ).encode()
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        for attempt in range(retries + 1):
            request = urllib.request.Request(url, data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=timeout_s) as response:
                    data = json.loads(response.read().decode("utf-8"))
                return data["choices"][0]["message"]["content"]
            except urllib.error.HTTPError as e:
                if e.code < 500 or attempt == retries:
                    raise OSError(f"{url}: HTTP {e.code} {e.reason}") from e
            except urllib.error.URLError as e:
                if attempt == retries:
                    raise OSError(f"{url}: {e.reason}") from e
            time.sleep(0.5 * 2**attempt)
        raise OSError(f"{url}: no answer")

    return complete


def hf_complete(model_dir: str, max_new_tokens: int = 512) -> Complete:
    """`complete(messages)` with a local Hugging Face causal LM (greedy; chat template when it has one)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()

    def complete(messages: list[dict[str, str]]) -> str:
        if getattr(tokenizer, "chat_template", None):
            ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt")
            ids = ids["input_ids"] if hasattr(ids, "keys") else ids
        else:
            text = "\n\n".join(m["content"] for m in messages) + "\n\nJSON:"
            ids = tokenizer(text, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            out = model.generate(
                ids,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id,
            )
        return tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)

    return complete
