"""The torch rollout engine against plain full forwards: greedy decoding, log-probs, stops, grouping, seeds."""

from __future__ import annotations

import math

import pytest
import torch

from rlvr.rollout.base import SamplingParams
from rlvr.rollout.torch_engine import TorchEngine, sample_next

# Different lengths, so the shorter ones are left-padded inside the batch.
PROMPTS = ["123+456=", "7+8=", "9"]


def _prompts(tok, texts: list[str] = PROMPTS) -> list[list[int]]:
    return [[tok.bos_token_id] + tok(p, add_special_tokens=False)["input_ids"] for p in texts]


@torch.no_grad()
def _full_logits(model, ids: list[int]) -> torch.Tensor:
    """(len(ids), V) logits of one unpadded sequence, no cache."""
    return model(input_ids=torch.tensor([ids])).logits[0].float()


@torch.no_grad()
def _greedy_loop(model, prompt: list[int], max_new_tokens: int, stop: tuple[int, ...] = ()) -> list[int]:
    ids = list(prompt)
    for _ in range(max_new_tokens):
        ids.append(int(_full_logits(model, ids)[-1].argmax()))
        if ids[-1] in stop:
            break
    return ids[len(prompt) :]


def _generate(model, tok, sampling, seed=0, prompts=None):
    engine = TorchEngine(model, tok.pad_token_id)
    return engine.generate(prompts or _prompts(tok), sampling, torch.Generator().manual_seed(seed))


def test_greedy_matches_a_plain_loop_over_full_forwards(make_tiny_model, char_tokenizer):
    model = make_tiny_model(sharp=True)
    groups = _generate(model, char_tokenizer, SamplingParams(n=1, max_new_tokens=10, temperature=0.0))
    for prompt, group in zip(_prompts(char_tokenizer), groups):
        (c,) = group
        assert c.token_ids == _greedy_loop(model, prompt, 10)
        assert c.finish_reason == "length" and len(c.logprobs) == 10


@pytest.mark.parametrize("temperature", [0.0, 0.7, 1.3])
def test_logprobs_equal_a_full_forward_for_left_padded_rows(make_tiny_model, char_tokenizer, temperature):
    model = make_tiny_model(sharp=True)
    sampling = SamplingParams(n=2, max_new_tokens=10, temperature=temperature)
    groups = _generate(model, char_tokenizer, sampling, seed=3)
    scale = temperature if temperature > 0 else 1.0  # greedy reports the temperature-1 log-probs
    for prompt, group in zip(_prompts(char_tokenizer), groups):
        assert len(group) == 2
        for c in group:
            logits = _full_logits(model, prompt + c.token_ids)[
                len(prompt) - 1 : -1
            ]  # predicts each completion token
            expected = torch.log_softmax(logits / scale, dim=-1).gather(
                -1, torch.tensor(c.token_ids)[:, None]
            )
            assert torch.allclose(torch.tensor(c.logprobs), expected.squeeze(-1), atol=1e-4), prompt


@pytest.mark.parametrize("cache", ["static", "dynamic"])
@pytest.mark.parametrize("prompts", [["123+456="], ["12+3=", "45-6="]], ids=["one_prompt", "equal_lengths"])
def test_logprobs_equal_a_full_forward_without_padding_on_every_attention(make_tiny_model, char_tokenizer,
                                                                         cache, prompts):
    """No row padded (one prompt, or prompts of one length): transformers then drops the prefill's mask of a
    static cache and relies on the attention's causal flag. The CPU's short-sequence attention (what models
    loaded by rlvr run) must read that flag as SDPA does, or every sample is drawn from a corrupted prompt."""
    from rlvr.models.attention import use_short_attention

    ids = _prompts(char_tokenizer, prompts)
    assert len({len(r) for r in ids}) == 1
    sdpa = make_tiny_model(sharp=True)
    short = make_tiny_model(sharp=True)
    assert use_short_attention(short)
    sampling = SamplingParams(n=3, max_new_tokens=8, temperature=1.0)
    for model in (sdpa, short):
        groups = TorchEngine(model, char_tokenizer.pad_token_id, cache=cache).generate(
            ids, sampling, torch.Generator().manual_seed(1))
        for prompt, group in zip(ids, groups):
            for c in group:
                logits = _full_logits(sdpa, prompt + c.token_ids)[len(prompt) - 1 : -1]
                expected = torch.log_softmax(logits, dim=-1).gather(-1, torch.tensor(c.token_ids)[:, None])
                assert torch.allclose(torch.tensor(c.logprobs), expected.squeeze(-1), atol=1e-4), (prompt, model)


