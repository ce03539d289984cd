"""The learner: the sign of an update follows the advantage, engine and learner agree on log-probs, PPO passes."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from rlvr.batching import make_batch
from rlvr.config import AlgorithmConfig, TrainConfig
from rlvr.learner import Learner
from rlvr.rollout.base import SamplingParams
from rlvr.rollout.torch_engine import TorchEngine
from rlvr.types import Batch, Problem, Rollout

PROBLEM = Problem("p", "", 0, "arithmetic")


def _sampled_batch(model, tok, advantages, temperature=1.0, n=1, max_new_tokens=8, seed=0) -> Batch:
    """`n` completions of each of three prompts (lengths differ), sampled by the engine with their log-probs."""
    prompts = [
        [tok.bos_token_id] + tok(t, add_special_tokens=False)["input_ids"]
        for t in ("123+456=", "7+8=", "42*3=")
    ]
    engine = TorchEngine(model, tok.pad_token_id)
    groups = engine.generate(
        prompts, SamplingParams(n, max_new_tokens, temperature, 1.0, ()), torch.Generator().manual_seed(seed)
    )
    rollouts = [
        Rollout(PROBLEM, p, c.token_ids, c.logprobs, "", c.finish_reason, g)
        for g, (p, group) in enumerate(zip(prompts, groups))
        for c in group
    ]
    return make_batch(rollouts, torch.tensor(advantages, dtype=torch.float32), tok.pad_token_id)


@torch.no_grad()
def _sequence_logprobs(model, batch: Batch, temperature: float = 1.0) -> torch.Tensor:
    """(N,) sum of the completion tokens' log-probs under `model`."""
    logits = (
        model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits[:, :-1] / temperature
    )
    logp = torch.log_softmax(logits.float(), -1).gather(-1, batch.input_ids[:, 1:, None]).squeeze(-1)
    return (logp * batch.completion_mask).sum(-1)


def _learner(model, temperature=1.0, ref_model=None, **train) -> Learner:
    algo = train.pop("algo", AlgorithmConfig(loss_agg="token_mean"))
    return Learner(
        model,
        TrainConfig(**{"lr": 1e-4, **train}),
        algo,
        temperature=temperature,
        max_new_tokens=8,
        ref_model=ref_model,
    )


@pytest.mark.parametrize("advantage", [1.0, -1.0])
def test_update_moves_logprob_in_the_direction_of_the_advantage(make_tiny_model, char_tokenizer, advantage):
    model = make_tiny_model(sharp=True)
    batch = _sampled_batch(model, char_tokenizer, [advantage, 0.0, 0.0])
    learner = _learner(model)
    before = _sequence_logprobs(model, batch)[0]
    for _ in range(3):
        learner.update(batch)
    after = _sequence_logprobs(model, batch)[0]
    assert (after - before) * advantage > 1e-4, (before, after)


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_logprob_gap_is_zero_when_sampled_by_the_same_weights(make_tiny_model, char_tokenizer, temperature):
    model = make_tiny_model(sharp=True)
    batch = _sampled_batch(model, char_tokenizer, [1.0, -1.0, 0.5, -0.5, 0.0, 0.0], temperature, n=2)
    stats = _learner(model, temperature=temperature).update(batch)
    assert stats["logprob_gap"] < 1e-5
    assert stats["ratio_max"] == pytest.approx(1.0, abs=1e-4) and stats["clip_frac"] == 0.0


def test_logprob_gap_sees_a_temperature_mismatch(make_tiny_model, char_tokenizer):
    model = make_tiny_model(sharp=True)
    batch = _sampled_batch(model, char_tokenizer, [1.0, -1.0, 0.0], temperature=0.7)
    assert _learner(model, temperature=1.0).update(batch)["logprob_gap"] > 1e-2


