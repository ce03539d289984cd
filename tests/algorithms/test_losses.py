"""Policy loss and aggregation against hand-computed numbers, plus finite-difference gradient checks."""

import itertools
import math

import pytest
import torch

from rlvr.algorithms.advantages import compute_advantages
from rlvr.algorithms.losses import aggregate, policy_loss

AGGS = ["token_mean", "seq_mean_token_mean", "seq_mean_token_sum_norm"]


def t(values):
    return torch.tensor(values, dtype=torch.float64)


def inputs(log_ratios, mask, old=None):
    """logprobs = old + log_ratio; masked entries of log_ratios may be None (filled with 0)."""
    lr = t([[0.0 if x is None else x for x in row] for row in log_ratios])
    old = torch.full_like(lr, -1.5) if old is None else old
    return (old + lr).requires_grad_(True), old, t(mask)


# --- aggregate ----------------------------------------------------------------------------------------------

VALUES = [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]
MASK = [[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]]  # row 1 is left-padded


def test_aggregate_by_hand():
    v, m = t(VALUES), t(MASK)
    assert aggregate(v, m, "token_mean").item() == pytest.approx((1 + 5 + 6) / 3)
    assert aggregate(v, m, "seq_mean_token_mean").item() == pytest.approx((1 / 1 + (5 + 6) / 2) / 2)
    assert aggregate(v, m, "seq_mean_token_sum_norm").item() == pytest.approx((1 + 5 + 6) / (2 * 3))
    assert aggregate(v, m, "seq_mean_token_sum_norm", max_tokens=4).item() == pytest.approx(12 / (2 * 4))


def test_aggregate_skips_empty_sequence_in_seq_mean():
    v = t(VALUES + [[7.0, 8.0, 9.0]])
    m = t(MASK + [[0.0, 0.0, 0.0]])
    assert aggregate(v, m, "token_mean").item() == pytest.approx(12 / 3)
    assert aggregate(v, m, "seq_mean_token_mean").item() == pytest.approx((1 + 5.5) / 2)
    # the constant normaliser counts every row, the empty one too
    assert aggregate(v, m, "seq_mean_token_sum_norm").item() == pytest.approx(12 / (3 * 3))


def test_aggregate_ignores_inf_and_nan_under_the_mask():
    v = t([[1.0, math.inf, math.nan], [math.nan, 5.0, 6.0]]).requires_grad_(True)
    for agg in AGGS:
        out = aggregate(v, t(MASK), agg)
        (grad,) = torch.autograd.grad(out, v)
        assert torch.isfinite(out) and torch.isfinite(grad).all()
        assert torch.equal(grad * (1 - t(MASK)), torch.zeros(2, 3, dtype=torch.float64))


@pytest.mark.parametrize("agg", AGGS)
def test_aggregate_all_empty_is_zero_with_grad(agg):
    v = t(VALUES).requires_grad_(True)
    out = aggregate(v, torch.zeros(2, 3, dtype=torch.float64), agg)
    assert out.item() == 0.0 and out.requires_grad
    out.backward()
    assert torch.equal(v.grad, torch.zeros(2, 3, dtype=torch.float64))


def test_aggregate_refuses_unknown_name():
    with pytest.raises(ValueError, match="token_mean, seq_mean_token_mean, seq_mean_token_sum_norm"):
        aggregate(t(VALUES), t(MASK), "sum")


# --- policy_loss, token ratio ----------------------------------------------------------------------------

# row 0: A = +1, ratios [1.1, 1.5, 0.7]        per-token loss [-1.1, -1.2 (clipped), -0.7]
# row 1: A = -1, ratios [pad, 1.3, 0.5]         per-token loss [     ,  1.3, 0.8 (clipped)]
RATIOS = [[1.1, 1.5, 0.7], [None, 1.3, 0.5]]
HAND_MASK = [[1, 1, 1], [0, 1, 1]]


