"""One self-contained HTML page for a run: summary numbers, training curves, eval results, sample completions.

Reads what `MetricsLogger` and the trainer leave in the run dir (metrics.jsonl, samples.jsonl, eval.jsonl,
summary.json, config.yaml), any of which may be missing or partial (a run still going, or killed). Plots are
PNGs embedded as data URIs and the CSS is inline, so the file opens anywhere, offline, with no scripts.
"""

from __future__ import annotations

import datetime
import json
import math
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

from rlvr.atomic import write_text_atomic
from rlvr.logging.check_section import END_CHECK_FILE, check_html, read_check
from rlvr.logging.html import CSS, as_text, fmt, html_table, img, text_block
from rlvr.logging.metrics import (
    EVAL_FILE,
    METRICS_FILE,
    PRETRAIN_PHASE,
    SAMPLES_FILE,
    read_jsonl,
)
from rlvr.logging.plots import Series, plot_grid, plot_panel

SUMMARY_KEYS = [
    "task",
    "data_accuracy",
    "pretrain_accuracy",
    "rl_accuracy",
    "eval_problems",
    "rl_steps",
    "wall_seconds",
]
# (title, metric keys, smooth): the fixed RL panels, drawn when any of their keys has a value.
RL_PANELS = [
    ("Reward (reward/mean)", ["reward/mean"], True),
    ("Accuracy", ["accuracy"], True),
    ("Response length (tokens)", ["response_length/mean", "response_length/max"], False),
    ("Format rate", ["format_rate"], True),
    ("Informative groups (share of trained groups with a reward spread)", ["groups/informative_frac"], False),
    ("Entropy", ["entropy"], False),
    ("KL to reference", ["kl"], False),
    ("Clip fraction", ["clip_frac"], False),
    ("Time per step (s)", ["time/generate", "time/verify", "time/update"], False),
]
NOT_METRICS = {"step", "phase"}
MAX_SAMPLES = 40
MAX_GRID = 48


@dataclass
class RunFiles:
    """Everything read from a run dir; `notes` lists what was missing or unreadable, shown on the page."""

    name: str
    metrics: list[dict] = field(default_factory=list)
    samples: list[dict] = field(default_factory=list)
    evals: list[dict] = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    config_text: str = ""
    notes: list[str] = field(default_factory=list)
    check: dict | None = None  # check.json: the signal check before training
    check_end: dict | None = None  # check_end.json: the same check after training


def load_run(run_dir: Path) -> RunFiles:
    """Read the run dir leniently: a bad line or file becomes a note, never an exception."""
    run = RunFiles(name=run_dir.resolve().name)
    for attr, name in (("metrics", METRICS_FILE), ("samples", SAMPLES_FILE), ("evals", EVAL_FILE)):
        try:
            setattr(run, attr, read_jsonl(run_dir / name, strict=False))
        except OSError as e:
            run.notes.append(f"could not read {name}: {e}")
    summary_path = run_dir / "summary.json"
    if summary_path.exists():
        try:
            summary = json.loads(summary_path.read_text(encoding="utf-8"))
            if isinstance(summary, dict):
                run.summary = summary
            else:
                run.notes.append("summary.json is not a JSON object; ignored")
        except (OSError, ValueError) as e:
            run.notes.append(f"could not read summary.json: {e}")
    run.check, note = read_check(run_dir)
    run.check_end, end_note = read_check(run_dir, END_CHECK_FILE)
    run.notes += [n for n in (note, end_note) if n]
    config_path = run_dir / "config.yaml"
    if config_path.exists():
        try:
            run.config_text = config_path.read_text(encoding="utf-8", errors="replace")
        except OSError as e:
            run.notes.append(f"could not read config.yaml: {e}")
    return run


# --- data to series ----------------------------------------------------------------------------------------


def _number(value: Any) -> float | None:
    """`value` as a float (null -> NaN), or None when it is not a number at all."""
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _phase(row: dict) -> str:
    phase = row.get("phase")
    if isinstance(phase, str) and phase:
        return phase
    return PRETRAIN_PHASE if any(str(k).startswith("pretrain/") for k in row) else "rl"


def series(rows: list[dict], key: str, label: str | None = None, points: bool = False) -> Series:
    """The values of `key` over `step` in `rows` (rows without a numeric step or value are skipped)."""
    xs, ys = [], []
    for row in rows:
        if key not in row:
            continue
        step, value = _number(row.get("step")), _number(row[key])
        if step is None or not math.isfinite(step) or value is None:
            continue
        xs.append(step)
        ys.append(value)
    order = sorted(range(len(xs)), key=xs.__getitem__)
    return Series(label or key, [xs[i] for i in order], [ys[i] for i in order], points)


