"""Inline SVG charts for the OpenPool page, drawn on the server (no JavaScript, no CDN).

Bar heights of money are integer arithmetic on wei and axis labels are exact ETH strings,
so a chart can never show a rounded amount as if it were the real one. Every text that
comes from data is XML-escaped.
"""

from __future__ import annotations

from datetime import datetime
from html import escape
from typing import Any

from openpool.money import eth

PALETTE = ("#017cee", "#e8590c", "#2f9e44", "#9c36b5", "#c92a2a", "#1098ad", "#f08c00")


def color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def short(address: str) -> str:
    return f"{address[:6]}…{address[-4:]}" if len(address) > 12 else address


def nice_step(top: int, ticks: int = 4) -> int:
    """The smallest 1/2/5 x 10^k wei step with ``ticks`` steps covering ``top``."""
    raw = max(1, -(-top // ticks))
    magnitude = 10 ** (len(str(raw)) - 1)
    for m in (1, 2, 5, 10):
        if m * magnitude >= raw:
            return m * magnitude
    return 10 * magnitude  # pragma: no cover - the loop always returns


def fees_chart(
    hours: list[datetime], series: dict[str, list[int]], width: int = 920, height: int = 260
) -> str:
    """Stacked bars of fees (wei) per hour, one colour per partition."""
    if not hours or not series:
        return '<p class="empty">No fees in the window yet.</p>'
    left, right, top, bottom = 96, 12, 12, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    totals = [sum(v[i] for v in series.values()) for i in range(len(hours))]
    step = nice_step(max(max(totals), 1))
    y_max = step * 4
    bar_w = max(1, plot_w // len(hours))
    out = [
        f'<svg class="chart" role="img" aria-label="Fees per hour" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">'
    ]
    for k in range(5):
        y = top + plot_h - plot_h * k // 4
        out.append(
            f'<line x1="{left}" x2="{width - right}" y1="{y}" y2="{y}" class="grid"/>'
            f'<text x="{left - 6}" y="{y + 4}" text-anchor="end">{eth(step * k)} ETH</text>'
        )
    for i, hour in enumerate(hours):
        x, base = left + i * bar_w, top + plot_h
        for j, (name, values) in enumerate(series.items()):
            h = plot_h * values[i] // y_max
            if h <= 0:
                continue
            base -= h
            out.append(
                f'<rect x="{x + 1}" y="{base}" width="{max(1, bar_w - 2)}" height="{h}" '
                f'fill="{color(j)}"><title>{escape(name)} {hour:%Y-%m-%d %H}:00 UTC: '
                f"{eth(values[i])} ETH</title></rect>"
            )
        if i % max(1, len(hours) // 8) == 0:
            out.append(
                f'<text x="{x + bar_w // 2}" y="{height - bottom + 16}" text-anchor="middle">'
                f"{hour:%m-%d %H}h</text>"
            )
    out.append("</svg>")
    legend = "".join(
        f'<span class="key"><i style="background:{color(j)}"></i>{escape(name)}</span>'
        for j, name in enumerate(series)
    )
    return f'{"".join(out)}<div class="legend">{legend}</div>'


def rank_chart(
    rows: list[dict[str, Any]], metric: str, unit: str, higher_is_better: bool, width: int = 440
) -> str:
    """Horizontal bars, best rank first, of each worker's ``metric`` (labelled ``#rank``);
    the workers with too few timed jobs to be ranked are listed under it as *unranked*."""
    unranked = [r for r in rows if r.get("rank") is None]
    rows = [r for r in rows if r.get("rank") is not None and r.get(metric) is not None]
    note = ""
    if unranked:
        names = ", ".join(
            f'<span title="{escape(str(r["eth_address"]))}">{escape(short(str(r["eth_address"])))}'
            f" ({int(r.get('timed_jobs') or 0)} timed)</span>"
            for r in unranked
        )
        note = f'<p class="note unranked">Unranked (too few timed jobs to rank): {names}</p>'
    if not rows:
        return '<p class="empty">No ranked workers published yet.</p>' + note
    bar_h, gap, label_w, value_w = 18, 6, 150, 80
    height = len(rows) * (bar_h + gap) + gap
    plot_w = width - label_w - value_w
    top_value = max(float(r[metric]) for r in rows) or 1.0
    out = [
        f'<svg class="chart ranks" role="img" aria-label="Worker ranks by {escape(metric)}" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        'xmlns="http://www.w3.org/2000/svg">'
    ]
    for i, r in enumerate(rows):
        y = gap + i * (bar_h + gap)
        w = max(2, int(plot_w * float(r[metric]) / top_value))
        addr = str(r["eth_address"])
        shade = color(0) if higher_is_better else color(1)
        out.append(
            f'<text x="0" y="{y + 13}">#{int(r["rank"])} {escape(short(addr))}</text>'
            f'<rect x="{label_w}" y="{y}" width="{w}" height="{bar_h}" fill="{shade}">'
            f"<title>{escape(addr)}: {float(r[metric]):.3f} {unit}, {r.get('jobs', '?')} jobs"
            f"</title></rect>"
            f'<text x="{label_w + w + 4}" y="{y + 13}">{float(r[metric]):.2f} {unit}</text>'
        )
    out.append("</svg>")
    return "".join(out) + note
