"""The informative share: how many groups of G samples carry a learning signal (neither all right nor all wrong,
so their group-relative advantages are not all 0), estimated from the samples seen so far.

    informative(p, G) = 1 - p^G - (1 - p)^G        for a problem with pass rate p

From c correct of n >= G samples, C(c, G) / C(n, G) estimates p^G without bias (the chance that G of the n
drawn samples are all right). From fewer than G samples (a screen of k < G, `algorithm.screen_samples`) no
unbiased estimate exists; `informative_share_of_groups` then takes the expectation under each problem's
posterior pass rate, the prior being the distribution of pass rates that makes all the observations most
likely (the nonparametric maximum-likelihood mixing distribution on a grid of pass rates, fitted by EM:
empirical Bayes, Kiefer and Wolfowitz 1956). A fitted Beta prior was tried first: it overstated the share by
0.09 when half the problems were never solved and half were coin flips; the grid fit came within 0.035 of the
truth on every simulated population in the tests (2000 problems; within 0.07 on average over windows of 16).
Plugging c / n into the formula instead, or counting how many k-sample screens were mixed, understates the
share at G: a problem solved 10% of the time gives a mixed screen of 4 with chance 0.34, a mixed group of 8
with chance 0.57.
"""

from __future__ import annotations

from math import comb

GRID = [i / 50 for i in range(51)]  # pass rates the fitted prior puts its mass on
EM_ITERATIONS = 300


def informative(p: float, group_size: int) -> float:
    """1 - p^G - (1 - p)^G: the chance that G samples of a problem with pass rate `p` are not all equal."""
    return 1.0 - p**group_size - (1.0 - p) ** group_size


def informative_unbiased(correct: int, n: int, group_size: int) -> float:
    """Unbiased estimate of `informative(p, G)` from `correct` of `n >= G` samples."""
    if not 1 <= group_size <= n or not 0 <= correct <= n:
        raise ValueError(f"need 1 <= group_size ({group_size}) <= n ({n}) and 0 <= correct ({correct}) <= n")
    return 1.0 - (comb(correct, group_size) + comb(n - correct, group_size)) / comb(n, group_size)


def pass_rate_prior(observations: list[tuple[int, int]]) -> list[float]:
    """Weights over `GRID`: the distribution of pass rates under which the observed `(correct, n)` per problem
    are most likely (EM for a binomial mixture with the grid's rates fixed, from uniform weights)."""
    tally: dict[tuple[int, int], int] = {}
    for c, n in observations:
        tally[(c, n)] = tally.get((c, n), 0) + 1
    rows = [([comb(n, c) * p**c * (1.0 - p) ** (n - c) for p in GRID], m) for (c, n), m in tally.items()]
    weights = [1.0 / len(GRID)] * len(GRID)
    for _ in range(EM_ITERATIONS):
        acc = [0.0] * len(GRID)
        for lik, m in rows:
            z = sum(w * x for w, x in zip(weights, lik))
            for j, (w, x) in enumerate(zip(weights, lik)):
                acc[j] += m * w * x / z
        weights = [a / len(observations) for a in acc]
    return weights


def informative_share_of_groups(observations: list[tuple[int, int]], group_size: int) -> float:
    """Expected share of informative groups of `group_size` on the problems behind `observations` (`(correct,
    n)` per problem; n may differ between problems and fall below G): the unbiased estimate for n >= G, the
    posterior expectation under the fitted prior for n < G (module doc). 0.0 for no observations."""
    if group_size < 1:
        raise ValueError(f"group_size must be >= 1, got {group_size}")
    if not observations:
        return 0.0
    prior = pass_rate_prior(observations) if any(n < group_size for _, n in observations) else []
    signal = [informative(p, group_size) for p in GRID]
    total = 0.0
    for c, n in observations:
        if n >= group_size:
            total += informative_unbiased(c, n, group_size)
            continue
        post = [w * p**c * (1.0 - p) ** (n - c) for w, p in zip(prior, GRID)]
        mass = sum(post)  # > 0: each observation pulls prior mass to where it is likely; the plug-in if it underflowed
        total += sum(x * s for x, s in zip(post, signal)) / mass if mass > 0 else informative(c / n, group_size)
    return total / len(observations)