def hand_case(extra_empty_row=False):
    log_ratios = [[None if r is None else math.log(r) for r in row] for row in RATIOS]
    mask, adv = HAND_MASK, [1.0, -1.0]
    if extra_empty_row:
        log_ratios, mask, adv = log_ratios + [[0.3, 0.3, 0.3]], mask + [[0, 0, 0]], adv + [1.0]
    return (*inputs(log_ratios, mask), t(adv))


@pytest.mark.parametrize("empty_row", [False, True])
def test_token_ratio_loss_by_hand(empty_row):
    logp, old, mask, adv = hand_case(empty_row)
    n = 3 if empty_row else 2
    expected = {
        "token_mean": (-1.1 - 1.2 - 0.7 + 1.3 + 0.8) / 5,
        "seq_mean_token_mean": ((-1.1 - 1.2 - 0.7) / 3 + (1.3 + 0.8) / 2) / 2,
        "seq_mean_token_sum_norm": (-1.1 - 1.2 - 0.7 + 1.3 + 0.8) / (n * 3),
    }
    for agg, value in expected.items():
        loss, stats = policy_loss(logp, old, adv, mask, loss_agg=agg)
        assert loss.item() == pytest.approx(value)
        assert stats["clip_frac"].item() == pytest.approx(2 / 5)
        assert stats["ratio_mean"].item() == pytest.approx((1.1 + 1.5 + 0.7 + 1.3 + 0.5) / 5)
        assert stats["ratio_max"].item() == pytest.approx(1.5)
        k3 = [(r - 1) - math.log(r) for r in [1.1, 1.5, 0.7, 1.3, 0.5]]
        assert stats["approx_kl"].item() == pytest.approx(sum(k3) / 5)
    loss, _ = policy_loss(logp, old, adv, mask, loss_agg="seq_mean_token_sum_norm", max_tokens=10)
    assert loss.item() == pytest.approx(-0.9 / (n * 10))


def test_token_ratio_gradient_by_hand():
    logp, old, mask, adv = hand_case()
    loss, _ = policy_loss(logp, old, adv, mask, loss_agg="token_mean")
    loss.backward()
    # d/dlogp of -A * r / 5 is -A * r / 5 where unclipped, 0 where clipped or padded
    expected = t([[-1.1 / 5, 0.0, -0.7 / 5], [0.0, 1.3 / 5, 0.0]])
    torch.testing.assert_close(logp.grad, expected)


def test_on_policy_group_of_four_by_hand():
    # rewards [1, 0, 0, 1] -> Dr. GRPO advantages [0.5, -0.5, -0.5, 0.5]; 3 tokens each, on-policy (ratio 1)
    adv = compute_advantages(t([1, 0, 0, 1]), 4, "dr_grpo")
    logp = t([[-0.1, -2.0, -0.7], [-1.2, -0.3, -0.9], [-0.5, -0.5, -0.5], [-3.0, -0.2, -0.4]]).requires_grad_(
        True
    )
    loss, stats = policy_loss(logp, logp.detach(), adv, torch.ones(4, 3), loss_agg="token_mean")
    loss.backward()
    assert loss.item() == pytest.approx(0.0)  # -mean(A) * 1
    assert stats["clip_frac"].item() == 0.0 and stats["approx_kl"].item() == 0.0
    assert stats["ratio_mean"].item() == 1.0 and stats["ratio_max"].item() == 1.0
    g = 0.5 / 12  # -A / (4 * 3 tokens)
    torch.testing.assert_close(logp.grad, t([[-g] * 3, [g] * 3, [g] * 3, [-g] * 3]))


def test_dual_clip_by_hand():
    # row 0: A = -1, ratios [4, 2] -> losses [min(4, 3) = 3 (dual), 2];  row 1: A = +1, ratios [4, 1] -> [-1.2, -1]
    logp, old, mask = inputs([[math.log(4), math.log(2)], [math.log(4), 0.0]], [[1, 1], [1, 1]])
    adv = t([-1.0, 1.0])
    loss, stats = policy_loss(logp, old, adv, mask, dual_clip=3.0)
    assert loss.item() == pytest.approx((3 + 2 - 1.2 - 1) / 4)
    assert stats["clip_frac"].item() == pytest.approx(2 / 4)
    loss.backward()
    torch.testing.assert_close(logp.grad, t([[0.0, 2 / 4], [0.0, -1 / 4]]))
    loss, stats = policy_loss(logp, old, adv, mask)  # plain PPO: no bound for A < 0
    assert loss.item() == pytest.approx((4 + 2 - 1.2 - 1) / 4)
    assert stats["clip_frac"].item() == pytest.approx(1 / 4)