def test_second_ppo_epoch_sees_a_moved_ratio(make_tiny_model, char_tokenizer):
    advantages = [1.0, -1.0, 1.0, -1.0, 1.0, -1.0]
    one = make_tiny_model(sharp=True)
    stats1 = _learner(one, lr=0.05, algo=AlgorithmConfig(loss_agg="token_mean", ppo_epochs=1)).update(
        _sampled_batch(one, char_tokenizer, advantages, n=2)
    )
    two = make_tiny_model(sharp=True)
    stats2 = _learner(two, lr=0.05, algo=AlgorithmConfig(loss_agg="token_mean", ppo_epochs=2)).update(
        _sampled_batch(two, char_tokenizer, advantages, n=2)
    )
    assert stats1["ratio_max"] == pytest.approx(1.0, abs=1e-4) and stats1["clip_frac"] == 0.0
    assert stats1["approx_kl"] == pytest.approx(0.0, abs=1e-6)
    assert stats2["ratio_max"] > 1.2 and stats2["clip_frac"] > 0.0 and stats2["approx_kl"] > 1e-3
    assert stats2["logprob_gap"] < 1e-5  # measured on the first pass only


def test_reference_logprobs_of_the_same_weights_are_the_sampling_ones(make_tiny_model, char_tokenizer):
    model = make_tiny_model(sharp=True)
    batch = _sampled_batch(model, char_tokenizer, [1.0, -1.0, 0.0, 0.0, 0.5, -0.5], n=2)
    ref = copy.deepcopy(model).requires_grad_(False)
    algo = AlgorithmConfig(loss_agg="token_mean", kl_coef=0.1)
    learner = _learner(model, algo=algo, ref_model=ref, micro_batch_size=4)
    batch.ref_logprobs = learner.reference_logprobs(batch)
    on = batch.completion_mask.bool()
    assert torch.allclose(batch.ref_logprobs[on], batch.old_logprobs[on], atol=1e-5)
    assert learner.update(batch)["kl"] == pytest.approx(0.0, abs=1e-6)


LOSS_AGGS = ["token_mean", "seq_mean_token_mean", "seq_mean_token_sum_norm"]


def _update_with_micro_batch(make_tiny_model, tok, loss_agg, micro_batch_size, entropy_coef=0.0):
    model = make_tiny_model(sharp=True)
    # Completions of different lengths, so token shares and sequence shares differ.
    batch = _sampled_batch(model, tok, [1.0, -1.0, 0.5, -0.5, 2.0, -2.0], n=2)
    for i in range(len(batch)):
        batch.completion_mask[i, batch.completion_mask[i].nonzero()[i + 1 :]] = 0.0
    learner = _learner(
        model,
        algo=AlgorithmConfig(loss_agg=loss_agg, entropy_coef=entropy_coef),
        micro_batch_size=micro_batch_size,
        grad_clip=0.0,
    )
    return learner.update(batch)


@pytest.mark.parametrize(
    "loss_agg, entropy_coef",
    [(a, 0.0) for a in LOSS_AGGS] + [(a, 0.5) for a in LOSS_AGGS],
)
def test_micro_batching_gives_the_same_gradient(make_tiny_model, char_tokenizer, loss_agg, entropy_coef):
    # grad_clip 0: grad_norm is the norm of the whole accumulated gradient.
    whole = _update_with_micro_batch(make_tiny_model, char_tokenizer, loss_agg, 128, entropy_coef)
    split = _update_with_micro_batch(make_tiny_model, char_tokenizer, loss_agg, 1, entropy_coef)
    assert split["grad_norm"] == pytest.approx(whole["grad_norm"], rel=1e-5)
    assert split["entropy"] == pytest.approx(whole["entropy"], rel=1e-5)


@pytest.mark.parametrize("loss_agg", LOSS_AGGS)
def test_micro_batching_logs_the_same_loss(make_tiny_model, char_tokenizer, loss_agg):
    whole = _update_with_micro_batch(make_tiny_model, char_tokenizer, loss_agg, 128)
    split = _update_with_micro_batch(make_tiny_model, char_tokenizer, loss_agg, 1)
    assert split["loss"] == pytest.approx(whole["loss"], rel=1e-4, abs=1e-6)


def test_state_dict_round_trip(make_tiny_model, char_tokenizer):
    model = make_tiny_model(sharp=True)
    learner = _learner(model, warmup_steps=4)
    learner.update(_sampled_batch(model, char_tokenizer, [1.0, -1.0, 0.0]))
    other = _learner(copy.deepcopy(model), warmup_steps=4)
    other.load_state_dict(learner.state_dict())
    assert other.scheduler.get_last_lr() == learner.scheduler.get_last_lr()
    assert other.optimizer.state_dict()["state"][0]["step"] == 1


