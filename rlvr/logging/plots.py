"""Plots for the run report, rendered with matplotlib's Agg renderer into base64 PNG data URIs.

Only `matplotlib.figure.Figure` is used (never pyplot), so no global backend is switched and no window
is opened, whatever the caller's matplotlib setup.
"""

from __future__ import annotations

import base64
import io
import math
from dataclasses import dataclass

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"]


@dataclass
class Series:
    """One curve: `y[i]` at step `x[i]`; NaN marks a missing value (a gap). `points` draws markers only;
    `band` = (low, high) per point shades the spread around the curve (e.g. min and max over seeds)."""

    label: str
    x: list[float]
    y: list[float]
    points: bool = False
    band: tuple[list[float], list[float]] | None = None

    def finite_count(self) -> int:
        return sum(math.isfinite(v) for v in self.y)


def ema(values: list[float], span: int) -> list[float]:
    """Exponential moving average with alpha = 2 / (span + 1), skipping NaNs (they stay NaN)."""
    alpha, avg, out = 2.0 / (span + 1), None, []
    for v in values:
        if math.isfinite(v):
            avg = v if avg is None else alpha * v + (1 - alpha) * avg
            out.append(avg)
        else:
            out.append(math.nan)
    return out


def to_data_uri(fig: Figure, dpi: int = 90) -> str:
    """The figure as a `data:image/png;base64,...` URI (no metadata, so nothing but pixels is embedded).

    Margins are fixed by the caller rather than computed (bbox_inches="tight", tight_layout), since each
    layout pass is a full extra draw and drawing dominates the report's run time.
    """
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _draw(ax, series: list[Series], smooth: bool) -> None:
    for i, s in enumerate(series):
        color = COLORS[i % len(COLORS)]
        if s.band is not None:
            ax.fill_between(s.x, s.band[0], s.band[1], color=color, alpha=0.2, linewidth=0)
        if s.points:
            ax.plot(s.x, s.y, "o--", color=color, label=s.label, markersize=5, linewidth=1)
        elif smooth and len(s.y) >= 20:
            ax.plot(s.x, s.y, color=color, alpha=0.25, linewidth=1)
            ax.plot(s.x, ema(s.y, max(2, min(50, len(s.y) // 20))), color=color, label=f"{s.label} (EMA)")
        else:
            ax.plot(
                s.x, s.y, color=color, label=s.label, linewidth=1.5, marker="." if len(s.y) < 30 else None
            )
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)


def plot_panel(
    title: str,
    series: list[Series],
    *,
    xlabel: str = "step",
    ylabel: str = "",
    hlines: list[tuple[str, float]] = (),
    smooth: bool = False,
) -> str:
    """One titled plot of `series` (plus labelled horizontal reference lines) as a PNG data URI.

    With `smooth`, long noisy curves are drawn faintly with their EMA on top.
    """
    fig = Figure(figsize=(5.2, 3.2))
    fig.subplots_adjust(left=0.13, right=0.97, bottom=0.15, top=0.9)
    ax = fig.add_subplot()
    _draw(ax, series, smooth)
    for j, (label, y) in enumerate(hlines):
        ax.axhline(y, color=COLORS[(len(series) + j) % len(COLORS)], linestyle=":", label=label)
    ax.set_title(title, fontsize=11)
    ax.set_xlabel(xlabel)
    if ylabel:
        ax.set_ylabel(ylabel)
    if len(series) + len(hlines) > 1 or any(s.points for s in series) or smooth:
        ax.legend(fontsize=8)
    return to_data_uri(fig)


def plot_grid(series: list[Series], cols: int = 4, xlabel: str = "step") -> str:
    """Small multiples: one little plot per series, up to `cols` per row, as one PNG data URI."""
    cols = max(1, min(cols, len(series)))
    rows = max(1, math.ceil(len(series) / cols))
    fig = Figure(figsize=(3.0 * cols, 2.2 * rows))
    fig.subplots_adjust(
        left=0.05, right=0.99, bottom=0.45 / (2.2 * rows), top=1 - 0.3 / (2.2 * rows), wspace=0.3, hspace=0.55
    )
    for i, s in enumerate(series):
        ax = fig.add_subplot(rows, cols, i + 1)
        _draw(ax, [s], smooth=False)
        ax.set_title(s.label, fontsize=9)
        ax.tick_params(labelsize=7)
        if i >= len(series) - cols:
            ax.set_xlabel(xlabel, fontsize=8)
    return to_data_uri(fig, dpi=80)
