"""The HTML pieces of rlvr's report pages (the run report, `rlvr compare`, the stories' page): escaped table
cells and tables, collapsible text blocks, images, and the inline CSS they share."""

from __future__ import annotations

import json
import math
from html import escape
from typing import Any

MAX_TEXT_CHARS = 6000
PREVIEW_CHARS = 200


def fmt_float(value: float, key: str = "") -> str:
    if not math.isfinite(value):
        return "–"
    if key.endswith("seconds") and value >= 60:
        minutes, seconds = divmod(int(round(value)), 60)
        hours = f"{minutes // 60}h " if minutes >= 60 else ""
        return f"{value:.1f} s ({hours}{minutes % 60}m {seconds:02d}s)"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    if abs(value) >= 100:
        return f"{value:.1f}"
    return f"{value:.3f}" if abs(value) >= 0.01 else f"{value:.3g}"


def fmt(value: Any, key: str = "") -> str:
    """A value for a table cell, escaped; `key` picks the format (durations for *seconds)."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        return escape(fmt_float(float(value), key))
    if isinstance(value, (dict, list)):
        text = json.dumps(value, default=str)
        return escape(text if len(text) <= 300 else text[:300] + " …")
    return escape(str(value))


def text_block(text: str) -> str:
    """Escaped preformatted text; long text is collapsed behind a one-line preview."""
    if len(text) > MAX_TEXT_CHARS:
        text = text[:MAX_TEXT_CHARS] + f"\n… ({len(text) - MAX_TEXT_CHARS} more characters)"
    if len(text) <= PREVIEW_CHARS and text.count("\n") < 6:
        return f"<pre>{escape(text)}</pre>"
    preview = " ".join(text[:PREVIEW_CHARS].split())
    return f"<details><summary>{escape(preview)} …</summary><pre>{escape(text)}</pre></details>"


def as_text(value: Any) -> str:
    """A prompt or completion as plain text; chat messages become `role: content` lines."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(m, dict) for m in value):
        return "\n".join(f"{m.get('role', '?')}: {m.get('content', '')}" for m in value)
    return json.dumps(value, default=str) if isinstance(value, (list, dict)) else str(value)


def html_table(headers: list[str] | None, rows: list[list[str]], cls: str = "") -> str:
    """An HTML table; `headers` are escaped here, cells must be escaped HTML already."""
    head = "".join(f"<th>{escape(h)}</th>" for h in headers or [])
    head = f"<thead><tr>{head}</tr></thead>" if head else ""
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{cls}">{head}<tbody>{body}</tbody></table>'


def img(uri: str, alt: str, cls: str = "plot") -> str:
    return f'<img class="{cls}" src="{uri}" alt="{escape(alt)}">'


CSS = """
body { font-family: system-ui, -apple-system, Segoe UI, Roboto, sans-serif; margin: 1.5rem auto;
       max-width: 1280px; padding: 0 1rem; color: #222; }
h1 { font-size: 1.5rem; margin-bottom: .3rem; } h2 { border-bottom: 1px solid #ddd; padding-bottom: .2rem; }
.muted { color: #777; } .ok { color: #1a7f37; font-weight: bold; } .bad { color: #cf222e; font-weight: bold; }
.plots { display: flex; flex-wrap: wrap; gap: .5rem; } .plot { width: 400px; max-width: 100%; }
.grid { max-width: 100%; }
table { border-collapse: collapse; font-size: .85rem; margin: .5rem 0; }
th, td { border: 1px solid #ddd; padding: .25rem .5rem; text-align: left; vertical-align: top; }
th { background: #f4f4f4; } table.summary td:first-child { font-weight: 600; }
table.samples td { max-width: 420px; }
pre { white-space: pre-wrap; word-break: break-word; margin: 0; font-size: .8rem; }
summary { cursor: pointer; word-break: break-word; }
pre.tool { background: #eef4fb; border-left: 3px solid #4a7fb5; padding: .1rem .4rem; margin: .15rem 0; }
.notes { background: #fff8e1; padding: .5rem 1rem; border-radius: 4px; }
"""