def _grid_series(rows: list[dict], skip: set[str]) -> list[Series]:
    """Every other numeric key of `rows` with at least 2 finite values, sorted by name."""
    keys = sorted({str(k) for row in rows for k in row} - skip - NOT_METRICS)
    found = [series(rows, k) for k in keys]
    return [s for s in found if s.finite_count() >= 2]


def _accuracy(value: Any) -> float | None:
    """A finite accuracy from a number or from a dict's "accuracy" (an eval row, a by_task entry)."""
    if isinstance(value, dict):
        value = value.get("accuracy")
    number = _number(value)
    return None if number is None or not math.isfinite(number) else number


def _summary_section(run: RunFiles, phases: dict[str, list[dict]]) -> str:
    others = sorted(k for k in run.summary if k not in SUMMARY_KEYS)
    keys = [k for k in SUMMARY_KEYS if k in run.summary] + others
    parts = []
    if keys:
        parts.append(html_table(None, [[escape(str(k)), fmt(run.summary[k], str(k))] for k in keys], "summary"))
    else:
        parts.append("<p class='muted'>No summary.json (the run may still be going).</p>")
    counts = [f"{len(rows)} {escape(phase)} metric rows" for phase, rows in phases.items()]
    counts += [f"{len(run.evals)} eval rows", f"{len(run.samples)} samples"]
    parts.append(f"<p class='muted'>{', '.join(counts)}.</p>")
    return "\n".join(parts)


def _rl_section(rows: list[dict], evals: list[dict]) -> str:
    rl_evals = [r for r in evals if _phase(r) != PRETRAIN_PHASE]
    pre_evals = [r for r in evals if _phase(r) == PRETRAIN_PHASE]
    plots = []
    for title, keys, smooth in RL_PANELS:
        curves = [series(rows, k) for k in keys]
        hlines = []
        if keys == ["accuracy"]:
            curves.append(series(rl_evals, "accuracy", "eval accuracy", points=True))
            for r in pre_evals[-1:]:
                acc = _accuracy(r)
                if acc is not None:
                    hlines.append((f"eval after pretraining ({acc:.3f})", acc))
        curves = [c for c in curves if c.finite_count() > 0]
        if curves:
            plots.append(img(plot_panel(title, curves, hlines=hlines, smooth=smooth), title))
    eval_keys = sorted(
        {k for r in rl_evals for k, v in r.items() if k not in NOT_METRICS and _number(v) is not None}
    )
    eval_curves = [c for c in (series(rl_evals, k, points=True) for k in eval_keys) if c.finite_count() > 0]
    if eval_curves:
        plots.append(img(plot_panel("Eval", eval_curves), "Eval"))
    for key, title in (("by_task", "Eval accuracy by task"), ("by_kind", "Eval accuracy by kind of problem")):
        curves = _breakdown_series(rl_evals, key)
        if curves:
            plots.append(img(plot_panel(title, curves), title))
    html = [f"<div class='plots'>{''.join(plots)}</div>"] if plots else []
    used = {k for _, keys, _ in RL_PANELS for k in keys}
    html.append(_grid_html(_grid_series(rows, used), "Other metrics"))
    return "\n".join(html)


def _breakdown_series(evals: list[dict], field: str) -> list[Series]:
    """One accuracy curve per entry of an eval row's `field` ("by_task", or "by_kind": kinds of problem)."""
    tasks = sorted({str(t) for r in evals if isinstance(r.get(field), dict) for t in r[field]})
    out = []
    for task in tasks:
        rows = [
            {"step": r.get("step"), "v": _accuracy(r[field].get(task))}
            for r in evals
            if isinstance(r.get(field), dict) and task in r[field]
        ]
        s = series([r for r in rows if r["v"] is not None], "v", task, points=True)
        if s.finite_count() > 0:
            out.append(s)
    return out


def _grid_html(curves: list[Series], title: str, xlabel: str = "step") -> str:
    if not curves:
        return ""
    extra = ""
    if len(curves) > MAX_GRID:
        extra = f"<p class='muted'>{len(curves) - MAX_GRID} more metrics not shown.</p>"
        curves = curves[:MAX_GRID]
    return f"<h3>{escape(title)}</h3>{img(plot_grid(curves, xlabel=xlabel), title, 'grid')}{extra}"


def _pretrain_section(rows: list[dict]) -> str:
    loss = series(rows, "pretrain/loss", "loss")
    html = []
    if loss.finite_count() > 0:
        html.append(
            img(
                plot_panel("Pretraining loss", [loss], xlabel="pretraining step", smooth=True),
                "Pretraining loss",
            )
        )
    html.append(
        _grid_html(_grid_series(rows, {"pretrain/loss"}), "Other pretraining metrics", "pretraining step")
    )
    return "\n".join(html)


