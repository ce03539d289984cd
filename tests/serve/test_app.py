"""The OpenAI-compatible endpoint (rlvr.serve.app), driven with the real `openai` client over HTTP against a
tiny Llama: token ids, log-probs against the engine's own, n, stop strings, batching, and refused fields."""

from __future__ import annotations

import threading

import httpx
import pytest

openai = pytest.importorskip("openai")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from rlvr.models.loading import stop_token_ids  # noqa: E402
from rlvr.rollout.base import SamplingParams  # noqa: E402


def _engine_sample(engine, tok, prompt_ids, seed, n=1, max_tokens=8, temperature=1.0, top_p=1.0):
    sampling = SamplingParams(n, max_tokens, temperature, top_p, stop_token_ids(tok))
    return engine.generate([prompt_ids], sampling, seeds=[seed])[0]


def test_completion_returns_the_engines_tokens_and_logprobs(served):
    client, _, engine, tok = served()
    out = client.completions.create(model="tiny", prompt="12+3=", max_tokens=8, seed=11, logprobs=0)
    choice = out.choices[0]
    prompt_ids = tok("12+3=", add_special_tokens=True)["input_ids"]
    assert choice.prompt_token_ids == prompt_ids
    expected = _engine_sample(engine, tok, prompt_ids, seed=11)[0]
    assert choice.token_ids == expected.token_ids
    assert choice.logprobs.token_logprobs == pytest.approx(expected.logprobs, abs=1e-6)
    assert tok.decode(choice.token_ids, skip_special_tokens=True) == choice.text  # ids round-trip to the text
    assert "".join(choice.logprobs.tokens) == tok.decode(choice.token_ids, skip_special_tokens=False)
    assert out.usage.prompt_tokens == len(prompt_ids) and out.usage.completion_tokens == len(choice.token_ids)


def test_chat_renders_the_template_with_tools_and_returns_prompt_ids(served):
    client, _, engine, tok = served(template=True)
    messages = [{"role": "system", "content": "short"}, {"role": "user", "content": "7*6="}]
    tools = [{"type": "function", "function": {"name": "calc", "parameters": {"type": "object", "properties": {}}}}]
    out = client.chat.completions.create(model="tiny", messages=messages, tools=tools, max_tokens=6, seed=5,
                                         temperature=0.8, top_p=0.9, logprobs=True)
    prompt_ids = out.model_extra["prompt_token_ids"]
    assert prompt_ids == tok.apply_chat_template(messages, tools=tools, add_generation_prompt=True, tokenize=True,
                                                 return_dict=False)
    assert tok.decode(prompt_ids).startswith("T:calc;s:short<eos>u:7*6=<eos>a:")
    choice = out.choices[0]
    expected = _engine_sample(engine, tok, prompt_ids, seed=5, max_tokens=6, temperature=0.8, top_p=0.9)[0]
    assert choice.token_ids == expected.token_ids
    assert [c.logprob for c in choice.logprobs.content] == pytest.approx(expected.logprobs, abs=1e-6)


def test_n_samples_share_the_prompt_and_a_seed_repeats_them(served):
    client, _, engine, tok = served()
    first = client.completions.create(model="tiny", prompt="5+5=", n=3, max_tokens=8, seed=2)
    again = client.completions.create(model="tiny", prompt="5+5=", n=3, max_tokens=8, seed=2)
    other = client.completions.create(model="tiny", prompt="5+5=", n=3, max_tokens=8, seed=3)
    ids = [c.token_ids for c in first.choices]
    assert len(ids) == 3 and len({tuple(i) for i in ids}) > 1  # n distinct samples
    assert ids == [c.token_ids for c in again.choices]
    assert ids != [c.token_ids for c in other.choices]
    expected = _engine_sample(engine, tok, first.choices[0].prompt_token_ids, seed=2, n=3)
    assert ids == [c.token_ids for c in expected]


def test_stop_strings_cut_the_text_and_end_the_sample(served):
    client, _, _, tok = served()
    full = client.completions.create(model="tiny", prompt="9-4=", max_tokens=12, seed=4, temperature=1.0,
                                     logprobs=0).choices[0]
    assert len(full.text) >= 6
    stop = full.text[3:5]
    at = full.text.find(stop)
    cut = client.completions.create(model="tiny", prompt="9-4=", max_tokens=12, seed=4, stop=[stop, "\x01never"],
                                    logprobs=0).choices[0]
    assert cut.finish_reason == "stop"
    assert cut.text == full.text[:at]
    # the sample is the unstopped one up to the token in which the stop string ends in the text (one character
    # a token, and none for a special token, which the text leaves out)
    ends = next(k for k in range(len(full.token_ids) + 1)
                if stop in tok.decode(full.token_ids[:k], skip_special_tokens=True))
    assert cut.token_ids == full.token_ids[:ends]
    assert cut.logprobs.token_logprobs == pytest.approx(full.logprobs.token_logprobs[:ends], abs=1e-5)