# --- policy_loss, sequence ratio (GSPO) -------------------------------------------------------------------


def test_sequence_ratio_by_hand():
    # row 0: A = +1, mean log-ratio (0.1 - 0.05 + 0.25) / 3 = 0.1 -> s = e^0.1 ~ 1.105, inside the clip
    # row 1: A = +1, left-padded, mean (0.3 + 0.4) / 2 = 0.35 -> s = e^0.35 ~ 1.419, clipped to 1.2
    logp, old, mask = inputs([[0.1, -0.05, 0.25], [None, 0.3, 0.4]], HAND_MASK)
    adv = t([1.0, 1.0])
    loss, stats = policy_loss(logp, old, adv, mask, ratio_level="sequence", loss_agg="seq_mean_token_mean")
    assert loss.item() == pytest.approx((-math.exp(0.1) - 1.2) / 2)
    assert stats["clip_frac"].item() == pytest.approx(2 / 5)
    assert stats["ratio_mean"].item() == pytest.approx((3 * math.exp(0.1) + 2 * math.exp(0.35)) / 5)
    assert stats["ratio_max"].item() == pytest.approx(math.exp(0.35))
    k3 = [math.exp(x) - 1 - x for x in [0.1, -0.05, 0.25, 0.3, 0.4]]  # approx_kl stays per token
    assert stats["approx_kl"].item() == pytest.approx(sum(k3) / 5)
    loss.backward()
    # d/dlogp_t of -(1/2) * (1/3) * sum_t s_0 = -(1/2) * (1/3) * s_0 on each token of row 0; row 1 clipped
    g = -math.exp(0.1) / 6
    torch.testing.assert_close(logp.grad, t([[g, g, g], [0.0, 0.0, 0.0]]))


def test_sequence_ratio_is_gspo_sequence_objective():
    # unclipped, the GSPO-token loss and its gradient equal those of -mean_i A_i s_i written directly
    logp, old, mask = inputs([[0.05, -0.02, 0.01], [None, 0.03, -0.04]], HAND_MASK)
    adv = t([0.7, -1.3])
    loss, _ = policy_loss(logp, old, adv, mask, ratio_level="sequence", loss_agg="seq_mean_token_mean")
    (grad,) = torch.autograd.grad(loss, logp)
    lp = logp.detach().clone().requires_grad_(True)
    s0 = torch.exp((lp[0] - old[0]).mean())
    s1 = torch.exp((lp[1, 1:] - old[1, 1:]).mean())
    direct = -(0.7 * s0 - 1.3 * s1) / 2
    (direct_grad,) = torch.autograd.grad(direct, lp)
    torch.testing.assert_close(loss, direct)
    torch.testing.assert_close(grad, direct_grad)


# --- edge cases ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("ratio_level,agg", list(itertools.product(["token", "sequence"], AGGS)))
def test_padding_may_hold_inf_without_leaking(ratio_level, agg):
    logp, old, mask, adv = hand_case(extra_empty_row=True)
    with torch.no_grad():
        pad = mask == 0
        logp[pad] = -math.inf
    old = torch.where(pad, torch.full_like(old, -math.inf), old)
    loss, stats = policy_loss(logp, old, adv, mask, loss_agg=agg, ratio_level=ratio_level, dual_clip=3.0)
    loss.backward()
    assert torch.isfinite(loss) and all(torch.isfinite(v) for v in stats.values())
    assert torch.equal(logp.grad[pad], torch.zeros(int(pad.sum()), dtype=torch.float64))


