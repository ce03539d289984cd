"""`train.compile`: the learner's forward through torch.compile at bucketed shapes gives the eager loss and
gradients, and a run over varied lengths compiles once per bucket, not once per shape or per step."""

from __future__ import annotations

import functools

import pytest
import torch

import rlvr.learner
from rlvr.compiled_forward import CompiledDecoder, bucket
from rlvr.config import AlgorithmConfig, ConfigError, ModelConfig, TrainConfig, load_config
from rlvr.learner import Learner
from rlvr.models.lora import apply_lora
from rlvr.types import Batch


class CountingBackend:
    """torch.compile backend that counts the graphs it is handed and runs them through AOTAutograd (eager
    kernels: the same tracing as inductor, without its code generation)."""

    def __init__(self):
        self.graphs = 0

    def __call__(self, gm, example_inputs):
        from torch._dynamo.backends.registry import lookup_backend

        self.graphs += 1
        return lookup_backend("aot_eager")(gm, example_inputs)


@pytest.fixture
def counting(monkeypatch):
    """The learner's CompiledDecoder on a counting backend (a fresh dynamo cache, so counts start at 0)."""
    torch._dynamo.reset()
    backend = CountingBackend()
    monkeypatch.setattr(rlvr.learner, "CompiledDecoder", functools.partial(CompiledDecoder, backend=backend))
    yield backend
    torch._dynamo.reset()


def _batch(rows: int, lengths: list[int], seed: int = 1) -> Batch:
    """Right-padded rows of the given lengths: a 3-token prompt, then completion tokens with log-probs."""
    g = torch.Generator().manual_seed(seed)
    T = max(lengths)
    ids = torch.randint(3, 20, (rows, T), generator=g)
    attn, mask = torch.zeros(rows, T, dtype=torch.long), torch.zeros(rows, T - 1)
    for i, n in enumerate(lengths):
        attn[i, :n], mask[i, 2 : n - 1] = 1, 1.0
    return Batch(ids, attn, mask, -torch.rand(rows, T - 1, generator=g) * mask, torch.randn(rows, generator=g))


def _run(model, compile: bool, steps: int = 2, **algo):
    """Stats and the gradients each optimiser step saw, over `steps` updates on a batch of varied lengths."""
    model.train()
    learner = Learner(model, TrainConfig(lr=1e-2, grad_clip=0.0, micro_batch_size=5, compile=compile),
                      AlgorithmConfig(**{"loss_agg": "token_mean", **algo}))
    grads = []
    learner.optimizer.register_step_pre_hook(
        lambda *_: grads.append([p.grad.clone() for p in model.parameters() if p.requires_grad]))
    stats = [learner.update(_batch(6, [7, 10, 13, 16, 19, 22], seed=s)) for s in range(steps)]
    return stats, grads, learner


def test_bucket_ladder():
    assert [bucket(n) for n in range(1, 14)] == [1, 2, 3, 4, 6, 6, 8, 8, 12, 12, 12, 12, 16]
    assert [bucket(n) for n in (17, 25, 33, 100, 200, 300)] == [24, 32, 48, 128, 256, 384]
    assert all(n <= bucket(n) <= 1.5 * n for n in range(1, 2000))


@pytest.mark.parametrize("variant", ["plain", "entropy", "gradient_checkpointing", "lora", "whole_model"])
def test_compiled_update_equals_eager(make_tiny_model, counting, monkeypatch, variant):
    if variant == "whole_model":  # a head that cannot be split off: the whole model is compiled, logits out
        monkeypatch.setattr(rlvr.learner, "PLAIN_HEAD_MODELS", set())

    def model():
        m = make_tiny_model(sharp=True)
        if variant == "gradient_checkpointing":
            m.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if variant == "lora":
            torch.manual_seed(0)  # the same adapter initialisation on both sides
            m = apply_lora(m, ModelConfig(lora_r=4))
        return m

    algo = {"entropy_coef": 0.1} if variant == "entropy" else {}
    eager_stats, eager_grads, _ = _run(model(), False, **algo)
    stats, grads, learner = _run(model(), True, **algo)
    assert counting.graphs > 0
    # micro-batches of 5 and 1 rows, cut at 19 and 22 tokens, ran padded to (6, 24) (a padding row) and (1, 24)
    assert learner._compiled.shapes == {(6, 24), (1, 24)}
    for e, c in zip(eager_stats, stats):
        for key in ("loss", "entropy", "ratio_mean", "grad_norm"):
            assert c[key] == pytest.approx(e[key], rel=1e-5, abs=1e-7), key
    for step_e, step_c in zip(eager_grads, grads):
        for e, c in zip(step_e, step_c):
            assert torch.allclose(c, e, rtol=1e-4, atol=1e-6)


