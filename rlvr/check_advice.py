"""What `rlvr check`'s numbers mean for the run: advice that follows from them, warnings, and the table.

Each rule names the config key to change and the number that triggered it, so a user can see why.
"""

from __future__ import annotations

import json
import shlex

from rlvr.verifiers.extract import format_reachable

TOO_EASY = 0.9  # pass@1 above this: most groups are all right
NEVER = 0.02  # pass@1 and greedy accuracy below this: the model almost never solves the task
MAX_TRUNCATED = 0.1
MIN_FORMAT = 0.5
MAX_RUN_ON = 0.2  # answers that go on after their closing tag: sampled and trained tokens that decide nothing
NEVER_KINDS = 0.25  # share of problems of kinds that no sample solved, above which the check says so
BETTER = 0.05  # a lower temperature must lift the informative share by this much to be advised


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _interval(interval: list[float] | None) -> str:
    return "" if interval is None else f" (90% interval {_pct(interval[0])} to {_pct(interval[1])})"


def _verifier_warnings(v: dict) -> list[str]:
    if v.get("ok") is None:
        return []
    out = []
    if v.get("verifier_errors"):
        out.append(f"verifier raised on {v['verifier_errors']} sanity completions (first: {v['verifier_error']}): "
                   "such samples get no reward and count against train.max_verifier_error_rate; fix the verifier "
                   "or its reference answers")
    if v["reference_correct_rate"] is not None and v["reference_correct_rate"] < 1.0:
        out.append(f"verifier: only {_pct(v['reference_correct_rate'])} of reference answers written as a "
                   "completion score correct: the verifier (or its answer extraction) marks right answers wrong, "
                   "so every reward is 0")
    wrong = {c: v[f"{c}_correct_rate"] for c in ("empty", "wrong", "echo") if v[f"{c}_correct_rate"]}
    if wrong:
        cases = ", ".join(f"{c} {_pct(r)}" for c, r in wrong.items())
        out.append(f"verifier: answers that must be wrong score correct ({cases}): the reward can be earned "
                   "without solving the task")
    return out


def set_argument(key: str, value) -> str:
    """`key=value` as one shell word that `--set` reads back as `value` (lists as JSON, which YAML reads)."""
    text = str(value).lower() if isinstance(value, bool) else json.dumps(value) if isinstance(value, list | dict) \
        else str(value)
    return shlex.quote(f"{key}={text}")


def curriculum_sets(task) -> dict:
    """The `--set` values that train `task` (a reasoning-gym generator with a curriculum) by a curriculum from
    level 0, held out at the task as configured: at the level its `params` name, or one above the highest where
    they set the curriculum's fields to values of no level. {} where none applies: no curriculum, one already
    on, params that set none of its fields (the generator's defaults are no level), or level 0 itself."""
    from rlvr.tasks.reasoning_gym import PREFIX, curriculum_levels

    if task.adaptive_difficulty or task.path or task.mixture or not task.name.startswith(PREFIX):
        return {}
    try:
        top, levels = curriculum_levels(task.name[len(PREFIX):])
    except ValueError:  # no curriculum for this generator, or reasoning-gym is not installed
        return {}
    mine = {k: v for k, v in task.params.items() if k in levels[0]}
    if not mine:
        return {}
    sets = {"task.adaptive_difficulty": True, "task.curriculum_start": 0}
    level = next((lv for lv, fields in levels.items() if fields == mine), None)
    if level == 0:
        return {}
    if level is None:
        return {**sets, "task.difficulty": top + 1}
    return {**sets, "task.difficulty": level,
            "task.params": {k: v for k, v in task.params.items() if k not in levels[0]}}


