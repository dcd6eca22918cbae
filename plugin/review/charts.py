"""Weekly bar charts as SVG, drawn on the server: no JavaScript needed to see them.

Each chart is a grouped bar chart (one group per ISO week, one bar per series)
with a title, a description and a text label on every bar for screen readers.
All text comes from the caller (the copy catalogue); values are Tend's own counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

# Colour-blind-safe (Okabe-Ito) with >= 3:1 contrast against white.
PALETTE = ("#0b5cad", "#b35806", "#1b7837", "#762a83")


@dataclass(frozen=True)
class Series:
    key: str  # the count in each week's row ("suggested")
    label: str  # its name in the legend ("Suggested")


def bar_chart(
    weeks: Sequence[dict[str, int | str]],
    series: Sequence[Series],
    *,
    title: str,
    description: str,
    chart_id: str,
    width: int = 640,
    height: int = 240,
) -> str:
    """An accessible SVG: ``<svg role="img" aria-labelledby=...>`` with a ``<title>`` and ``<desc>``."""
    left, right, top, bottom = 40, 8, 28, 36
    plot_w, plot_h = width - left - right, height - top - bottom
    top_value = max([int(w[s.key]) for w in weeks for s in series] + [1])
    step = _nice_step(top_value)
    axis_max = step * -(-top_value // step)
    parts = [
        f'<svg class="chart" id="{escape(chart_id)}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-labelledby="{escape(chart_id)}-title {escape(chart_id)}-desc" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{escape(chart_id)}-title">{escape(title)}</title>',
        f'<desc id="{escape(chart_id)}-desc">{escape(description)}</desc>',
    ]
    for tick in range(0, axis_max + 1, step):
        y = top + plot_h - plot_h * tick / axis_max
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" class="tick">{tick}</text>')
    group_w = plot_w / max(len(weeks), 1)
    bar_w = max(2.0, (group_w * 0.8) / max(len(series), 1))
    for i, week in enumerate(weeks):
        x0 = left + i * group_w + group_w * 0.1
        for j, s in enumerate(series):
            value = int(week[s.key])
            h = plot_h * value / axis_max
            x = x0 + j * bar_w
            y = top + plot_h - h
            label = f"{week['week']}: {s.label} {value}"
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w - 1:.1f}" height="{h:.1f}" fill="{PALETTE[j % len(PALETTE)]}">'
                f"<title>{escape(label)}</title></rect>"
            )
        if len(weeks) <= 12 or i % 2 == 0:
            parts.append(
                f'<text x="{left + i * group_w + group_w / 2:.1f}" y="{height - bottom + 16}" text-anchor="middle" class="tick">{escape(str(week["week"])[-3:])}</text>'
            )
    x = left
    for j, s in enumerate(series):
        parts.append(f'<rect x="{x}" y="8" width="12" height="12" fill="{PALETTE[j % len(PALETTE)]}"/>')
        parts.append(f'<text x="{x + 16}" y="18" class="legend">{escape(s.label)}</text>')
        x += 24 + 8 * len(s.label)
    parts.append("</svg>")
    return "".join(parts)


def _nice_step(top: int) -> int:
    """A round tick step giving at most five gridlines."""
    for step in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10_000, 20_000, 50_000, 100_000):
        if top / step <= 5:
            return step
    return 10 ** len(str(top))