@pytest.mark.parametrize("loss_agg", LOSS_AGGS)
def test_length_buckets_under_a_token_budget_give_the_same_gradient_and_reference(
    make_tiny_model, char_tokenizer, loss_agg
):
    def run(**train):
        model = make_tiny_model(sharp=True)
        batch = _sampled_batch(model, char_tokenizer, [1.0, -1.0, 0.5, -0.5, 2.0, -2.0], n=2)
        for i in range(len(batch)):  # completions of different lengths
            batch.completion_mask[i, batch.completion_mask[i].nonzero()[i + 1 :]] = 0.0
            batch.attention_mask[i, int(batch.completion_mask[i].nonzero().max()) + 2 :] = 0
        ref = copy.deepcopy(model).requires_grad_(False)
        learner = _learner(model, algo=AlgorithmConfig(loss_agg=loss_agg), grad_clip=0.0, ref_model=ref,
                           share_prompts=False, **train)  # rows x width is the budget when rows run whole
        batch.ref_logprobs = learner.reference_logprobs(batch)
        widths = [mb.input_ids.shape for _, mb in learner._micro_batches(batch)]
        return learner.update(batch), batch.ref_logprobs, widths

    whole, ref_whole, _ = run(micro_batch_size=128)
    bucketed, ref_bucketed, widths = run(micro_batch_size=128, micro_batch_tokens=40)
    assert len(widths) > 1 and all(n * t <= 40 or n == 1 for n, t in widths)
    assert bucketed["grad_norm"] == pytest.approx(whole["grad_norm"], rel=1e-5)
    assert bucketed["loss"] == pytest.approx(whole["loss"], rel=1e-4, abs=1e-6)
    assert torch.allclose(ref_bucketed, ref_whole, atol=1e-6)  # rows land back in their own place


# --- off-policy correction (rlvr.algorithms.offpolicy) in the learner ------------------------------------------
def _gradient(model, batch, algo) -> tuple[list[torch.Tensor], dict]:
    """The gradient one update accumulates (read before the optimiser step) and the update's stats."""
    learner = _learner(copy.deepcopy(model), algo=algo, grad_clip=0.0)
    grads = []
    learner.optimizer.step = lambda *a, **k: grads.extend(p.grad.clone() for p in learner._trainable())
    return grads, learner.update(batch)


def _assert_same_gradient(a: list[torch.Tensor], b: list[torch.Tensor]) -> None:
    assert len(a) == len(b) and any(g.abs().sum() > 0 for g in a)
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-6)


def test_offpolicy_correction_is_off_on_policy_and_logs_the_gap(make_tiny_model, char_tokenizer):
    model = make_tiny_model(sharp=True)
    batch = _sampled_batch(model, char_tokenizer, [1.0, -1.0, 0.5, -0.5, 0.0, 0.0], n=2)
    stats = _learner(model).update(batch)  # the engine sampled from this very model: auto is off
    assert stats["offpolicy/active"] == 0.0
    assert stats["offpolicy/kl"] == pytest.approx(0.0, abs=1e-6)
    assert stats["offpolicy/truncated_frac"] == 0.0 and stats["offpolicy/masked_frac"] == 0.0
    auto_on = Learner(model, TrainConfig(), AlgorithmConfig(), behaviour_differs=True)
    assert auto_on.correct_offpolicy
    assert not Learner(model, TrainConfig(), AlgorithmConfig(offpolicy_correction="off"),
                       behaviour_differs=True).correct_offpolicy