def advise(report: dict, cfg) -> tuple[list[str], list[str], dict]:
    """(advice, warnings, overrides) from a `rlvr.check.measure` report and the run's config; `overrides` holds
    the `--set` values of the advice that is a config change (`rlvr check` prints them)."""
    advice: list[str] = []
    sets: dict = {}
    warnings = _verifier_warnings(report["verifier"])
    prefix, style = cfg.model.response_prefix, cfg.task.format_style
    if cfg.task.format_reward > 0 and not format_reachable(prefix, style):
        other = "answer" if style == "think_answer" else "think_answer"
        fits = format_reachable(prefix, other)
        warnings.append(f"task.format_reward ({cfg.task.format_reward}) can never be earned: a reply primed with "
                        f"model.response_prefix {prefix!r} cannot have the {style} format"
                        + (f"; set task.format_style: {other}" if fits else ""))
        if fits:
            sets["task.format_style"] = other
    at_t = report["at_temperature"]
    share, G, B = report["informative_share"], report["num_generations"], report["prompts_per_step"]
    threshold = cfg.check.min_informative_share
    if share is None or at_t["pass@1"] is None:
        warnings.append("check: no problem was measured in the time allowed (raise check.train_seconds or "
                        "run `rlvr check`)")
        return advice, warnings, sets
    p1, greedy = at_t["pass@1"], report["greedy_accuracy"]
    low = share < threshold
    interval = report.get("informative_share_interval")
    if low:
        warnings.append(f"expected informative share {_pct(share)}{_interval(interval)} < {_pct(threshold)} "
                        f"(check.min_informative_share): about {share * B:.1f} of {B} groups per step have a "
                        "reward spread; the others have zero advantage and teach nothing"
                        + (f" (screening is on: an expected {_pct(report['screen_pass_share'])} of candidates pass a "
                           f"screen of {cfg.algorithm.screen_samples}, and only their groups are trained)"
                           if report.get("screen_pass_share") is not None else ""))
    if interval is not None and interval[0] < threshold <= interval[1]:
        advice.append(f"the informative share's 90% interval ({_pct(interval[0])} to {_pct(interval[1])}, "
                      f"{report['problems']} problems) reaches across the {_pct(threshold)} threshold: measure more "
                      "problems (--problems, check.problems) before deciding on it")
    if p1 < NEVER and (greedy is None or greedy < NEVER):
        advice.append(f"the model almost never solves these (pass@1 {_pct(p1)}, greedy {_pct(greedy)}): use an "
                      "easier task.difficulty or a curriculum, or prime the reply (model.response_prefix)")
        curriculum = curriculum_sets(cfg.task)
        if curriculum:
            # on reasoning-gym's chain_sum level 2 a curriculum from level 0 gained 10.5 / 9.0 points where plain
            # GRPO gained 3.5 / 4.0, and it did as well as GRPO at level 1; on its two-term sums of 2-3 digits
            # (pass@8 0.0%) +17.0 to +27.0 at three seeds against GRPO's mean +6.75 (README, "Is there a signal?")
            advice.append(f"train by {cfg.task.name}'s own curriculum from level 0, held out at the task as "
                          f"configured (task.difficulty {curriculum['task.difficulty']})")
            sets.update(curriculum)
    if p1 > TOO_EASY:
        advice.append(f"pass@1 is {_pct(p1)}: most groups are all right; use a harder task.difficulty")
    by_g = report["informative_share_by_group_size"]
    if low:
        for g, s in sorted(by_g.items(), key=lambda kv: int(kv[0])):
            if int(g) > G and s >= threshold:
                advice.append(f"raise rollout.num_generations to {g}: expected informative share {_pct(s)}")
                sets["rollout.num_generations"] = int(g)
                break
    best = max(report["lower_temperatures"], key=lambda s: s.get("informative_share") or 0.0, default=None)
    if best is not None and (best.get("informative_share") or 0.0) > share + BETTER:
        advice.append(f"lower rollout.temperature to {best['temperature']}: informative share "
                      f"{_pct(best['informative_share'])} vs {_pct(share)} at {at_t['temperature']}")
        sets["rollout.temperature"] = best["temperature"]
    if (at_t["truncation_rate"] or 0.0) > MAX_TRUNCATED:
        advice.append(f"raise rollout.max_new_tokens (now {cfg.rollout.max_new_tokens}): "
                      f"{_pct(at_t['truncation_rate'])} of answers are cut at the limit")
        sets["rollout.max_new_tokens"] = 2 * cfg.rollout.max_new_tokens
    if (at_t.get("run_on_rate") or 0.0) > MAX_RUN_ON and "</answer>" not in cfg.rollout.stop:
        advice.append(f"{_pct(at_t['run_on_rate'])} of answers go on writing after their </answer> (mean length "
                      f"{at_t['mean_length']:.1f} tokens): stop them there with rollout.stop: ['</answer>']")
        sets["rollout.stop"] = [*cfg.rollout.stop, "</answer>"]
    if at_t["format_rate"] is not None and at_t["format_rate"] < MIN_FORMAT and cfg.task.format_reward > 0:
        advice.append(f"only {_pct(at_t['format_rate'])} of answers use the format: state it in task.template "
                      "or prime the reply with model.response_prefix")
    if low and (at_t.get(f"pass@{G}") or 0.0) > 0 and not cfg.algorithm.screening:
        solved = f"{_pct(at_t.get(f'pass@{G}'))} of problems are solved at least once in {G} samples"
        if cfg.train.skip_zero_advantage:
            # not applied: on the three tasks measured (README, "Is there a signal?") screening alone did no better
            # than plain GRPO (within the spread of seeds, or worse), whose steps without a mixed group cost only
            # their sampling
            advice.append(f"{solved}; prompt screening (algorithm.screening: true) would give the full group only "
                          "to prompts with mixed results, but with train.skip_zero_advantage a group without a "
                          "reward spread already costs only its sampling, and screening alone has done no better "
                          "than plain GRPO on the tasks measured so far")
        else:
            advice.append(f"turn on prompt screening (algorithm.screening: true): {solved}; screening gives the "
                          "full group only to prompts with mixed results")
            sets["algorithm.screening"] = True
    kinds = report.get("by_kind") or {}
    never = [k for k, r in kinds.items() if r.get(f"pass@{G}") == 0.0]
    if len(kinds) > 1 and never:
        measured = sum(r["problems"] for r in kinds.values())
        share_never = sum(kinds[k]["problems"] for k in never) / measured
        if share_never >= NEVER_KINDS:
            advice.append(f"{_pct(share_never)} of the measured problems are of kinds no sample solved in {G} "
                          f"({'; '.join(never)}): they give no signal, and a run's gains will come from the other "
                          "kinds (held-out accuracy per kind: the report's evaluations, `by_kind`); reaching them "
                          "takes easier problems first (a curriculum) or a stronger model")
    if not advice and not warnings:
        advice.append("the signal looks sufficient for this configuration")
    return advice, warnings, sets


