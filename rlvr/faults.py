"""Samples with no reward, by cause, and the limits that stop a run; samples that did not come from the policy.

A reward is either true or not given. A sample is left without one when the sandbox could not run the
candidate or its environment gave none (`verify/infra_errors`, limit `train.max_infra_error_rate`), or when the
verifier itself failed on it (`rlvr.verifiers.VerifierError`, kept on the rollout: `verify/verifier_errors`,
limit `train.max_verifier_error_rate`; a bug in reward code is not a host fault, so it has a limit of its own).
Their groups are left out of the batch.
"""

from __future__ import annotations

from collections.abc import Callable

from rlvr.environments.metrics import unscored_episodes
from rlvr.types import Rollout


class InfraErrorRate(RuntimeError):
    """Too many samples of a step could not be scored because the sandbox failed: the run stops."""


class VerifierErrorRate(RuntimeError):
    """Too many samples of a step could not be scored because the verifier itself failed: the run stops."""


def scored_group(group: list[Rollout]) -> bool:
    """Every sample of the group has a score (none was left unscored by a sandbox, environment or verifier
    fault)."""
    return all(r.score is not None for r in group)


def _dropped(groups: list[list[Rollout]], unscored: Callable[[Rollout], bool]) -> int:
    return sum(any(unscored(r) for r in g) for g in groups)


def count_unscored(rollouts: list[Rollout], G: int, limits, info: dict, step: int, log_event: Callable[..., None],
                   totals) -> None:
    """Count step `step`'s samples with no reward into `info` and into the run's `totals` (attributes
    `infra_errors`, `verifier_errors`), by cause, and write an event per cause (the verifier's names the
    verifier, the first problem and its message). Raises `VerifierErrorRate` or `InfraErrorRate` when a cause's
    share of the samples passes its limit in `limits` (`cfg.train`), so a verifier that fails on every sample
    stops the run at its first step instead of training on nothing."""
    groups = [rollouts[g : g + G] for g in range(0, len(rollouts), G)]
    faults = [r.verifier_error for r in rollouts if r.score is None and r.verifier_error is not None]
    missing = sum(r.score is None and r.verifier_error is None for r in rollouts)
    info["verify/infra_errors"] = info.get("verify/infra_errors", 0) + missing
    info["verify/verifier_errors"] = info.get("verify/verifier_errors", 0) + len(faults)
    env_counts, env_report = unscored_episodes(rollouts)
    for key, n in env_counts.items():
        info[key] = info.get(key, 0) + n
    if faults:
        totals.verifier_errors += len(faults)
        dropped = _dropped(groups, lambda r: r.score is None and r.verifier_error is not None)
        info["verify/verifier_dropped_groups"] = info.get("verify/verifier_dropped_groups", 0) + dropped
        first = faults[0]
        verifiers = sorted({e.verifier for e in faults})
        log_event(step, "verify_verifier_errors", samples=len(faults), groups_dropped=dropped, verifiers=verifiers,
                  verifier=first.verifier, problem=first.problem_id, error=first.message)
        rate = limits.max_verifier_error_rate
        if len(faults) / len(rollouts) > rate:
            raise VerifierErrorRate(
                f"step {step}: the verifier itself failed on {len(faults)} of {len(rollouts)} samples (more than "
                f"train.max_verifier_error_rate={rate}); this is a bug in the reward code or its reference answers, "
                f"not the model's doing: fix {', '.join(verifiers)}. First: {first}")
    if not missing:
        return
    totals.infra_errors += missing
    dropped = _dropped(groups, lambda r: r.score is None and r.verifier_error is None)
    info["verify/infra_dropped_groups"] = info.get("verify/infra_dropped_groups", 0) + dropped
    log_event(step, "verify_infra_errors", samples=missing, groups_dropped=dropped)
    rate = limits.max_infra_error_rate
    if missing / len(rollouts) <= rate:
        return
    if env_report:
        raise InfraErrorRate(f"step {step}: {missing} of {len(rollouts)} samples have no reward "
                             f"(more than train.max_infra_error_rate={rate}): {env_report}")
    from rlvr.verifiers.sandbox import describe

    raise InfraErrorRate(
        f"step {step}: the sandbox could not run {missing} of {len(rollouts)} samples "
        f"(more than train.max_infra_error_rate={rate}); these are host faults, not the model's: check that "
        f"the host allows what the sandbox needs (processes, memory, namespaces) and that nothing else "
        f"exhausts it. {describe()}")


# Engine/learner KL (nats per token) above which samples are not what the policy would have drawn. The same
# policy in two numeric forms measures far below it (bf16 beside bf16 about 1e-3, int8 rollouts about 5e-3 on
# SmolLM2-135M: benchmarks/results/rollout_forms_cpu.json); a corrupted prefill measured 0.5 to 1.8.
ENGINE_GAP_LIMIT = 0.1


def check_engine_gap(metrics: dict, step: int, log_event: Callable[..., None]) -> bool:
    """Write an `engine_learner_mismatch` event when the step's engine/learner KL (`offpolicy/kl`, measured on
    the trained tokens before the update) passes `ENGINE_GAP_LIMIT`: the engine's log-probs are not the
    learner's on the same tokens, so the samples were drawn from something else than the policy being trained
    (a broken engine, weights that did not sync, a tokenizer or template mismatch). Returns whether it did."""
    kl = metrics.get("offpolicy/kl")
    if kl is None or not kl > ENGINE_GAP_LIMIT:
        return False
    active = bool(metrics.get("offpolicy/active"))
    log_event(step, "engine_learner_mismatch", kl=round(float(kl), 4),
              logprob_gap=round(float(metrics.get("logprob_gap", float("nan"))), 4),
              masked_frac=round(float(metrics.get("offpolicy/masked_frac", float("nan"))), 4),
              correction="on" if active else "off",
              hint=f"engine and learner disagree by more than {ENGINE_GAP_LIMIT} nats/token on the same tokens: "
                   "the samples did not come from the policy being trained"
                   + ("; the off-policy correction masks and truncates them" if active else
                      " and nothing corrects for it"))
    return True