def test_tis_weights_the_gradient_by_the_capped_ratio(make_tiny_model, char_tokenizer):
    model = make_tiny_model(sharp=True)
    adv = [1.0, -1.0, 0.5, -0.5, 2.0, -2.0]
    batch = _sampled_batch(model, char_tokenizer, adv, n=2)
    stale = copy.deepcopy(batch)  # the behaviour policy gave row 0's tokens 1/3 and row 1's 1/1.5 the probability
    stale.old_logprobs[0] -= math.log(3.0) * batch.completion_mask[0]
    stale.old_logprobs[1] -= math.log(1.5) * batch.completion_mask[1]
    on = AlgorithmConfig(loss_agg="token_mean", offpolicy_correction="on", tis_cap=2.0, seq_mask_cap=None)
    got, stats = _gradient(model, stale, on)
    # = the on-policy gradient with row 0 weighted min(3, 2) = 2 and row 1 weighted 1.5
    weighted = copy.deepcopy(batch)
    weighted.advantages = torch.tensor([2.0, -1.5, 0.5, -0.5, 2.0, -2.0])
    want, _ = _gradient(model, weighted, AlgorithmConfig(loss_agg="token_mean", offpolicy_correction="off"))
    _assert_same_gradient(got, want)
    tokens = batch.completion_mask.sum(-1)
    assert stats["offpolicy/truncated_frac"] == pytest.approx(float(tokens[0] / tokens.sum()), rel=1e-5)
    assert stats["offpolicy/active"] == 1.0 and stats["offpolicy/kl"] > 0.01


def test_sequence_mask_drops_a_completion_far_off_policy(make_tiny_model, char_tokenizer):
    model = make_tiny_model(sharp=True)
    adv = [1.0, -1.0, 0.5, -0.5, 2.0, -2.0]
    batch = _sampled_batch(model, char_tokenizer, adv, n=2)
    stale = copy.deepcopy(batch)
    stale.old_logprobs[3] += math.log(3.0) * batch.completion_mask[3]  # geometric-mean ratio 1/3 < 1/2
    got, stats = _gradient(model, stale, AlgorithmConfig(loss_agg="token_mean", offpolicy_correction="on"))
    dropped = copy.deepcopy(batch)
    dropped.advantages[3] = 0.0  # masked: no gradient, but its tokens stay in the normaliser
    want, _ = _gradient(model, dropped, AlgorithmConfig(loss_agg="token_mean", offpolicy_correction="off"))
    _assert_same_gradient(got, want)
    assert stats["offpolicy/masked_frac"] == pytest.approx(1 / 6)


def test_decoupled_objective_clips_later_passes_against_the_first_pass(make_tiny_model, char_tokenizer):
    """pi_prox is the first pass's log-probs, kept (no extra forward): the second pass sees a moved ratio."""
    model = make_tiny_model(sharp=True)
    batch = _sampled_batch(model, char_tokenizer, [1.0, -1.0, 1.0, -1.0, 1.0, -1.0], n=2)
    algo = AlgorithmConfig(loss_agg="token_mean", ppo_epochs=2, offpolicy_correction="on")
    learner = _learner(model, lr=0.05, algo=algo)
    forwards = []
    real = learner._forward
    learner._forward = lambda *a, **k: forwards.append(1) or real(*a, **k)
    stats = learner.update(batch)
    assert len(forwards) == 2  # one forward per pass (one micro-batch), none for pi_prox
    assert stats["ratio_max"] > 1.2 and stats["clip_frac"] > 0.0


def _rows_run(model) -> list[int]:
    """Rows of every training forward through the policy's decoder, recorded as they run."""
    seen: list[int] = []
    model.get_decoder().register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(int(kwargs["input_ids"].shape[0])), with_kwargs=True)
    return seen


