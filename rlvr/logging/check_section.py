"""The report's "Signal check" section: the table, warnings and advice of the `rlvr check` a run saved as
RUN/check.json (see `rlvr.check`), shown at the top of `report.html`."""

from __future__ import annotations

import json
from html import escape
from pathlib import Path

CHECK_FILE = "check.json"
END_CHECK_FILE = "check_end.json"  # the same check on the same problems after training


def read_check(run_dir: Path, name: str = CHECK_FILE) -> tuple[dict | None, str | None]:
    """(the saved check report or None, a note when the file exists but cannot be read)."""
    path = Path(run_dir) / name
    if not path.exists():
        return None, None
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        return None, f"could not read {CHECK_FILE}: {e}"
    return (report, None) if isinstance(report, dict) else (None, f"{CHECK_FILE} is not a JSON object; ignored")


def pass_rate_histogram(reports: dict[str, dict]) -> str:
    """A PNG data URI: histograms of the per-problem pass rates of each labelled check report."""
    from matplotlib.figure import Figure

    from rlvr.logging.plots import COLORS, to_data_uri

    fig = Figure(figsize=(5.5, 3.2))
    ax = fig.add_subplot()
    bins = [i / 10 for i in range(11)]
    for (label, report), color in zip(reports.items(), COLORS):
        ax.hist(report["pass_rates"], bins=bins, alpha=0.5, color=color,
                label=f"{label} (T={report.get('temperature', '?')}, {len(report['pass_rates'])} problems)")
    ax.set_xlabel("per-problem pass rate")
    ax.set_ylabel("problems")
    ax.set_title("Per-problem pass rates (rlvr check)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return to_data_uri(fig)


def check_html(report: dict, end: dict | None = None) -> str:
    """The check's table, then its warnings and advice, and the pass-rate histogram (with the end-of-run
    check's beside it when there is one), as HTML."""
    from rlvr.check_advice import table_rows

    try:
        rows = table_rows(report)
    except (KeyError, TypeError) as e:  # a check.json from another version
        return f"<h2>Signal check</h2><p class='muted'>check.json could not be shown ({escape(str(e))}).</p>"
    body = "".join(f"<tr><td>{escape(k)}</td><td>{escape(v)}</td></tr>" for k, v in rows)
    items = [f"<li><b>WARNING</b> {escape(w)}</li>" for w in report.get("warnings", [])]
    items += [f"<li>{escape(a)}</li>" for a in report.get("advice", [])]
    return (f"<h2>Signal check (before training, {report.get('seconds', 0):.0f} s)</h2>"
            f"<table class='summary'><tbody>{body}</tbody></table>"
            + (f"<div class='notes'><ul>{''.join(items)}</ul></div>" if items else "")
            + _histogram_html({"start": report, **({"end": end} if end else {})}))


def _histogram_html(reports: dict[str, dict]) -> str:
    reports = {k: r for k, r in reports.items() if r.get("pass_rates")}
    if not reports:
        return ""
    return f"<img class='plot' src='{pass_rate_histogram(reports)}' alt='per-problem pass rates'>"