def table_rows(report: dict) -> list[tuple[str, str]]:
    """(label, value) rows of the check's table."""
    G = report["num_generations"]
    at_t = report["at_temperature"]
    rows = [("task", report["task"]), ("model", str(report["model"])),
            ("problems measured", f"{report['problems']} of {report['problems_asked']}"
             + (" (time cap)" if report["stopped_early"] else ""))]
    for s in [at_t, *report["lower_temperatures"]]:
        rows.append((f"T={s['temperature']}: pass@1 / pass@{G}",
                     f"{_pct(s['pass@1'])} / {_pct(s.get(f'pass@{G}'))}"))
        rows.append((f"T={s['temperature']}: informative share", _pct(s.get("informative_share"))))
    if "tool_rate" in at_t:
        rows.append((f"T={at_t['temperature']}: samples that called a tool", _pct(at_t["tool_rate"])))
        if report["greedy"] is not None:
            rows.append(("greedy: answers that called a tool", _pct(report["greedy"].get("tool_rate"))))
    rows += [("greedy accuracy", _pct(report["greedy_accuracy"])),
             (f"informative groups per step (of {report['prompts_per_step']})",
              "-" if report["informative_groups_per_step"] is None else f"{report['informative_groups_per_step']:.2f}")]
    rows += [(f"informative share at G={g} (predicted{'' if int(g) == G else ', plug-in'})",
              _pct(s) + (_interval(report.get("informative_share_interval")) if int(g) == G else ""))
             for g, s in report["informative_share_by_group_size"].items()]
    if report.get("kind_sampled_share") is not None:
        rows.append(("informative share drawing by kind (task.kind_sampling, predicted)",
                     _pct(report["kind_sampled_share"])))
    for kind, r in (report.get("by_kind") or {}).items():
        rows.append((f"{kind} ({r['problems']} problems): pass@1 / pass@{G} / greedy",
                     f"{_pct(r['pass@1'])} / {_pct(r.get(f'pass@{G}'))} / {_pct(r.get('greedy'))}"))
    rows += [("format rate", _pct(at_t["format_rate"])), ("truncation rate", _pct(at_t["truncation_rate"])),
             ("answers going on after </answer>", _pct(at_t.get("run_on_rate"))),
             ("mean length (tokens)", "-" if at_t["mean_length"] is None else f"{at_t['mean_length']:.1f}"),
             ("tokens/s (sampling)", "-" if at_t["tokens_per_s"] is None else f"{at_t['tokens_per_s']:.1f}")]
    proj = report["projection"]
    if proj["generate_s_per_step"] is not None:
        rows += [("projected generation s/step", f"{proj['generate_s_per_step']:.1f}"),
                 ("projected generation min/run", f"{proj['generate_s_per_run'] / 60:.1f}")]
    v = report["verifier"]
    if v["ok"] is None:
        rows.append(("verifier sanity", "not applicable (answers are not plain values)"))
    else:
        rows.append(("verifier sanity", ("ok" if v["ok"] else "FAILED") + f" on {v['problems']} problems: reference "
                     f"{_pct(v['reference_correct_rate'])} correct; empty {_pct(v['empty_correct_rate'])}, wrong "
                     f"{_pct(v['wrong_correct_rate'])}, echo {_pct(v['echo_correct_rate'])}"
                     + (f"; verifier raised on {v['verifier_errors']}" if v.get("verifier_errors") else "")))
    return rows


def print_check(report: dict, console=None) -> None:
    """The table, then warnings (red) and advice."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    table = Table(title=f"rlvr check ({report['seconds']:.0f} s)")
    table.add_column("")
    table.add_column("value", justify="right")
    for k, v in table_rows(report):
        table.add_row(k, v)
    console.print(table)
    for w in report["warnings"]:
        console.print(f"[bold red]WARNING[/] {w}", highlight=False)
    for a in report["advice"]:
        console.print(f"advice: {a}", highlight=False)
    if report.get("overrides"):
        console.print("to apply it: " + " ".join(f"--set {set_argument(k, v)}" for k, v in report["overrides"].items()),
                      highlight=False)