def test_decode_steps_read_only_the_filled_slots_of_a_static_cache(make_tiny_model, char_tokenizer, monkeypatch):
    """On rlvr's CPU attention the engine tells each decode step how many static-cache slots hold keys (the
    prompt's and the tokens decoded so far), so attention skips the empty rest; log-probs still equal a full
    forward's for left-padded rows."""
    import transformers.integrations.sdpa_attention as sdpa_module

    from rlvr.models.attention import use_short_attention

    model = make_tiny_model(sharp=True)
    assert use_short_attention(model)
    real, keys = sdpa_module.sdpa_attention_forward, []  # fp32 decode steps go to SDPA: record their keys

    def spy(module, query, key, *args, **kwargs):
        keys.append(key.shape[2])
        return real(module, query, key, *args, **kwargs)

    monkeypatch.setattr(sdpa_module, "sdpa_attention_forward", spy)
    ids, T = _prompts(char_tokenizer), 6
    P = max(map(len, ids))
    groups = TorchEngine(model, char_tokenizer.pad_token_id, cache="static").generate(
        ids, SamplingParams(n=2, max_new_tokens=T, temperature=1.0), torch.Generator().manual_seed(2))
    layers = model.config.num_hidden_layers
    assert keys == [P + t for t in range(1, T) for _ in range(layers)]  # never the cache's P + T slots
    for prompt, group in zip(ids, groups):
        for c in group:
            logits = _full_logits(model, prompt + c.token_ids)[len(prompt) - 1 : -1]
            expected = torch.log_softmax(logits, dim=-1).gather(-1, torch.tensor(c.token_ids)[:, None])
            assert torch.allclose(torch.tensor(c.logprobs), expected.squeeze(-1), atol=1e-4), prompt


def test_bf16_decode_products_give_a_full_forward_s_logprobs_for_left_padded_rows(make_tiny_model, char_tokenizer,
                                                                                  monkeypatch):
    """bf16 decode steps on a CPU take rlvr's products (`decode_attention`) over the whole static cache, its
    padding and empty slots masked: the engine's log-probs stay within bf16 rounding of a full forward of the
    same bf16 model (a padding token or an empty slot attended to is off by far more)."""
    from rlvr.models import attention

    model = make_tiny_model(sharp=True).to(torch.bfloat16)
    assert attention.use_short_attention(model)
    real, calls = attention.decode_attention, []
    monkeypatch.setattr(attention, "decode_attention", lambda *a: calls.append(1) or real(*a))
    ids = _prompts(char_tokenizer)
    groups = TorchEngine(model, char_tokenizer.pad_token_id, cache="static").generate(
        ids, SamplingParams(n=2, max_new_tokens=8, temperature=1.0), torch.Generator().manual_seed(4))
    assert len(calls) == 7 * model.config.num_hidden_layers  # every decode step of every layer
    worst = 0.0
    for prompt, group in zip(ids, groups):
        for c in group:
            logits = _full_logits(model, prompt + c.token_ids)[len(prompt) - 1 : -1]
            expected = torch.log_softmax(logits, dim=-1).gather(-1, torch.tensor(c.token_ids)[:, None]).squeeze(-1)
            worst = max(worst, float((torch.tensor(c.logprobs) - expected).abs().max()))
    assert worst < 0.5, worst  # measured 0.09; 4.5 with the mask dropped


def test_stops_at_a_stop_token_and_includes_it(make_tiny_model, char_tokenizer):
    model = make_tiny_model(sharp=True)
    prompts = _prompts(char_tokenizer)
    free = [_greedy_loop(model, p, 10) for p in prompts]
    # The third greedy token of the first prompt becomes a stop token (it must not occur earlier).
    stop = free[0][2]
    assert stop not in free[0][:2]
    groups = _generate(
        model, char_tokenizer, SamplingParams(1, 10, 0.0, stop_token_ids=(stop,)), prompts=prompts
    )
    for full, (c,) in zip(free, groups):
        if stop in full:
            cut = full.index(stop) + 1
            assert (c.token_ids, c.finish_reason) == (full[:cut], "stop")
        else:  # the rows that do not stop are not disturbed by the one that did
            assert (c.token_ids, c.finish_reason) == (full, "length")
        assert len(c.logprobs) == len(c.token_ids)
    assert groups[0][0].token_ids == free[0][:3]


