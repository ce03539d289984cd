"""Sessions of the endpoint (rlvr.serve.sessions): an episode's chat requests become one token stream, sampled
the session's way, within its budget; a rewritten history is marked."""

from __future__ import annotations

import pytest

openai = pytest.importorskip("openai")
pytest.importorskip("fastapi")

from rlvr.models.loading import stop_token_ids  # noqa: E402
from rlvr.rollout.base import SamplingParams, sample_seed  # noqa: E402


def _turn(client, messages, **kw):
    out = client.chat.completions.create(model="tiny", messages=messages, max_tokens=6, **kw)
    return out.model_extra["prompt_token_ids"], out.choices[0]


def test_a_sessions_turns_extend_one_token_stream(served):
    client, server, engine, tok = served(template=True)
    sid = server.open_session(seed=21, temperature=0.9, budget=40)
    url = client.base_url.copy_with(path=f"/sessions/{sid}/v1/")
    session_client = openai.OpenAI(base_url=str(url), api_key="unused", max_retries=0)
    first = [{"role": "user", "content": "3+4="}]
    p1, c1 = _turn(session_client, first, temperature=0.1, seed=1)  # the session's sampling wins
    sampling = SamplingParams(1, 6, 0.9, 1.0, stop_token_ids(tok))
    assert c1.token_ids == engine.generate([p1], sampling, seeds=[sample_seed(21, 0)])[0][0].token_ids
    second = first + [{"role": "assistant", "content": c1.message.content}, {"role": "user", "content": "9"}]
    p2, c2 = _turn(session_client, second)
    ended = c1.token_ids[-1] == tok.eos_token_id  # the model's end of turn is not written twice
    tail = tok(("" if ended else "<eos>") + "u:9<eos>a:", add_special_tokens=False)["input_ids"]
    assert p2 == p1 + c1.token_ids + tail
    session = server.sessions.get(sid)
    assert session.broken is None
    assert session.stream == c1.token_ids + tail + c2.token_ids
    assert [len(t.logprobs) for t in session.turns] == [len(c1.token_ids), len(c2.token_ids)]


def test_a_rewritten_history_marks_the_session_and_the_budget_holds(served):
    client, server, _, tok = served(template=True)
    sid = server.open_session(seed=3, budget=8)
    session_client = openai.OpenAI(base_url=f"{str(client.base_url).rstrip('/').rsplit('/v1', 1)[0]}/sessions/{sid}/v1",
                                   api_key="unused", max_retries=0)
    first = [{"role": "user", "content": "1+2="}]
    _, c1 = _turn(session_client, first)
    session = server.sessions.get(sid)
    rewritten = [{"role": "user", "content": "1+2=?"}, {"role": "assistant", "content": c1.message.content},
                 {"role": "user", "content": "x"}]
    with pytest.raises(openai.BadRequestError, match="max_tokens: the session's token budget \\(8\\) is spent"):
        _turn(session_client, rewritten)  # a fresh rendering: the stream is not extended, and nothing is left
    assert session.broken is not None and "rewritten" in session.broken
    assert [m.id for m in session_client.models.list().data] == ["tiny"]
    with pytest.raises(openai.NotFoundError, match="session"):
        openai.OpenAI(base_url=session_client.base_url.copy_with(path="/sessions/nope/v1/"), api_key="u",
                      max_retries=0).chat.completions.create(model="tiny", messages=first)
