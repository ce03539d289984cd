"""Episode diagnostics for the trainer's per-step log (empty for single-turn rollouts, whose log is unchanged)."""

from __future__ import annotations

from collections import Counter

from rlvr.types import Rollout


def episode_metrics(rollouts: list[Rollout]) -> dict[str, float]:
    """`episode/turns`: model turns per episode; `episode/tool_calls` and `episode/tool_calls/<tool>`: calls per
    episode; `episode/tool_error_rate`: failed calls / calls, with `episode/tool_errors/<kind>` counts;
    `episode/tool_rate`: share of episodes with a call; `episode/correct_with_tool`: share of correct answers
    whose episode called a tool; `episode/model_tokens` and `episode/observation_tokens` per episode."""
    eps = [r for r in rollouts if r.episode is not None]
    if not eps:
        return {}
    n = len(eps)
    calls = [c for r in eps for c in r.episode.calls]
    by_tool = Counter(c.tool for c in calls)
    errors = Counter(c.error for c in calls if c.error is not None)
    correct = [r for r in eps if r.score is not None and r.score.correct]
    model_tokens = sum(sum(r.completion_mask) if r.completion_mask is not None else len(r.completion_ids)
                       for r in eps)
    m = {
        "episode/turns": sum(r.episode.turns for r in eps) / n,
        "episode/tool_calls": len(calls) / n,
        "episode/tool_rate": sum(bool(r.episode.calls) for r in eps) / n,
        "episode/tool_error_rate": sum(errors.values()) / len(calls) if calls else 0.0,
        "episode/correct_with_tool": sum(bool(r.episode.calls) for r in correct) / len(correct) if correct else 0.0,
        "episode/model_tokens": model_tokens / n,
        "episode/observation_tokens": (sum(len(r.completion_ids) for r in eps) - model_tokens) / n,
        "episode/replayed_cells": sum(c.replayed_cells for c in calls),
    }
    m.update({f"episode/tool_calls/{tool}": k / n for tool, k in sorted(by_tool.items())})
    m.update({f"episode/tool_errors/{kind}": k for kind, k in sorted(errors.items())})
    return m


def unscored_episodes(rollouts: list[Rollout]) -> tuple[dict[str, int], str]:
    """Samples whose environment gave no reward (the adapters): `episode/env_errors` (it raised) and
    `episode/env_unfinished` (cut before it gave one) counts (none where no environment gives rewards), and a
    sentence for people ("" when none)."""
    if not any(r.episode is not None and r.episode.env_scored for r in rollouts):
        return {}, ""
    lost = [r.episode.env_error or "" for r in rollouts
            if r.score is None and r.episode is not None and r.episode.env_scored]
    unfinished = sum(e.startswith("unfinished") for e in lost)
    raised = [e for e in lost if not e.startswith("unfinished")]
    counts = {"episode/env_errors": len(raised), "episode/env_unfinished": unfinished}
    if not lost:
        return counts, ""
    say = f"the environment gave no reward for {len(lost)} samples"
    if raised:
        say += f"; {len(raised)} because it failed (first: {raised[0]})"
    if unfinished:
        say += (f"; {unfinished} because the episode was cut before it gave one (raise task.episode.max_turns or "
                "rollout.max_new_tokens, or make the game shorter through task.environment_options)")
    return counts, say