@pytest.mark.parametrize("ratio_level,agg", list(itertools.product(["token", "sequence"], AGGS)))
def test_all_empty_mask_gives_zero_loss_and_stats(ratio_level, agg):
    logp, old, _, adv = hand_case()
    loss, stats = policy_loss(logp, old, adv, torch.zeros(2, 3), loss_agg=agg, ratio_level=ratio_level)
    loss.backward()
    assert loss.item() == 0.0
    assert torch.equal(logp.grad, torch.zeros(2, 3, dtype=torch.float64))
    assert all(v.item() == 0.0 for v in stats.values())


def test_stats_are_detached_scalars_with_the_agreed_keys():
    logp, old, mask, adv = hand_case()
    _, stats = policy_loss(logp, old, adv, mask)
    assert set(stats) == {"clip_frac", "ratio_mean", "ratio_max", "approx_kl"}
    assert all(v.dim() == 0 and not v.requires_grad for v in stats.values())


def test_policy_loss_refuses_bad_arguments():
    logp, old, mask, adv = hand_case()
    with pytest.raises(ValueError, match="token, sequence"):
        policy_loss(logp, old, adv, mask, ratio_level="tokens")
    with pytest.raises(ValueError, match="loss_agg"):
        policy_loss(logp, old, adv, mask, loss_agg="mean")
    with pytest.raises(ValueError, match=r"advantages must be \(N,\)"):
        policy_loss(logp, old, adv[:1], mask)


# --- gradient vs central finite differences ---------------------------------------------------------------

# Every ratio sits far from a clip boundary (token and sequence level), so the loss is smooth around it.
GRAD_LOG_RATIOS = [
    [0.05, -0.1, 0.08, 0.0],  # A = +1.0, unclipped
    [None, None, 0.02, -0.07],  # A = -0.5, left-padded, unclipped
    [0.6, 0.5, 0.7, None],  # A = +2.0, ratio ~1.8 > 1.2: clipped, gradient exactly 0
    [1.5, 1.4, 1.6, 1.3],  # A = -1.0, ratio ~4.3 > dual_clip 3: bounded by the dual clip, else unclipped
    [0.2, 0.1, -0.3, 0.4],  # A = +1.0, empty completion
]
GRAD_MASK = [[1, 1, 1, 1], [0, 0, 1, 1], [1, 1, 1, 0], [1, 1, 1, 1], [0, 0, 0, 0]]
GRAD_ADV = [1.0, -0.5, 2.0, -1.0, 1.0]


@pytest.mark.parametrize(
    "ratio_level,agg,dual_clip", list(itertools.product(["token", "sequence"], AGGS, [None, 3.0]))
)
def test_gradient_matches_finite_differences(ratio_level, agg, dual_clip):
    old = -1.0 - 0.1 * torch.arange(20, dtype=torch.float64).view(5, 4)
    logp, old, mask = inputs(GRAD_LOG_RATIOS, GRAD_MASK, old=old)
    adv = t(GRAD_ADV)
    kwargs = dict(loss_agg=agg, ratio_level=ratio_level, dual_clip=dual_clip, max_tokens=6)

    def f(x):
        return policy_loss(x, old, adv, mask, **kwargs)[0]

    (grad,) = torch.autograd.grad(f(logp), logp)
    h = 1e-6
    fd = torch.zeros_like(grad)
    base = logp.detach()
    for i, j in itertools.product(range(5), range(4)):
        step = torch.zeros_like(base)
        step[i, j] = h
        fd[i, j] = (f(base + step) - f(base - step)) / (2 * h)
    torch.testing.assert_close(grad, fd, atol=1e-8, rtol=1e-6)

    assert (grad[0] != 0).all()  # the unclipped row does learn
    assert torch.equal(grad[2], torch.zeros(4, dtype=torch.float64))  # clipped
    assert torch.equal(grad[4], torch.zeros(4, dtype=torch.float64))  # empty completion
    assert torch.equal(grad[1, :2], torch.zeros(2, dtype=torch.float64))  # left padding
    if dual_clip is None:
        assert (grad[3] != 0).all()  # A < 0 with a large ratio: plain PPO does not clip
    else:
        assert torch.equal(grad[3], torch.zeros(4, dtype=torch.float64))
