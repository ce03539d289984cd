"""The endpoint's fixture: a tiny Llama served over HTTP on a background thread, and an `openai` client for it."""

from __future__ import annotations

import copy

import pytest

from rlvr.models.loading import stop_token_ids
from rlvr.rollout.torch_engine import TorchEngine

# A chat template with a tools branch (it writes `<tool_call>`), for a tokenizer that has none of its own.
TEMPLATE = (
    "{%- if tools %}T:{% for t in tools %}{{ t.function.name }};{% endfor %}{% endif %}"
    "{%- for m in messages %}{{ m.role[0] }}:{{ m.content }}"
    "{%- if m.tool_calls %}{% for c in m.tool_calls %}<tool_call>{{ c.function.name }}</tool_call>{% endfor %}"
    "{%- endif %}<eos>{% endfor %}"
    "{%- if add_generation_prompt %}a:{% endif %}"
)


@pytest.fixture
def served(make_tiny_model, char_tokenizer):
    """`served(window_s=..., max_batch=..., template=False)` -> (client, server, engine, tokenizer)."""
    openai = pytest.importorskip("openai")
    pytest.importorskip("fastapi")
    pytest.importorskip("uvicorn")
    from rlvr.serve.app import EngineServer, ServerThread

    threads = []

    def start(window_s: float = 0.005, max_batch: int = 64, template: bool = False):
        tok = char_tokenizer
        if template:
            tok = copy.deepcopy(char_tokenizer)
            tok.chat_template = TEMPLATE
        engine = TorchEngine(make_tiny_model(seed=1, sharp=True), tok.pad_token_id)
        server = EngineServer(engine, tok, "tiny", stop_token_ids(tok), max_len=64, default_max_tokens=8,
                              seed=0, max_batch=max_batch, window_s=window_s)
        thread = ServerThread(server)
        threads.append(thread)
        client = openai.OpenAI(base_url=thread.url, api_key="unused", max_retries=0)
        return client, server, engine, tok

    yield start
    for t in threads:
        t.stop()
