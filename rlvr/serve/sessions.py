"""Sessions: one episode's chat requests kept as one token stream, for a trainer that needs exact tokens.

A client that opens a session (`EngineServer.open_session`) sends the episode's requests to
`/sessions/<id>/v1/chat/completions`. The first request's messages go through the chat template; every later
one must repeat the conversation so far (the earlier messages, then the assistant reply the server gave) and
add messages after it (tool results, a new user turn). Its prompt is then the previous prompt, the tokens
the model sampled, and only the new messages rendered after them (`MessageRenderer`, the adapters' renderer:
the model's own end-of-turn token is not written twice). So the episode is one stream, prompt + model turns
+ observations, with the model's tokens exactly as sampled: what rlvr trains on (the observations masked).
A request that rewrites the history is answered from a fresh rendering and marks the session `broken`,
with the reason: it is not one stream, and a trainer must not train on it.

The session fixes how its turns are sampled (temperature, top_p: the trainer's behaviour policy, whatever
a request asks) and seeds turn t with `sample_seed(seed, t)`; `budget` caps the stream's completion tokens
(model and observation), and a turn's max_tokens is cut to what is left of it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from rlvr.environments.adapters.base import MessageRenderer
from rlvr.rollout.base import sample_seed
from rlvr.serve.requests import RequestError


@dataclass
class Turn:
    """One model turn: its prompt, the sampled tokens and their log-probs, and the conversation it answered."""

    prompt_ids: list[int]
    completion_ids: list[int]
    logprobs: list[float]
    finish_reason: str
    messages: list[dict]
    reply: str  # the assistant content the server returned


@dataclass
class Session:
    """One episode's turns. `broken`: why its requests are not one token stream (None: they are)."""

    seed: int
    temperature: float = 1.0
    top_p: float = 1.0
    budget: int | None = None
    turns: list[Turn] = field(default_factory=list)
    broken: str | None = None
    spent: bool = False  # a turn was refused: the budget was spent before the episode ended

    @property
    def stream(self) -> list[int]:
        """Completion tokens so far: the model's turns and the observations between them."""
        if not self.turns:
            return []
        last = self.turns[-1]
        return (last.prompt_ids + last.completion_ids)[len(self.turns[0].prompt_ids):]

    def prompt(self, messages: list[dict], fresh: list[int], renderer: MessageRenderer, tokenizer) -> list[int]:
        """The prompt of the next turn: the stream so far and the new messages after it, or `fresh` (the
        whole conversation rendered anew) for the first turn or a request that rewrites the history."""
        if not self.turns:
            return fresh
        last = self.turns[-1]
        k = len(last.messages)
        extends = (len(messages) > k + 1 and messages[:k] == last.messages and messages[k]["role"] == "assistant"
                   and (messages[k].get("content") or "").strip() == last.reply.strip())
        if not extends:
            self.broken = self.broken or (f"turn {len(self.turns) + 1} does not extend turn {len(self.turns)}'s "
                                          "conversation (the history was rewritten)")
            return fresh
        turn_text = tokenizer.decode(last.completion_ids, skip_special_tokens=False)
        tail = renderer.render(messages[k + 1:], turn_text)
        return last.prompt_ids + last.completion_ids + tokenizer(tail, add_special_tokens=False)["input_ids"]

    def max_tokens(self, asked: int, prompt: list[int]) -> int:
        """`asked`, cut to what the budget leaves after this prompt; RequestError when nothing is left."""
        if self.budget is None or not self.turns:
            left = self.budget if self.budget is not None else asked
        else:
            left = self.budget - (len(prompt) - len(self.turns[0].prompt_ids))
        if left <= 0:
            self.spent = True
            raise RequestError("max_tokens", f"the session's token budget ({self.budget}) is spent")
        return min(asked, left)

    def next_seed(self) -> int:
        return sample_seed(self.seed, len(self.turns))


class Sessions:
    """The open sessions of a server, by id."""

    def __init__(self):
        self._open: dict[str, Session] = {}
        self._lock = threading.Lock()
        self._count = 0

    def open(self, seed: int, temperature: float = 1.0, top_p: float = 1.0, budget: int | None = None) -> str:
        with self._lock:
            self._count += 1
            sid = f"s{self._count}"
            self._open[sid] = Session(seed, temperature, top_p, budget)
        return sid

    def get(self, sid: str) -> Session:
        with self._lock:
            session = self._open.get(sid)
        if session is None:
            raise RequestError("session", f"no open session {sid!r}", status=404)
        return session

    def close(self, sid: str) -> Session | None:
        with self._lock:
            return self._open.pop(sid, None)
