"""Off-policy corrections against hand-computed values: TIS weights, the sequence mask (geometric mean and
product), the engine/learner KL and the decoupled PPO objective with its gradient."""

from __future__ import annotations

import math

import pytest
import torch

from rlvr.algorithms.losses import policy_loss
from rlvr.algorithms.offpolicy import (
    decoupled_policy_loss,
    offpolicy_weights,
    sequence_keep,
    truncated_is_weights,
)

L = math.log
# Two completions: 3 tokens and 2 tokens (+ one padding slot that holds -inf on purpose).
PROX = torch.tensor([[L(0.5), L(0.2), L(0.9)], [L(0.4), L(0.4), -math.inf]])
BEHAV = torch.tensor([[L(0.25), L(0.4), L(0.3)], [L(0.5), L(0.5), -math.inf]])
MASK = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])


def close(t: torch.Tensor, expected) -> None:
    torch.testing.assert_close(t.detach().float(), torch.as_tensor(expected, dtype=torch.float32), atol=1e-6, rtol=1e-5)


# pi_prox / mu per token: row 0 = 2.0, 0.5, 3.0; row 1 = 0.8, 0.8


def test_tis_weights_are_the_ratio_capped_at_c():
    w, truncated = truncated_is_weights(PROX, BEHAV, MASK, cap=2.5)
    close(w, [[2.0, 0.5, 2.5], [0.8, 0.8, 0.0]])
    assert truncated.tolist() == [[False, False, True], [False, False, False]]
    w, truncated = truncated_is_weights(PROX, BEHAV, MASK, cap=math.inf)  # plain importance sampling
    close(w, [[2.0, 0.5, 3.0], [0.8, 0.8, 0.0]])
    assert not truncated.any()


def test_sequence_mask_geometric_mean_and_product():
    # geometric means: row 0 (2 * 0.5 * 3)^(1/3) = 1.442, row 1 0.8
    assert sequence_keep(PROX, BEHAV, MASK, cap=1.4).tolist() == [False, True]  # 1.442 > 1.4; 0.8 >= 1/1.4
    assert sequence_keep(PROX, BEHAV, MASK, cap=1.5).tolist() == [True, True]
    assert sequence_keep(PROX, BEHAV, MASK, cap=1.2).tolist() == [False, False]  # 0.8 < 1/1.2 = 0.833
    # products: row 0 3.0, row 1 0.64
    assert sequence_keep(PROX, BEHAV, MASK, cap=2.0, reduce="sum").tolist() == [False, True]
    assert sequence_keep(PROX, BEHAV, MASK, cap=1.5, reduce="sum").tolist() == [False, False]  # 0.64 < 0.667
    assert sequence_keep(PROX, BEHAV, MASK, cap=None).tolist() == [True, True]
    with pytest.raises(ValueError, match="reduce"):
        sequence_keep(PROX, BEHAV, MASK, cap=2.0, reduce="max")


def test_offpolicy_weights_combine_and_report_kl_and_shares():
    w, st = offpolicy_weights(PROX, BEHAV, MASK, tis_cap=2.5, seq_mask_cap=1.4)
    close(w, [[0.0, 0.0, 0.0], [0.8, 0.8, 0.0]])  # row 0 masked as a whole
    assert float(st["truncated_frac"]) == pytest.approx(1 / 5)
    assert float(st["masked_frac"]) == pytest.approx(1 / 2)
    # k3 of KL(mu || pi_prox) per token: r - 1 - log r with r = pi_prox / mu
    k3 = [r - 1 - math.log(r) for r in (2.0, 0.5, 3.0, 0.8, 0.8)]
    assert float(st["kl"]) == pytest.approx(sum(k3) / 5, rel=1e-5)
    same, st = offpolicy_weights(PROX, PROX, MASK, tis_cap=2.0, seq_mask_cap=2.0)
    assert same.tolist() == MASK.tolist() and float(st["kl"]) == 0.0 and float(st["masked_frac"]) == 0.0


def test_decoupled_objective_value_and_gradient():
    u = torch.tensor([[1.5, 1.0, 0.9], [0.5, 1.1, 1.0]])  # pi_theta / pi_prox
    logp = torch.where(MASK != 0, PROX + u.log(), PROX).requires_grad_(True)
    adv = torch.tensor([1.0, -1.0])
    loss, st = decoupled_policy_loss(logp, PROX, BEHAV, adv, MASK, tis_cap=2.5, seq_mask_cap=None,
                                     clip_low=0.2, clip_high=0.2, loss_agg="token_mean")
    # row 0 (A=1):  -w * min(u, clip(u)) = -2*1.2, -0.5*1.0, -2.5*0.9 ; row 1 (A=-1): 0.8*0.8, 0.8*1.1
    assert float(loss.detach()) == pytest.approx((-2.4 - 0.5 - 2.25 + 0.64 + 0.88) / 5, rel=1e-5)
    loss.backward()
    # d/dlogp of -A w u on unclipped tokens, 0 on clipped ones; token-mean over 5 tokens
    expected = [[0.0, -0.5 * 1.0 / 5, -2.5 * 0.9 / 5], [0.0, 0.8 * 1.1 / 5, 0.0]]
    close(logp.grad, expected)
    assert not torch.isnan(logp.grad).any()
    assert float(st["offpolicy/truncated_frac"]) == pytest.approx(1 / 5)
    assert float(st["clip_frac"]) == pytest.approx(2 / 5)  # the clip is on u, not on pi_theta / mu


def test_first_pass_is_tis_weighted_grpo_and_on_policy_is_plain_ppo():
    adv = torch.tensor([0.7, -1.3])
    logp = PROX.clone().requires_grad_(True)  # first optimiser pass: pi_theta = pi_prox in value
    loss, _ = decoupled_policy_loss(logp, PROX, BEHAV, adv, MASK, tis_cap=2.5, seq_mask_cap=None,
                                    loss_agg="token_mean")
    loss.backward()
    w, _ = truncated_is_weights(PROX, BEHAV, MASK, 2.5)
    close(logp.grad, (-adv[:, None] * w / 5).tolist())
    # behaviour == proximal: exactly PPO-clip against the proximal policy
    cur = torch.where(MASK != 0, PROX + 0.3, PROX)
    a, _ = decoupled_policy_loss(cur, PROX, PROX, adv, MASK, tis_cap=2.0, seq_mask_cap=2.0)
    b, _ = policy_loss(cur, PROX, adv, MASK)
    assert float(a) == pytest.approx(float(b))