@pytest.mark.parametrize("loss_agg", LOSS_AGGS)
def test_zero_advantage_rows_are_not_run_and_the_update_is_the_whole_batchs(make_tiny_model, char_tokenizer,
                                                                              loss_agg):
    def mixed(model):  # uneven lengths: token and sequence shares differ
        batch = _sampled_batch(model, char_tokenizer, [1.0, -1.0, 0.0, 0.0, 0.5, -0.5], n=2)
        for i in range(len(batch)):
            batch.completion_mask[i, batch.completion_mask[i].nonzero()[i + 1:]] = 0.0
        return batch

    results = {}
    for skip in (True, False):
        model = make_tiny_model(sharp=True)
        batches = [mixed(model), _sampled_batch(model, char_tokenizer, [0.0] * 6, n=2, seed=1)]  # then constant
        learner = _learner(model, lr=1e-2, weight_decay=0.1, skip_zero_advantage=skip, share_prompts=False,
                           algo=AlgorithmConfig(loss_agg=loss_agg))  # rows counted as decoder rows: run whole
        seen = _rows_run(model)
        stats = [learner.update(b) for b in batches]  # AdamW's momentum moves the weights at the second step
        results[skip] = ([p.detach().clone() for p in model.parameters()], stats, seen)
    (skipped, s_stats, s_seen), (whole, w_stats, w_seen) = results[True], results[False]
    for a, b in zip(skipped, whole):
        assert torch.allclose(a, b, atol=1e-6), (a - b).abs().max()
    assert s_stats[0]["grad_norm"] == pytest.approx(w_stats[0]["grad_norm"], rel=1e-5)
    assert s_stats[0]["loss"] == pytest.approx(w_stats[0]["loss"], rel=1e-4, abs=1e-7)
    assert [s["update/skipped_rows"] for s in s_stats] == [2.0, 6.0] and "update/skipped_rows" not in w_stats[0]
    assert sum(s_seen) == 4 and sum(w_seen) == 12  # the constant step runs nothing
    assert s_stats[1]["loss"] == 0.0 and "entropy" not in s_stats[1]
    # token diagnostics are means over the rows that ran: as an update of those rows alone
    model = make_tiny_model(sharp=True)
    alone = _learner(model, algo=AlgorithmConfig(loss_agg=loss_agg)).update(mixed(model).select(torch.tensor([0, 1, 4, 5])))
    assert s_stats[0]["entropy"] == pytest.approx(alone["entropy"], rel=1e-5)


def test_skip_empty_updates_leaves_weights_optimiser_and_schedule_untouched_by_a_batch_without_gradient(
        make_tiny_model, char_tokenizer):
    weights = {}
    for skip in (False, True):
        model = make_tiny_model(sharp=True)
        informative = _sampled_batch(model, char_tokenizer, [1.0, -1.0, 0.0, 0.0, 0.5, -0.5], n=2)
        empty = _sampled_batch(model, char_tokenizer, [0.0] * 6, n=2, seed=1)
        learner = _learner(model, lr=1e-2, warmup_steps=3, skip_empty_updates=skip)
        learner.update(informative)
        after_first = [p.detach().clone() for p in model.parameters()]
        state = copy.deepcopy(learner.state_dict())
        stats = learner.update(empty)
        moved = max((p - q).abs().max().item() for p, q in zip(model.parameters(), after_first))
        weights[skip] = after_first
        if not skip:  # the optimiser steps on zero gradients: momentum moves the weights
            assert moved > 1e-4 and "update/empty" not in stats
            continue
        assert moved == 0.0 and stats["update/empty"] == 1.0 and stats["loss"] == 0.0
        assert learner.state_dict()["scheduler"] == state["scheduler"]  # warm-up counts updates made
        steps = [s["step"] for s in learner.state_dict()["optimizer"]["state"].values()]
        assert steps and all(float(s) == 1.0 for s in steps)  # Adam's state holds the one real gradient
        assert learner.update(informative)["update/empty"] == 0.0
    for a, b in zip(weights[False], weights[True]):  # the informative update itself is the same either way
        assert torch.equal(a, b)


@pytest.mark.parametrize("algo", [AlgorithmConfig(loss_agg="token_mean", entropy_coef=0.01),
                                  AlgorithmConfig(loss_agg="token_mean", kl_coef=0.1)])
def test_zero_advantage_rows_run_when_the_loss_has_another_term(make_tiny_model, char_tokenizer, algo):
    model = make_tiny_model(sharp=True)
    batch = _sampled_batch(model, char_tokenizer, [1.0, 0.0, 0.0])
    ref = copy.deepcopy(model).requires_grad_(False)
    learner = _learner(model, algo=algo, ref_model=ref, share_prompts=False)
    batch.ref_logprobs = learner.reference_logprobs(batch)
    seen = _rows_run(model)
    stats = learner.update(batch)
    assert sum(seen) == 3 and "update/skipped_rows" not in stats