def test_n_completions_per_prompt_are_grouped(make_tiny_model, char_tokenizer):
    model = make_tiny_model(sharp=True)
    prompts = _prompts(char_tokenizer)
    groups = _generate(
        model, char_tokenizer, SamplingParams(n=3, max_new_tokens=6, temperature=0.0), prompts=prompts
    )
    assert [len(g) for g in groups] == [3, 3, 3]
    for prompt, group in zip(prompts, groups):
        expected = _greedy_loop(model, prompt, 6)
        assert all(c.token_ids == expected for c in group)
    assert groups[0][0].token_ids != groups[1][0].token_ids  # the prompts do lead to different completions


def test_same_seed_same_samples(make_tiny_model, char_tokenizer):
    model = make_tiny_model()  # near-uniform: samples differ whenever the random stream differs
    sampling = SamplingParams(n=2, max_new_tokens=8, temperature=1.0)
    a = _generate(model, char_tokenizer, sampling, seed=7)
    b = _generate(model, char_tokenizer, sampling, seed=7)
    c = _generate(model, char_tokenizer, sampling, seed=8)

    def flat(groups):
        return [(x.token_ids, x.logprobs) for g in groups for x in g]

    assert flat(a) == flat(b)
    assert [t for t, _ in flat(a)] != [t for t, _ in flat(c)]


def test_tiny_top_p_is_greedy(make_tiny_model, char_tokenizer):
    model = make_tiny_model(sharp=True)
    greedy = _generate(model, char_tokenizer, SamplingParams(2, 8, temperature=0.0))
    nucleus = _generate(model, char_tokenizer, SamplingParams(2, 8, temperature=1.0, top_p=1e-6), seed=5)
    assert [c.token_ids for g in nucleus for c in g] == [c.token_ids for g in greedy for c in g]


def test_sample_next_top_p_keeps_the_nucleus_and_reports_policy_logprobs():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    logits = probs.log().repeat(4000, 1)
    tokens, logps = sample_next(
        logits, temperature=1.0, top_p=0.6, generator=torch.Generator().manual_seed(0)
    )
    counts = torch.bincount(tokens, minlength=4).float() / len(tokens)
    # {0, 1} is the smallest set reaching 0.6; renormalised they are drawn 0.625 / 0.375 of the time.
    assert counts[2] == 0 and counts[3] == 0
    assert counts[0].item() == pytest.approx(0.625, abs=0.03)
    # The log-prob is the behaviour policy's: the nucleus renormalised (what vLLM's processed_logprobs are),
    # not the untruncated policy's (the learner's off-policy correction accounts for the difference).
    nucleus = torch.tensor([0.625, 0.375, 0.0, 0.0])
    assert torch.allclose(logps, nucleus.log()[tokens])


def test_sample_next_greedy_and_temperature():
    logits = torch.tensor([[1.0, 3.0, 2.0]])
    tok, lp = sample_next(logits, 0.0, 1.0, None)
    assert tok.tolist() == [1] and lp.item() == pytest.approx(torch.log_softmax(logits, -1)[0, 1].item())
    tok, lp = sample_next(logits.repeat(3, 1), 0.5, 1.0, torch.Generator().manual_seed(0))
    assert torch.allclose(lp, torch.log_softmax(logits[0] / 0.5, -1)[tok])


def test_load_weights_switches_policy_and_version(make_tiny_model, char_tokenizer):
    a, b = make_tiny_model(seed=0, sharp=True), make_tiny_model(seed=1, sharp=True)
    engine = TorchEngine(a, char_tokenizer.pad_token_id)
    engine.load_weights(b.state_dict(), version=3)
    ((c,),) = engine.generate(_prompts(char_tokenizer)[:1], SamplingParams(1, 6, 0.0))
    assert c.token_ids == _greedy_loop(b, _prompts(char_tokenizer)[0], 6)
    assert engine.version == 3