def _eval_table(evals: list[dict]) -> str:
    breakdowns = [("by_task", "by task")] + ([("by_kind", "by kind")] if any("by_kind" in r for r in evals) else [])
    keys = []
    for row in evals:
        keys += [k for k in row if k not in keys and k not in ("step", "phase", "by_task", "by_kind")]

    def accuracies(value) -> str:
        if isinstance(value, dict):
            return ", ".join(f"{escape(str(t))}: {fmt(_accuracy(v))}" for t, v in value.items())
        return fmt(value)

    rows = []
    for row in evals[-30:]:
        rows.append(
            [fmt(row.get("step")), fmt(row.get("phase"))] + [fmt(row.get(k), k) for k in keys]
            + [accuracies(row.get(key)) for key, _ in breakdowns]
        )
    return html_table(["step", "phase", *keys, *[label for _, label in breakdowns]], rows, "data")


def _transcript(parts: list[dict]) -> str:
    """A multi-turn completion: the model's turns as text, each tool observation in its own shaded block."""
    out = []
    for p in parts:
        text = escape(str(p.get("text", "")))
        out.append(f"<pre class='tool'>{text}</pre>" if p.get("role") == "observation" else f"<pre>{text}</pre>")
    return "".join(out)


def _samples_table(samples: list[dict]) -> str:
    """The latest steps' samples first (order within a step kept), at most MAX_SAMPLES rows."""

    def step_of(s: dict) -> float:
        step = _number(s.get("step"))
        return step if step is not None and math.isfinite(step) else -math.inf

    latest = sorted(samples, key=step_of, reverse=True)[:MAX_SAMPLES]
    rows = []
    for s in latest:
        correct = s.get("correct")
        mark = {True: "<span class='ok'>✓</span>", False: "<span class='bad'>✗</span>"}.get(
            correct if isinstance(correct, bool) else None, fmt(correct)
        )
        details = s.get("details")
        details_text = json.dumps(details, indent=1, default=str) if details else ""
        rows.append(
            [
                fmt(s.get("step")),
                fmt(s.get("task")),
                fmt(s.get("reward")),
                mark,
                fmt(s.get("formatted")),
                text_block(as_text(s.get("prompt"))),
                _transcript(s["transcript"]) if s.get("transcript") else text_block(as_text(s.get("completion"))),
                text_block(details_text) if details_text else "",
            ]
        )
    headers = ["step", "task", "reward", "correct", "formatted", "prompt", "completion", "details"]
    return html_table(headers, rows, "data samples")


def render(run: RunFiles) -> str:
    """The whole report page for `run` as an HTML string."""
    phases: dict[str, list[dict]] = {}
    for row in run.metrics:
        phases.setdefault(_phase(row), []).append(row)
    body = [f"<h1>rlvr run: {escape(run.name)}</h1>", check_html(run.check, run.check_end) if run.check else "",
            _summary_section(run, phases)]
    if run.notes:
        items = "".join(f"<li>{escape(n)}</li>" for n in run.notes)
        body.append(f"<div class='notes'><b>Problems reading the run</b><ul>{items}</ul></div>")
    if not run.metrics:
        body.append("<h2>Training</h2><p>No metrics logged yet (metrics.jsonl is missing or empty).</p>")
    if "rl" in phases or any(_phase(r) != PRETRAIN_PHASE for r in run.evals):
        body += ["<h2>RL training</h2>", _rl_section(phases.get("rl", []), run.evals)]
    if PRETRAIN_PHASE in phases:
        body += ["<h2>Pretraining</h2>", _pretrain_section(phases[PRETRAIN_PHASE])]
    for phase, rows in phases.items():
        if phase not in ("rl", PRETRAIN_PHASE):
            body += [f"<h2>Phase: {escape(phase)}</h2>", _grid_html(_grid_series(rows, set()), "Metrics")]
    if run.evals:
        body += ["<h2>Evaluations</h2>", _eval_table(run.evals)]
    body.append("<h2>Sample completions</h2>")
    body.append(_samples_table(run.samples) if run.samples else "<p class='muted'>No samples logged yet.</p>")
    if run.config_text:
        body.append(
            f"<h2>Config</h2><details><summary>config.yaml</summary><pre>{escape(run.config_text)}</pre>"
            "</details>"
        )
    stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S")
    body.append(f"<p class='muted'>Generated by rlvr on {stamp}.</p>")
    return (
        f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>rlvr report: {escape(run.name)}</title><style>{CSS}</style></head>\n<body>\n"
        + "\n".join(b for b in body if b)
        + "\n</body></html>\n"
    )


def write_report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write the run's report to `out` (default run_dir/report.html) and return its path.

    Works on any run dir, even an empty or half-written one: what is missing is said on the page.
    """
    run_dir = Path(run_dir)
    out = Path(out) if out is not None else run_dir / "report.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out, render(load_run(run_dir)))
    return out
