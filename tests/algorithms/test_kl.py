"""KL estimators against hand-computed values and their exact expectations."""

import math

import pytest
import torch

from rlvr.algorithms.kl import kl_estimate, kl_penalized_rewards


def test_estimators_by_hand():
    logp, ref = torch.tensor([[math.log(0.5)]]), torch.tensor([[math.log(0.25)]])
    # log(ref/p) = log(0.5) = -ln 2
    assert kl_estimate(logp, ref, "k1").item() == pytest.approx(math.log(2))
    assert kl_estimate(logp, ref, "k2").item() == pytest.approx(0.5 * math.log(2) ** 2)
    assert kl_estimate(logp, ref, "k3").item() == pytest.approx(0.5 + math.log(2) - 1)  # e^{-ln2} + ln2 - 1
    assert kl_estimate(logp, ref).item() == pytest.approx(0.5 + math.log(2) - 1)  # k3 is the default


@pytest.mark.parametrize("estimator", ["k1", "k2", "k3"])
def test_identical_policies_give_zero(estimator):
    logp = torch.tensor([[-0.3, -2.0, -7.5], [-0.01, -1.0, -4.0]])
    assert torch.equal(kl_estimate(logp, logp.clone(), estimator), torch.zeros(2, 3))


def test_k1_and_k3_are_unbiased_k2_and_k3_nonnegative():
    # p = [0.5, 0.25, 0.25], ref = [0.25, 0.25, 0.5]: KL(p || ref) = 0.5 ln 2 + 0 + 0.25 ln 0.5 = 0.25 ln 2
    p = torch.tensor([0.5, 0.25, 0.25], dtype=torch.float64)
    ref = torch.tensor([0.25, 0.25, 0.5], dtype=torch.float64)
    for estimator in ["k1", "k3"]:
        expectation = (p * kl_estimate(p.log(), ref.log(), estimator)).sum()  # exact E_{x~p}
        assert expectation.item() == pytest.approx(0.25 * math.log(2))
    assert (kl_estimate(p.log(), ref.log(), "k1") < 0).any()  # k1 can go negative on single samples
    for estimator in ["k2", "k3"]:
        assert (kl_estimate(p.log(), ref.log(), estimator) >= 0).all()


def test_shape_is_kept_and_gradient_flows():
    logp = torch.full((2, 3), -1.0, requires_grad=True)
    kl = kl_estimate(logp, torch.full((2, 3), -1.5), "k3")
    assert kl.shape == (2, 3)
    kl.sum().backward()
    # d/dlogp [e^{ref - logp} - (ref - logp) - 1] = -e^{ref - logp} + 1 = 1 - e^{-0.5}
    torch.testing.assert_close(logp.grad, torch.full((2, 3), 1 - math.exp(-0.5)))


def test_unknown_estimator_is_refused():
    with pytest.raises(ValueError, match="k1, k2, k3"):
        kl_estimate(torch.zeros(1, 1), torch.zeros(1, 1), "k4")


def test_kl_in_reward_subtracts_each_sequences_masked_sum():
    logp = torch.log(torch.tensor([[0.5, 0.5, 0.5], [0.5, 0.5, 0.5]]))
    ref = torch.log(torch.tensor([[0.25, 0.5, 0.25], [0.25, 0.25, 0.25]]))
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])  # row 0's last token is padding
    k1 = math.log(2)  # per token where pi = 0.5 and pi_ref = 0.25; 0 where they agree
    out = kl_penalized_rewards(torch.tensor([1.0, 0.0]), logp, ref, mask, kl_coef=0.1, estimator="k1")
    assert out.tolist() == pytest.approx([1.0 - 0.1 * k1, 0.0 - 0.1 * 3 * k1])