@pytest.mark.parametrize("prompts", [("123+456=", "7+8=", "42*3="), ("7+8=",), ("12+3=", "45+6=")])
def test_shared_prompt_passes_give_the_same_logprobs_and_update_as_whole_rows(make_tiny_model, char_tokenizer,
                                                                              prompts):
    """Left-padded prompts of different lengths, one prompt alone, prompts of one length (no padding at all):
    running each prompt once for its group gives every row's log-probs and the gradient of whole rows."""
    from rlvr.shared_prefix import shared_prefix_hidden

    tok = char_tokenizer
    model = make_tiny_model(sharp=True)
    ids = [[tok.bos_token_id] + tok(t, add_special_tokens=False)["input_ids"] for t in prompts]
    groups = TorchEngine(model, tok.pad_token_id).generate(ids, SamplingParams(3, 8, 1.0, 1.0, ()),
                                                           torch.Generator().manual_seed(5))
    rollouts = [Rollout(PROBLEM, p, c.token_ids, c.logprobs, "", c.finish_reason, g)
                for g, (p, group) in enumerate(zip(ids, groups)) for c in group]
    batch = make_batch(rollouts, torch.linspace(-1, 1, len(rollouts)), tok.pad_token_id)
    assert shared_prefix_hidden(model.get_decoder(), batch.input_ids, batch.attention_mask,
                                batch.completion_mask.bool()) is not None  # the shared path is the one taken
    results = {}
    for share in (True, False):
        m = copy.deepcopy(model)
        learner = _learner(m, lr=1e-3, share_prompts=share)
        logp, _ = learner._forward(m, batch, want_entropy=False)
        stats = learner.update(batch)
        results[share] = (logp.detach(), stats["grad_norm"], [p.detach().clone() for p in m.parameters()])
    (lp_s, g_s, w_s), (lp_w, g_w, w_w) = results[True], results[False]
    assert torch.allclose(lp_s, lp_w, atol=1e-5), (lp_s - lp_w).abs().max()
    assert g_s == pytest.approx(g_w, rel=1e-4)
    for a, b in zip(w_s, w_w):
        assert torch.allclose(a, b, atol=1e-5), (a - b).abs().max()  # AdamW's first step: lr * g / |g|
    assert torch.allclose(lp_w.sum(-1), _sequence_logprobs(model, batch), atol=1e-4)


def test_with_shared_prompts_micro_batches_keep_a_prompts_rows_together_under_the_token_budget(make_tiny_model,
                                                                                               char_tokenizer):
    model = make_tiny_model(sharp=True)
    batch = _sampled_batch(model, char_tokenizer, [1.0, -1.0, 0.5] * 3, n=3)
    prompt_of = [tuple(r[: int(m.argmax()) + 1]) for r, m in zip(batch.input_ids.tolist(), batch.completion_mask)]
    P = max(len(p) for p in prompt_of)
    S = int(batch.attention_mask.sum(-1).max()) - min(len(p) for p in prompt_of)
    budget = P + 3 * S  # one prompt and its three completions fit; a second prompt's rows do not
    runs = {}
    for share in (True, False):
        m = copy.deepcopy(model)
        learner = _learner(m, lr=1e-3, share_prompts=share, micro_batch_tokens=budget)
        micro = [idx.tolist() for idx, _ in learner._micro_batches(batch)]
        runs[share] = (micro, learner.update(batch)["grad_norm"], [p.detach().clone() for p in m.parameters()])
    micro = runs[True][0]
    assert sorted(i for mb in micro for i in mb) == list(range(9)) and len(micro) > 1
    home = {p: {k for k, mb in enumerate(micro) if any(prompt_of[i] == p for i in mb)} for p in prompt_of}
    assert all(len(h) == 1 for h in home.values())  # no prompt's rows are split between micro-batches
    by_length = runs[False][0]
    assert any(len({k for k, mb in enumerate(by_length) if any(prompt_of[i] == p for i in mb)}) > 1 for p in home)
    assert runs[True][1] == pytest.approx(runs[False][1], rel=1e-4)
    for a, b in zip(runs[True][2], runs[False][2]):
        assert torch.allclose(a, b, atol=1e-5)
