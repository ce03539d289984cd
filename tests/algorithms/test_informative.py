"""The informative share of groups of G: by hand, the unbiased estimate from >= G samples, the beta-binomial fit,
and the estimate from screens of fewer than G samples against the truth on simulated problems."""

import math
import random

import pytest

from rlvr.algorithms.informative import (
    GRID,
    informative,
    informative_share_of_groups,
    informative_unbiased,
    pass_rate_prior,
)


def test_by_hand():
    assert informative(0.1, 8) == pytest.approx(1 - 0.1**8 - 0.9**8)
    assert informative(0.0, 8) == 0.0 and informative(1.0, 8) == 0.0
    assert informative_unbiased(9, 10, 8) == pytest.approx(1 - 9 / 45)  # C(9,8) / C(10,8) of 8-subsets all right
    assert informative_unbiased(0, 8, 8) == 0.0 and informative_unbiased(3, 8, 8) == 1.0
    with pytest.raises(ValueError):
        informative_unbiased(1, 4, 8)  # fewer samples than the group: no unbiased estimate


def test_groups_of_exactly_g_give_the_share_of_mixed_groups():
    obs = [(0, 8), (3, 8), (8, 8), (1, 8), (7, 8)]
    assert informative_share_of_groups(obs, 8) == pytest.approx(3 / 5)
    assert informative_share_of_groups([], 8) == 0.0
    assert informative_share_of_groups([(0, 4)] * 10, 8) == pytest.approx(0.0, abs=1e-6)  # nothing solved


def test_the_fitted_prior_puts_the_pass_rates_where_they_are():
    # half the problems never solved, half solved 1 time in 2, 4 samples each (exact expected counts)
    obs = [(0, 4)] * 531 + [(1, 4)] * 125 + [(2, 4)] * 188 + [(3, 4)] * 125 + [(4, 4)] * 31
    weights = pass_rate_prior(obs)
    assert sum(weights) == pytest.approx(1.0)
    near = lambda lo, hi: sum(w for w, p in zip(weights, GRID) if lo <= p <= hi)  # noqa: E731
    assert near(0.0, 0.04) == pytest.approx(0.5, abs=0.05) and near(0.4, 0.6) == pytest.approx(0.5, abs=0.08)
    assert informative_share_of_groups(obs, 8) == pytest.approx(0.5 * informative(0.5, 8), abs=0.03)


@pytest.mark.parametrize("rates", [[0.1], [0.02, 0.05, 0.6, 0.9], [0.0, 0.0, 0.02, 0.1, 0.2], [0.0, 0.0, 0.0, 0.05],
                                   [0.0, 0.5], [0.0, 0.3]])
def test_screens_of_four_estimate_the_share_of_groups_of_eight(rates):
    """Problems screened with 4 samples each: counting mixed screens falls 15-45% short of the share of mixed
    groups of 8; the estimate lands within 0.035 of it (seeded simulation, 2000 problems)."""
    rng = random.Random(0)
    truth = sum(informative(p, 8) for p in rates) / len(rates)
    obs = []
    for _ in range(2000):
        p = rng.choice(rates)
        obs.append((sum(rng.random() < p for _ in range(4)), 4))
    mixed_screens = sum(0 < c < 4 for c, _ in obs) / len(obs)
    assert mixed_screens < 0.87 * truth
    assert math.isclose(informative_share_of_groups(obs, 8), truth, abs_tol=0.035)
