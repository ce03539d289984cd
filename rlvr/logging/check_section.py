"""The report's "Signal check" section: the table, warnings and advice of the `rlvr check` a run saved as
RUN/check.json (see `rlvr.check`), shown at the top of `report.html`."""

from __future__ import annotations

import json
from html import escape
from pathlib import Path

CHECK_FILE = "check.json"


def read_check(run_dir: Path) -> tuple[dict | None, str | None]:
    """(the saved check report or None, a note when the file exists but cannot be read)."""
    path = Path(run_dir) / CHECK_FILE
    if not path.exists():
        return None, None
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        return None, f"could not read {CHECK_FILE}: {e}"
    return (report, None) if isinstance(report, dict) else (None, f"{CHECK_FILE} is not a JSON object; ignored")


def check_html(report: dict) -> str:
    """The check's table, then its warnings and advice, as HTML."""
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
            + (f"<div class='notes'><ul>{''.join(items)}</ul></div>" if items else ""))