def test_varied_lengths_compile_once_per_bucket(make_tiny_model, counting):
    torch.manual_seed(0)
    model = make_tiny_model(sharp=True).train()
    decoder = rlvr.learner.CompiledDecoder(model.get_decoder(), max_length=64)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-2)
    raw = [(5, 13), (6, 14), (5, 15), (6, 16), (5, 17), (6, 20), (5, 23), (6, 24), (5, 21), (6, 18)]
    buckets = {decoder.padded_shape(rows, length) for rows, length in raw}
    for rows, length in raw:  # every call: new weights and a new (rows, length)
        ids = torch.randint(3, 20, (rows, length))
        hidden = decoder(ids, torch.ones_like(ids))
        assert hidden.shape[:2] == (rows, length)
        hidden.square().mean().backward()
        optimizer.step()
        optimizer.zero_grad()
    assert counting.graphs == 2  # ten shapes, two buckets
    assert buckets == decoder.shapes == {(6, 16), (6, 24)}
    # the same shapes again, after more weight updates: nothing new to compile
    before = counting.graphs
    for rows, length in raw[:4]:
        decoder(torch.randint(3, 20, (rows, length)), torch.ones(rows, length, dtype=torch.long)).sum().backward()
        optimizer.step()
    assert counting.graphs == before


def test_compile_is_a_validated_config_field():
    assert load_config(None, ["train.compile=true"]).train.compile is True
    with pytest.raises(ConfigError, match=r"train\.compile"):
        load_config(None, ["train.compile=maybe"])
    with pytest.raises(ConfigError, match=r"train\.compile.*fsdp"):
        load_config(None, ["train.compile=true", "distributed.backend=ray", "distributed.sharding=fsdp"])


def _grouped_batch(prompt_lengths: list[int], completion_lengths: list[list[int]], seed: int = 1) -> Batch:
    """Rows grouped by prompt (GRPO groups): each prompt's rows start with its tokens, then a completion of the
    given length; right-padded, with log-probs on the completion tokens and advantages of +-1."""
    g = torch.Generator().manual_seed(seed)
    rows = []
    for P, lengths in zip(prompt_lengths, completion_lengths):
        prompt = torch.randint(3, 20, (P,), generator=g)
        rows += [(prompt, torch.randint(3, 20, (n,), generator=g)) for n in lengths]
    T = max(len(p) + len(c) for p, c in rows)
    ids, attn = torch.zeros(len(rows), T, dtype=torch.long), torch.zeros(len(rows), T, dtype=torch.long)
    mask = torch.zeros(len(rows), T - 1)
    for i, (p, c) in enumerate(rows):
        n = len(p) + len(c)
        ids[i, :n], attn[i, :n], mask[i, len(p) - 1 : n - 1] = torch.cat([p, c]), 1, 1.0
    adv = torch.tensor([1.0, -1.0] * (len(rows) // 2) + [0.5] * (len(rows) % 2))
    return Batch(ids, attn, mask, -torch.rand(len(rows), T - 1, generator=g) * mask, adv)


def test_compiled_shared_prompts_equal_eager_and_compile_once_per_bucket(make_tiny_model, counting):
    """`train.compile` with shared prompts: the compiled two passes (each prompt once, then the completions on
    its keys and values) at padded shapes (a padded prompt row, padded rows, padded prompt and completion
    columns) give eager's log-probs, loss and gradients, and new lengths within the same buckets compile nothing."""
    batches = [_grouped_batch([3, 5, 4, 6, 2], [[4, 7], [1, 9], [5, 5], [8, 2], [6, 3]], seed=1),
               _grouped_batch([4, 2, 6, 3, 5], [[9, 3], [2, 6], [7, 1], [4, 8], [3, 5]], seed=2)]
    runs = {}
    for compile in (False, True):
        model = make_tiny_model(sharp=True).train()
        learner = Learner(model, TrainConfig(lr=1e-2, grad_clip=0.0, micro_batch_size=10, compile=compile,
                                             share_prompts=True), AlgorithmConfig(loss_agg="token_mean"))
        grads = []
        learner.optimizer.register_step_pre_hook(
            lambda *_, m=model, out=grads: out.append([p.grad.clone() for p in m.parameters() if p.requires_grad]))
        logps = []
        for b in batches:  # training forwards (gradients on): the compiled passes when compile is on
            logps.append(learner._forward(model, b, want_entropy=False)[0].detach())
            if compile and len(logps) == 1:
                graphs = counting.graphs
        runs[compile] = logps, learner.update(batches[0]), grads, learner
    (eager_logps, eager_stats, eager_grads, _), (logps, stats, grads, learner) = runs[False], runs[True]
    assert learner._compiled.shapes == set()  # every forward took the shared passes
    # 5 prompts (bucket 6: one padded prompt row) of at most 6 tokens; 10 rows (12) of at most 9 completion tokens (12)
    assert learner._compiled.shared_shapes == {(6, 6, 12, 12)}
    assert graphs > 0 and counting.graphs == graphs  # the second batch's lengths fall in the same buckets
    for e, c in zip(eager_logps, logps):
        assert torch.allclose(c, e, atol=1e-5), (c - e).abs().max()
    for key in ("loss", "ratio_mean", "grad_norm"):
        assert stats[key] == pytest.approx(eager_stats[key], rel=1e-5, abs=1e-7), key
    for e, c in zip(eager_grads[0], grads[0]):
        assert torch.allclose(c, e, rtol=1e-4, atol=1e-6)
