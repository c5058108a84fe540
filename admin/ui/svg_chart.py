"""A stacked bar chart as inline SVG, drawn on the server (the console runs no script).

`stacked_bars(columns, series)` takes one label per column (a day) and, per series (a
protocol), one count per column. Every text is escaped here, so the markup returned is
safe to embed; colours come from the stylesheet (``.series-<n>`` classes), since the
console's CSP allows no inline style.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from markupsafe import Markup, escape

WIDTH, HEIGHT = 720, 260
LEFT, RIGHT, TOP, BOTTOM = 44, 130, 16, 36
MAX_SERIES = 8


def nice_max(value: int) -> int:
    """The axis top: `value` rounded up to 1, 2 or 5 times a power of ten (at least 1)."""
    if value <= 1:
        return 1
    power = int(10 ** math.floor(math.log10(value)))
    for step in (1, 2, 5, 10):
        if value <= step * power:
            return step * power
    return 10 * power  # pragma: no cover - the loop always returns


def stacked_bars(columns: Sequence[str], series: Mapping[str, Sequence[int]],
                 title: str) -> Markup:
    names = sorted(series)[:MAX_SERIES]
    totals = [sum(series[n][i] for n in names) for i in range(len(columns))]
    top = nice_max(max(totals, default=0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(len(columns), 1)
    bar = max(slot * 0.7, 1.0)
    parts = [f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" role="img" '
             f'viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}">',
             f"<title>{escape(title)}</title>"]
    ticks = next(n for n in (5, 4, 2, 1) if top % n == 0)
    for tick in range(ticks + 1):
        value = top * tick / ticks
        y = TOP + plot_h - plot_h * tick / ticks
        parts.append(f'<line class="grid" x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + plot_w}" '
                     f'y2="{y:.1f}"/>')
        label = f"{value:g}" if value != int(value) else str(int(value))
        parts.append(f'<text class="axis" x="{LEFT - 6}" y="{y + 4:.1f}" '
                     f'text-anchor="end">{escape(label)}</text>')
    for i, column in enumerate(columns):
        x = LEFT + slot * i + (slot - bar) / 2
        y = TOP + plot_h
        for n, name in enumerate(names):
            count = series[name][i]
            if count <= 0:
                continue
            h = plot_h * count / top
            y -= h
            parts.append(f'<rect class="series-{n}" x="{x:.1f}" y="{y:.1f}" '
                         f'width="{bar:.1f}" height="{h:.1f}"><title>{escape(column)} '
                         f'{escape(name)}: {count}</title></rect>')
        if len(columns) <= 16 or i % 2 == 0:
            parts.append(f'<text class="axis" x="{x + bar / 2:.1f}" y="{HEIGHT - BOTTOM + 16}" '
                         f'text-anchor="middle">{escape(column)}</text>')
    for n, name in enumerate(names):
        y = TOP + 14 + n * 20
        parts.append(f'<rect class="series-{n}" x="{WIDTH - RIGHT + 16}" y="{y - 10}" '
                     f'width="12" height="12"/>')
        parts.append(f'<text class="legend" x="{WIDTH - RIGHT + 34}" y="{y}">'
                     f'{escape(name)}</text>')
    parts.append(f'<line class="axis-line" x1="{LEFT}" y1="{TOP + plot_h}" '
                 f'x2="{LEFT + plot_w}" y2="{TOP + plot_h}"/>')
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every text above went through escape()
