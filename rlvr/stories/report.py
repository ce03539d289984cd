"""A story's `report.html`: the claim, a reading written from the numbers, the figure, the summary, and sample
answers before and after for every arm, with links to each arm's own run report."""

from __future__ import annotations

import json
from html import escape
from pathlib import Path

from rlvr.logging.html import CSS, fmt, html_table
from rlvr.logging.metrics import write_text_atomic
from rlvr.logging.plots import to_data_uri
from rlvr.stories.harness import arm_answers, story_events

SHOWN = 6  # answers shown per arm, before and after


def _answers_table(rows: list[dict]) -> str:
    cells = [[escape(str(r.get("prompt", ""))), f"<pre>{escape(str(r.get('completion', '')))}</pre>",
              "yes" if r.get("correct") else "<span class='bad'>no</span>", fmt(r.get("reward")),
              fmt(r.get("length"))] for r in rows[:SHOWN]]
    return html_table(["prompt", "answer", "correct", "reward", "tokens"], cells, "samples")


def _arm_section(out: Path, arm: str, kind: str) -> str:
    answers = arm_answers(out, arm)
    html = [f"<h3>{escape(arm)} ({escape(kind)}) <a href='{escape(arm)}/report.html'>run report</a></h3>"]
    steps = sorted({a["step"] for a in answers})
    for label, step in (("before", steps[0]), ("after", steps[-1])) if len(steps) > 1 else (("", s) for s in steps):
        html.append(f"<p><b>{label} (step {step})</b></p>" if label else f"<p><b>step {step}</b></p>")
        html.append(_answers_table([a for a in answers if a["step"] == step]))
    return "\n".join(html)


def render_story(out: str | Path) -> str:
    """The report page of the finished story in `out`; also writes `out/figure.png`."""
    from rlvr.stories import story_module

    out = Path(out)
    summary = json.loads((out / "summary.json").read_text())
    module = story_module(summary["story"])
    fig = module.figure(out)
    fig.savefig(out / "figure.png", dpi=100)
    body = [
        f"<h1>rlvr demo --story {escape(module.NAME)} (seed {escape(str(summary.get('seed')))})</h1>",
        f"<p><b>Claim:</b> {escape(module.CLAIM)}.</p>",
        f"<p><b>Reading:</b> {escape(module.reading(summary))}</p>",
        f"<img class='grid' src='{to_data_uri(fig)}' alt='story figure'>",
        "<h2>Summary</h2>",
        html_table(None, [[escape(k), fmt(v, k)] for k, v in summary.items()], "summary"),
        "<h2>Answers before and after (held-out, greedy)</h2>",
    ]
    for e in story_events(out):
        if e.get("event") == "arm" and (out / e["arm"] / "answers.jsonl").exists():
            body.append(_arm_section(out, e["arm"], e["kind"]))
    return (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>rlvr story: "
            f"{escape(module.NAME)}</title><style>{CSS}</style></head>\n<body>\n" + "\n".join(body)
            + "\n</body></html>\n")


def write_story_report(out: str | Path) -> Path:
    path = Path(out) / "report.html"
    write_text_atomic(path, render_story(out))
    return path
