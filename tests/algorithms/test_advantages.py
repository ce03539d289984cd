"""Advantage estimators against hand-computed numbers."""

import math

import pytest
import torch

from rlvr.algorithms.advantages import (
    compute_advantages,
    dr_grpo_advantages,
    grpo_advantages,
    reinforce_advantages,
    reinforce_pp_advantages,
    rloo_advantages,
)

ESTIMATORS = ["grpo", "dr_grpo", "rloo", "reinforce_pp", "reinforce"]


def t(values):
    return torch.tensor(values, dtype=torch.float64)


def test_grpo_group_std_by_hand():
    # group [1, 0, 0, 1]: mean 0.5, deviations +-0.5, unbiased var = 4 * 0.25 / 3 = 1/3
    adv = compute_advantages(t([1, 0, 0, 1]), group_size=4, estimator="grpo", scale="group")
    a = 0.5 / (math.sqrt(1 / 3) + 1e-6)  # ~0.866
    torch.testing.assert_close(adv, t([a, -a, -a, a]))


def test_grpo_two_groups_second_all_equal():
    adv = compute_advantages(t([1, 0, 0, 0, 1, 1, 1, 1]), group_size=4)
    # group 0: mean 0.25, deviations [0.75, -0.25, -0.25, -0.25], unbiased var = (0.5625 + 3*0.0625) / 3 = 0.25
    s = math.sqrt(0.25) + 1e-6
    torch.testing.assert_close(adv, t([0.75 / s, -0.25 / s, -0.25 / s, -0.25 / s, 0, 0, 0, 0]))


def test_grpo_batch_scale_by_hand():
    rewards = t([1, 0, 0, 0, 1, 1, 1, 0])
    adv = compute_advantages(rewards, group_size=4, scale="batch")
    # group means 0.25 and 0.75; batch mean 0.5, every deviation +-0.5, unbiased var = 8 * 0.25 / 7 = 2/7
    s = math.sqrt(2 / 7) + 1e-6
    expected = [0.75, -0.25, -0.25, -0.25, 0.25, 0.25, 0.25, -0.75]
    torch.testing.assert_close(adv, t([e / s for e in expected]))


def test_grpo_scale_none_and_dr_grpo_ignore_std():
    rewards = t([1, 0, 0, 0, 1, 1, 1, 0])
    expected = t([0.75, -0.25, -0.25, -0.25, 0.25, 0.25, 0.25, -0.75])
    torch.testing.assert_close(compute_advantages(rewards, 4, "grpo", scale="none"), expected)
    for scale in ["group", "batch", "none"]:
        torch.testing.assert_close(compute_advantages(rewards, 4, "dr_grpo", scale=scale), expected)
    torch.testing.assert_close(dr_grpo_advantages(rewards, 4), expected)


def test_rloo_by_hand():
    # r_0 = 1, others {0, 0, 1} -> 1 - 1/3; r_1 = 0, others {1, 0, 1} -> 0 - 2/3
    adv = compute_advantages(t([1, 0, 0, 1]), 4, "rloo")
    torch.testing.assert_close(adv, t([2 / 3, -2 / 3, -2 / 3, 2 / 3]))
    # G = 2: each is compared with the other one
    torch.testing.assert_close(rloo_advantages(t([3, 1, 5, 2]), 2), t([2, -2, 3, -3]))


def test_reinforce_pp_batch_normalised_by_hand():
    # batch mean 0.5, unbiased var 2/7; groups play no role
    adv = compute_advantages(t([1, 0, 0, 0, 1, 1, 1, 0]), 4, "reinforce_pp", scale="group")
    a = 0.5 / (math.sqrt(2 / 7) + 1e-6)
    torch.testing.assert_close(adv, t([a, -a, -a, -a, a, a, a, -a]))
    torch.testing.assert_close(reinforce_pp_advantages(t([1, 0, 0, 0, 1, 1, 1, 0])), adv)


def test_reinforce_mean_baseline_by_hand():
    adv = compute_advantages(t([2, 0, 1, 1]), 2, "reinforce")
    torch.testing.assert_close(adv, t([1, -1, 0, 0]))  # batch mean 1, not scaled
    torch.testing.assert_close(reinforce_advantages(t([2, 0, 1, 1])), adv)


@pytest.mark.parametrize("estimator", ESTIMATORS)
@pytest.mark.parametrize("scale", ["group", "batch", "none"])
def test_all_equal_rewards_give_exact_zeros(estimator, scale):
    # 0.1 is not exact in binary, so mean(x) - x is float residue unless the code treats the case
    rewards = torch.full((6,), 0.1)
    adv = compute_advantages(rewards, 3, estimator, scale=scale)
    assert torch.equal(adv, torch.zeros(6))


@pytest.mark.parametrize("estimator", ["grpo", "dr_grpo", "rloo"])
@pytest.mark.parametrize("scale", ["group", "batch", "none"])
def test_group_of_one_gives_zeros(estimator, scale):
    adv = compute_advantages(t([1, 0, 0.5]), 1, estimator, scale=scale)
    assert torch.equal(adv, torch.zeros(3, dtype=torch.float64))


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_single_completion_batch_is_zero_not_nan(estimator):
    adv = compute_advantages(t([0.7]), 1, estimator)
    assert torch.equal(adv, t([0.0]))


def test_grpo_function_matches_dispatch_and_keeps_dtype():
    rewards = torch.tensor([1.0, 0.0, 0.5, 0.5])
    adv = grpo_advantages(rewards, 2, scale="group")
    assert adv.dtype == torch.float32
    torch.testing.assert_close(adv, compute_advantages(rewards, 2))
    # [1, 0]: mean 0.5, unbiased std sqrt(0.5); [0.5, 0.5]: constant
    a = 0.5 / (math.sqrt(0.5) + 1e-6)
    torch.testing.assert_close(adv, torch.tensor([a, -a, 0.0, 0.0]))


def test_unknown_names_and_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="grpo, dr_grpo, rloo, reinforce_pp, reinforce"):
        compute_advantages(t([1, 0]), 2, "ppo")
    with pytest.raises(ValueError, match="group, batch, none"):
        compute_advantages(t([1, 0]), 2, "grpo", scale="token")
    with pytest.raises(ValueError, match="group_size=4"):
        compute_advantages(t([1, 0, 1]), 4)
    with pytest.raises(ValueError, match="1-D"):
        compute_advantages(torch.zeros(2, 2), 2)