def test_load_weights_of_the_model_it_shares_copies_nothing(make_tiny_model, monkeypatch):
    model = make_tiny_model(seed=0)
    engine = TorchEngine(model, 0)
    loads = []
    real_load = model.load_state_dict
    monkeypatch.setattr(model, "load_state_dict", lambda state, strict=True: (loads.append(set(state)),
                                                                              real_load(state, strict=strict)))
    engine.load_weights(model.state_dict(), version=1)  # the learner's own tensors: only the version moves
    assert engine.version == 1 and loads == []
    other = make_tiny_model(seed=1).state_dict()
    state = {**model.state_dict(), "lm_head.weight": other["lm_head.weight"]}
    engine.load_weights(state, version=2)  # one new tensor: that one is copied
    assert loads == [{"lm_head.weight"}] and torch.equal(model.lm_head.weight, other["lm_head.weight"])
    with pytest.raises(RuntimeError, match="Missing key"):
        engine.load_weights({"lm_head.weight": other["lm_head.weight"]}, version=3)


def test_empty_prompt_list_and_training_mode_restored(make_tiny_model, char_tokenizer):
    model = make_tiny_model().train()
    engine = TorchEngine(model, char_tokenizer.pad_token_id)
    assert engine.generate([], SamplingParams()) == []
    engine.generate(_prompts(char_tokenizer)[:1], SamplingParams(1, 2, 1.0))
    assert model.training
    assert math.isfinite(
        sum(engine.generate(_prompts(char_tokenizer), SamplingParams(1, 2, 1.0))[0][0].logprobs)
    )


@pytest.mark.parametrize("cache", ["static", "dynamic"])
@pytest.mark.parametrize("compact", [0.0, 0.25, 2.0])  # drop finished rows at once, in batches, never
def test_rows_that_finish_early_leave_the_batch_without_changing_the_others(
    make_tiny_model, char_tokenizer, cache, compact
):
    model = make_tiny_model(sharp=True)
    # Common digits as stop tokens: rows stop at many different steps, so the batch shrinks several times.
    stop = tuple(char_tokenizer.convert_tokens_to_ids(["1", "5", "7"]))
    engine = TorchEngine(model, char_tokenizer.pad_token_id, cache=cache, compact=compact)
    groups = engine.generate(_prompts(char_tokenizer), SamplingParams(4, 16, 1.0, 1.0, stop),
                             torch.Generator().manual_seed(5))
    lengths = {len(c.token_ids) for g in groups for c in g}
    assert len(lengths) >= 3  # the test exercises rows finishing at different steps
    for prompt, group in zip(_prompts(char_tokenizer), groups):
        for c in group:
            ends = [i for i, t in enumerate(c.token_ids) if t in stop]
            assert ends == ([len(c.token_ids) - 1] if c.finish_reason == "stop" else [])
            logits = _full_logits(model, prompt + c.token_ids)[len(prompt) - 1 : -1]
            expected = torch.log_softmax(logits, dim=-1).gather(-1, torch.tensor(c.token_ids)[:, None])
            assert torch.allclose(torch.tensor(c.logprobs), expected.squeeze(-1), atol=1e-4)


def test_seeded_samples_are_the_same_whether_finished_rows_leave_or_not(make_tiny_model, char_tokenizer):
    """Per-prompt noise: a prompt draws for all its rows while any of them is in the batch, and stops drawing
    once none is (its samples are complete), so rows and whole groups leaving the batch change no sample."""
    model = make_tiny_model(sharp=True)
    stop = tuple(char_tokenizer.convert_tokens_to_ids(["0", "1", "2", "3", "4"]))
    sampling = SamplingParams(4, 16, 1.0, 1.0, stop)
    prompts, seeds = _prompts(char_tokenizer), [3, 4, 5]
    kept = TorchEngine(model, char_tokenizer.pad_token_id, compact=float("inf")).generate(prompts, sampling,
                                                                                           seeds=seeds)
    for compact in (0.0, 0.25):
        left = TorchEngine(model, char_tokenizer.pad_token_id, compact=compact).generate(prompts, sampling,
                                                                                          seeds=seeds)
        assert [[c.token_ids for c in g] for g in left] == [[c.token_ids for c in g] for g in kept]
    longest = [max(len(c.token_ids) for c in g) for g in kept]
    assert min(longest) < max(longest)  # a whole group finished while another was still decoding


def test_each_prompt_is_prefilled_once_for_its_whole_group(make_tiny_model, char_tokenizer):
    model = make_tiny_model(sharp=True)
    widths = []
    hook = model.register_forward_pre_hook(lambda mod, args, kw: widths.append(tuple(kw["input_ids"].shape)),
                                           with_kwargs=True)
    groups = _generate(model, char_tokenizer, SamplingParams(n=4, max_new_tokens=3, temperature=1.0))
    hook.remove()
    prompts = _prompts(char_tokenizer)
    assert widths[0] == (len(prompts), max(map(len, prompts)))  # one prefill row per prompt, not per sample
    assert all(w == (len(prompts) * 4, 1) for w in widths[1:])  # then one token for each of the 12 samples
    assert [len(g) for g in groups] == [4, 4, 4]


