"""Small-multiple line plots as inline SVG for the run report (no plotting dependency).

Each series gets its own panel with its own y range and labelled ticks: the losses of a
GAN differ by two orders of magnitude (``G_total`` near 10, the adversarial terms near
0.3), and one shared linear axis would flatten all but the largest curve.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field

COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
          "#bcbd22", "#17becf")


@dataclass
class Panel:
    """One small plot: a title, one or more named lines of ``(x, y)`` points, optional reference lines."""

    title: str
    lines: dict[str, list[tuple[float, float]]]
    refs: dict[str, float] = field(default_factory=dict)  # label -> y of a dashed horizontal line


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values (1, 2 or 5 times a power of ten apart) covering ``[lo, hi]``."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return []
    if hi - lo < 1e-12:
        lo, hi = lo - 0.5 * (abs(lo) or 1.0), hi + 0.5 * (abs(hi) or 1.0)
    raw = (hi - lo) / max(1, count - 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 5, 10)), key=lambda st: abs(math.log(st / raw)))
    first = math.floor(lo / step) * step
    ticks, t = [], first
    while t <= hi + step * 1e-6:
        ticks.append(round(t, 12))
        t += step
    if ticks and ticks[-1] < hi - step * 1e-6:
        ticks.append(round(ticks[-1] + step, 12))
    return ticks


def _fmt(v: float) -> str:
    return f"{v:.3g}" if v != 0 else "0"


def _panel_svg(p: Panel, x_range: tuple[float, float], w: int, h: int) -> str:
    ml, mr, mt, mb = 44, 8, 22, 22  # margins: tick labels left and below, title above
    ys = [y for pts in p.lines.values() for _, y in pts if math.isfinite(y)] + list(p.refs.values())
    if not ys:
        return ""
    yt = nice_ticks(min(ys), max(ys))
    y0, y1 = yt[0], yt[-1]
    x0, x1 = x_range
    x1 = x1 if x1 > x0 else x0 + 1

    def sx(x: float) -> float:
        return ml + (x - x0) / (x1 - x0) * (w - ml - mr)

    def sy(y: float) -> float:
        return h - mb - (y - y0) / (y1 - y0) * (h - mt - mb)

    out = [f'<svg class="panel" width="{w}" height="{h}" role="img" aria-label="{html.escape(p.title)}">',
           f'<text x="{ml}" y="14" font-size="12" font-weight="bold">{html.escape(p.title)}</text>']
    for t in yt:  # horizontal grid lines with their value
        out.append(f'<line x1="{ml}" x2="{w - mr}" y1="{sy(t):.1f}" y2="{sy(t):.1f}" stroke="#e4e4e4"/>'
                   f'<text class="ytick" x="{ml - 4}" y="{sy(t) + 4:.1f}" font-size="10" text-anchor="end">'
                   f"{_fmt(t)}</text>")
    for t, anchor in ((x0, "start"), ((x0 + x1) / 2, "middle"), (x1, "end")):  # stay inside the panel
        out.append(f'<text class="xtick" x="{sx(t):.1f}" y="{h - 6}" font-size="10" text-anchor="{anchor}">'
                   f"{int(round(t))}</text>")
    out.append(f'<rect x="{ml}" y="{mt}" width="{w - ml - mr}" height="{h - mt - mb}" fill="none" stroke="#999"/>')
    for label, y in p.refs.items():
        out.append(f'<line x1="{ml}" x2="{w - mr}" y1="{sy(y):.1f}" y2="{sy(y):.1f}" stroke="#444" '
                   f'stroke-dasharray="4 3"><title>{html.escape(label)} = {y:.4g}</title></line>'
                   f'<text x="{w - mr - 2}" y="{sy(y) - 3:.1f}" font-size="10" text-anchor="end">'
                   f"{html.escape(label)}</text>")
    for i, (name, pts) in enumerate(p.lines.items()):
        good = [(x, y) for x, y in pts if math.isfinite(y)]
        coords = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in good)
        c = COLORS[i % len(COLORS)]
        out.append(f'<polyline fill="none" stroke="{c}" stroke-width="1.5" points="{coords}">'
                   f"<title>{html.escape(name)}</title></polyline>")
        if len(good) == 1:  # a single point draws no line
            out.append(f'<circle cx="{sx(good[0][0]):.1f}" cy="{sy(good[0][1]):.1f}" r="2.5" fill="{c}"/>')
    if len(p.lines) > 1:
        for i, name in enumerate(p.lines):
            out.append(f'<text x="{w - mr - 4}" y="{mt + 12 + 12 * i}" font-size="10" text-anchor="end" '
                       f'fill="{COLORS[i % len(COLORS)]}">{html.escape(name)}</text>')
    out.append("</svg>")
    return "".join(out)


def small_multiples(panels: list[Panel], x_label: str = "step", width: int = 250, height: int = 150) -> str:
    """Panels side by side (wrapping), sharing one x range, each with its own labelled y ticks."""
    xs = [x for p in panels for pts in p.lines.values() for x, _ in pts]
    if not xs:
        return ""
    rng = (min(xs), max(xs))
    cells = "".join(_panel_svg(p, rng, width, height) for p in panels)
    return f'<div class="plots">{cells}</div><p class="note">x axis: {html.escape(x_label)}</p>'