def test_a_streamed_reply_is_the_same_sample_in_one_chunk(served):
    client, *_ = served()
    messages = [{"role": "user", "content": "8+1="}]
    plain = client.chat.completions.create(model="tiny", messages=messages, max_tokens=6, seed=8)
    chunks = list(client.chat.completions.create(model="tiny", messages=messages, max_tokens=6, seed=8, stream=True,
                                                 stream_options={"include_usage": True}))
    assert len(chunks) == 2 and chunks[-1].usage.completion_tokens == plain.usage.completion_tokens
    choice = chunks[0].choices[0]
    assert choice.delta.content == plain.choices[0].message.content
    assert choice.finish_reason == plain.choices[0].finish_reason
    assert choice.model_extra["token_ids"] == plain.choices[0].token_ids


def test_top_logprobs_are_the_sampling_distributions(served):
    client, *_ = served()
    out = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "2+2="}], max_tokens=5,
                                         seed=9, temperature=0.7, logprobs=True, top_logprobs=4)
    for entry in out.choices[0].logprobs.content:
        top = [t.logprob for t in entry.top_logprobs]
        assert len(top) == 4 and top == sorted(top, reverse=True)
        assert entry.logprob <= top[0] + 1e-5
        same = [t.logprob for t in entry.top_logprobs if t.token == entry.token]
        assert not same or same[0] == pytest.approx(entry.logprob, abs=1e-4)


def test_concurrent_requests_run_as_one_batch_with_their_own_samples(served):
    client, server, engine, tok = served(window_s=5.0, max_batch=4)
    prompts = ["1+1=", "2+3=", "40-8=", "6*7="]
    results = [None] * 4

    def ask(i):
        results[i] = client.completions.create(model="tiny", prompt=prompts[i], max_tokens=8, seed=100 + i)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert server.batcher.stats == {"requests": 4, "generate_calls": 1, "prompts": 4}
    for i, r in enumerate(results):  # batching changed nothing: each is its seed's sample
        c = r.choices[0]
        assert c.token_ids == _engine_sample(engine, tok, c.prompt_token_ids, seed=100 + i)[0].token_ids


@pytest.mark.parametrize("field,value,status", [
    ("temperature", 5, 400), ("top_p", 0, 400), ("n", 0, 400), ("max_tokens", 100, 400), ("seed", -1, 400),
    ("stop", [""], 400), ("stream", "yes", 400), ("logit_bias", {"5": 1}, 400), ("top_logprobs", 3, 400),
    ("model", "gpt-4", 404), ("messages", [], 400), ("tool_choice", "required", 400),
])
def test_bad_fields_are_refused_with_their_name(served, field, value, status):
    client, *_ = served()
    body = {"model": "tiny", "messages": [{"role": "user", "content": "1+1="}], "max_tokens": 4,
            "tools": [{"type": "function", "function": {"name": "f"}}]}
    body[field] = value
    r = httpx.post(f"{client.base_url}chat/completions", json=body)  # raw: the status and the body
    assert r.status_code == status
    err = r.json()["error"]
    assert err["param"] == field and err["message"].startswith(f"{field}:")


def test_the_openai_client_sees_the_error_message(served):
    client, *_ = served()
    with pytest.raises(openai.BadRequestError, match="prompt\\[1\\]"):
        client.completions.create(model="tiny", prompt=["1+1=", [10**6]], max_tokens=4)
    with pytest.raises(openai.BadRequestError, match="messages\\[0\\].role"):
        client.chat.completions.create(model="tiny", messages=[{"role": "robot", "content": "hi"}])
    models = client.models.list()
    assert [m.id for m in models.data] == ["tiny"]


def test_a_stop_string_across_a_special_token_ends_the_text_and_the_tokens(char_tokenizer):
    """The engine looks for stop strings with special tokens written out; the response's text leaves them out.
    "5<bos>6" holds "56" only in the text: the text ends before it, and so do the tokens after the one that
    completes it (the engine sampled them, the response does not return them)."""
    from types import SimpleNamespace

    from rlvr.serve.batcher import Batcher

    tok = char_tokenizer
    ids = tok.encode("1+5", add_special_tokens=False) + [tok.bos_token_id] + tok.encode("6=7", add_special_tokens=False)
    logprobs = [-0.1 * (i + 1) for i in range(len(ids))]
    batcher = Batcher.__new__(Batcher)  # no engine or worker thread: only the response's assembly
    batcher.tokenizer, batcher.stop_token_ids = tok, (tok.eos_token_id,)
    sample = batcher._sample(SimpleNamespace(token_ids=ids, logprobs=logprobs), ("56",))
    assert sample.text == "1+" and sample.finish_reason == "stop"
    assert sample.token_ids == ids[:5] and sample.logprobs == logprobs[:5]  # 1 + 5 <bos> 6
    plain = batcher._sample(SimpleNamespace(token_ids=ids, logprobs=logprobs), ("9",))
    assert plain.text == "1+56=7" and plain.token_ids == ids and plain.finish_reason == "length"