def test_compiled_decode_steps_sample_what_the_eager_engine_samples(make_tiny_model, char_tokenizer):
    """`compile=True` runs decode steps through torch.compile (CUDA graphs on a GPU; inductor here). Without
    the layer loop: with it, a CPU engine compiles the loop's steps instead (tests/rollout/test_layer_loop.py)."""
    import shutil

    if shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.skip("torch.compile on CPU needs a C compiler")
    model = make_tiny_model(sharp=True)
    sampling = SamplingParams(n=3, max_new_tokens=6, temperature=1.0)
    eager = TorchEngine(model, char_tokenizer.pad_token_id, compact=float("inf"))
    compiled = TorchEngine(model, char_tokenizer.pad_token_id, compile=True, layer_loop=False)
    assert compiled.compile and not compiled.compile_loop
    want = eager.generate(_prompts(char_tokenizer), sampling, torch.Generator().manual_seed(7))
    got = compiled.generate(_prompts(char_tokenizer), sampling, torch.Generator().manual_seed(7))
    for a, b in zip([c for g in want for c in g], [c for g in got for c in g]):
        assert a.token_ids == b.token_ids
        assert torch.allclose(torch.tensor(a.logprobs), torch.tensor(b.logprobs), atol=1e-4)


def test_inverse_cdf_draw_has_the_multinomial_law_with_top_p():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    logits = probs.log().repeat(20000, 1)
    uniform = torch.rand(len(logits), generator=torch.Generator().manual_seed(1))
    tokens, logps = sample_next(logits, 1.0, 1.0, None, uniform=uniform)
    counts = torch.bincount(tokens, minlength=4).float() / len(tokens)
    assert torch.allclose(counts, probs[0], atol=0.015)
    tokens, _ = sample_next(logits, 1.0, 0.6, None, uniform=uniform)
    counts = torch.bincount(tokens, minlength=4).float() / len(tokens)
    assert counts[2] == 0 and counts[3] == 0 and counts[0].item() == pytest.approx(0.625, abs=0.015)
    assert torch.allclose(logps, probs[0].log()[sample_next(logits, 1.0, 1.0, None, uniform=uniform)[0]])


def test_inverse_cdf_draw_picks_the_token_whose_interval_holds_the_uniform():
    # cumulative 0.5, 0.5 (a token of probability 0), 0.8, 1.0: u in [0, 0.5) -> 0, [0.5, 0.8) -> 2, [0.8, 1) -> 3
    logits = torch.tensor([[0.5, 0.0, 0.3, 0.2]]).log().repeat(6, 1)
    uniform = torch.tensor([0.0, 0.49, 0.51, 0.79, 0.81, 0.99999994])  # clear of the rounded boundaries
    tokens, logps = sample_next(logits, 1.0, 1.0, None, uniform=uniform)
    assert tokens.tolist() == [0, 0, 2, 2, 3, 3]
    assert torch.allclose(logps, torch.tensor([0.5, 0.5, 0.3, 0.3, 0.2, 0.2]).log())


def test_seeded_samples_do_not_depend_on_the_rest_of_the_batch(make_tiny_model, char_tokenizer):
    """Per-prompt seeds: a prompt's group is the same alone, in another order, or beside other prompts
    (what lets rollout workers that split a batch reproduce the single-process run)."""
    model = make_tiny_model(seed=0)
    engine = TorchEngine(model, char_tokenizer.pad_token_id)
    prompts, seeds = _prompts(char_tokenizer), [11, 22, 33]
    sampling = SamplingParams(n=4, max_new_tokens=12, temperature=1.0, stop_token_ids=(char_tokenizer.eos_token_id,))
    together = engine.generate(prompts, sampling, seeds=seeds)
    alone = [engine.generate([p], sampling, seeds=[s])[0] for p, s in zip(prompts, seeds)]
    reversed_ = engine.generate(prompts[::-1], sampling, seeds=seeds[::-1])[::-1]
    for a, b, c in zip(together, alone, reversed_):
        assert [x.token_ids for x in a] == [x.token_ids for x in b] == [x.token_ids for x in c]
        for x, y in zip(a, b):
            assert x.logprobs == pytest.approx(y.logprobs, abs=1e-5)
    other = engine.generate(prompts, sampling, seeds=[12, 22, 33])  # another seed, other samples
    assert [x.token_ids for x in other[0]] != [x.token_ids for x in together[0]]
    with pytest.raises(ValueError, match="2 seeds for 3 prompts"):
        engine.generate(prompts, sampling, seeds=[1, 2])


def test_prefill_of_a_frozen_bf16_copy_does_not_expand_the_output_weight(make_tiny_model, char_tokenizer):
    """The rollout copy of fp32 masters is frozen bf16; its prefill hands the head a strided (B, 1, H) slice.
    Unfolded, matmul expands the (V, H) head weight to (B, H, V) (5.4 GB for 100 SmolLM2 prompts)."""
    from torch.profiler import ProfilerActivity, profile

    from rlvr.rollout.torch_engine import inference_copy

    model = inference_copy(make_tiny_model(), torch.bfloat16)
    engine = TorchEngine(model, pad_token_id=char_tokenizer.pad_token_id)
    prompts = [char_tokenizer.encode(f"{i}+{i}=") for i in range(64)]
    V, H = model.get_output_embeddings().weight.shape
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        engine.generate(prompts, SamplingParams(1, 1, 0.0, 1.0, ()))
    largest = max(e.cpu_memory_usage for e in prof.events())
    assert largest < len(prompts) * H * V * 2 / 4, largest


def test_stop_strings_end_each_completion_where_one_is_complete_and_change_nothing_before(make_tiny_model,
                                                                                           char_tokenizer):
    model = make_tiny_model()
    tok, prompts, seeds = char_tokenizer, _prompts(char_tokenizer), [11, 12, 13]
    free_params = SamplingParams(n=4, max_new_tokens=24, temperature=1.0)
    free = TorchEngine(model, tok.pad_token_id, tokenizer=tok).generate(prompts, free_params, seeds=seeds)
    texts = [tok.decode(c.token_ids) for g in free for c in g]
    stops = (texts[0][5:7], texts[5][9:12])  # strings some completions hold (two and three characters)
    stopped = TorchEngine(model, tok.pad_token_id, tokenizer=tok).generate(
        prompts, SamplingParams(n=4, max_new_tokens=24, temperature=1.0, stop=stops), seeds=seeds)
    cut = 0
    for f_group, s_group in zip(free, stopped):
        for f, s in zip(f_group, s_group):
            # the first token at which the text so far holds a stop string (tokens may be several characters)
            ends = [n for n in range(1, len(f.token_ids) + 1) if any(x in tok.decode(f.token_ids[:n]) for x in stops)]
            n = min(ends, default=len(f.token_ids))
            assert s.token_ids == f.token_ids[:n] and s.logprobs == f.logprobs[:n]
            assert s.finish_reason == ("stop" if ends else f.finish_reason)
            cut += bool(ends)
    assert cut >= 2
    with pytest.raises(ValueError, match="without a tokenizer"):
        TorchEngine(model, tok.pad_token_id).generate(prompts, SamplingParams(n=1, stop=("x",)), seeds=seeds)


def test_two_level_draw_equals_the_one_level_running_sum_across_blocks():
    from rlvr.rollout.torch_engine import DRAW_BLOCK, _draw

    g = torch.Generator().manual_seed(3)
    V = 2 * DRAW_BLOCK + 500  # not a multiple of the block: the last block is padded with weight 0
    weights = torch.randint(0, 4, (1, V), generator=g).float().repeat(4000, 1)
    weights[:, DRAW_BLOCK:2 * DRAW_BLOCK] = 0.0  # a whole block of weight 0 between two that have some
    weights[:, -1] = 7.0  # the last real entry, next to the padding
    uniform = torch.rand(len(weights), generator=g)
    uniform[:3] = torch.tensor([0.0, 0.99999994, 0.5])
    tokens, total = _draw(weights, uniform)
    cdf = weights.cumsum(dim=-1, dtype=torch.float64)  # small integers: every sum exact in float64
    want = torch.searchsorted(cdf, (uniform.double() * cdf[:, -1])[:, None], right=True).squeeze(-1)
    assert torch.equal(tokens, want) and torch.equal(total, cdf[:, -1])
    assert (weights.gather(-1, tokens[:, None]) > 0).all()  # a weight-0 entry is never drawn
    assert tokens.max().item() == V - 1 and (tokens < V).all()
