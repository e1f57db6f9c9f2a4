"""Charts as server-rendered SVG.

The portal's Content-Security-Policy allows no script and no inline style, so a chart is
plain SVG drawn with presentation attributes only (fill, stroke, x, …). Every mark has a
<title> (the browser shows it as a tooltip); the chart is role="img" with an aria-label
that says what it shows, and each page also offers the same numbers as a table.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date

from markupsafe import Markup, escape

from doorvoer.reports.format import human_bytes, human_count, human_duration
from doorvoer.reports.service import GROUPS, Report

W = 1040
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'DejaVu Sans', sans-serif"
INK = "#1d2433"
MUTED = "#5b6477"
GRID = "#e8ebf0"
AXIS = "#b9c0cc"
IN_COLOR = "#3d6fb0"
OUT_COLOR = "#8cc0ad"
HIST_COLOR = "#6f94c9"


def _n(x: float) -> str:
    text = f"{x:.1f}"
    return text[:-2] if text.endswith(".0") else text


class Svg:
    def __init__(self, width: int, height: int, label: str, title: str) -> None:
        self.width = width
        self.height = height
        self.label = label
        self.title = title
        self.parts: list[str] = []

    def add(self, markup: str) -> None:
        self.parts.append(markup)

    def rect(self, x: float, y: float, w: float, h: float, fill: str,
             title: str | None = None, **attrs: str) -> None:
        extra = "".join(f' {k.replace("_", "-")}="{escape(v)}"' for k, v in attrs.items())
        head = (f'<rect x="{_n(x)}" y="{_n(y)}" width="{_n(max(w, 0))}" '
                f'height="{_n(max(h, 0))}" fill="{fill}"{extra}')
        self.add(f"{head}><title>{escape(title)}</title></rect>" if title else f"{head}/>")

    def line(self, x1: float, y1: float, x2: float, y2: float, stroke: str,
             width: float = 1, dash: str | None = None) -> None:
        d = f' stroke-dasharray="{dash}"' if dash else ""
        self.add(f'<line x1="{_n(x1)}" y1="{_n(y1)}" x2="{_n(x2)}" y2="{_n(y2)}" '
                 f'stroke="{stroke}" stroke-width="{_n(width)}"{d}/>')

    def text(self, x: float, y: float, content: str, anchor: str = "start",
             size: float = 11, fill: str = MUTED, weight: str | None = None,
             halo: bool = False) -> None:
        w = f' font-weight="{weight}"' if weight else ""
        h = ' stroke="#ffffff" stroke-width="3" paint-order="stroke"' if halo else ""
        self.add(f'<text x="{_n(x)}" y="{_n(y)}" text-anchor="{anchor}" '
                 f'font-size="{_n(size)}" fill="{fill}"{w}{h}>{escape(content)}</text>')

    def render(self) -> Markup:
        head = (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {self.width} '
                f'{self.height}" width="{self.width}" height="{self.height}" role="img" '
                f'aria-label="{escape(self.label)}" font-family="{FONT}">'
                f"<title>{escape(self.title)}</title>")
        return Markup(head + "".join(self.parts) + "</svg>")  # noqa: S704 - every text escaped


@dataclass(frozen=True)
class Plot:
    """The plotting area inside the margins."""

    left: float
    top: float
    right: float
    bottom: float

    @property
    def width(self) -> float:
        return self.right - self.left

    @property
    def height(self) -> float:
        return self.bottom - self.top


def nice_ticks(top: float, count: int = 4, whole: bool = True) -> list[float]:
    """Round tick values from 0 to at least `top`."""
    if top <= 0:
        return [0, 1] if whole else [0.0, 1.0]
    raw = top / count
    mag = 10 ** math.floor(math.log10(raw))
    steps = (1, 2, 5, 10) if whole else (1, 2, 2.5, 5, 10)
    step = next(m * mag for m in steps if m * mag >= raw)
    if whole:
        step = max(1, round(step))
    n = math.ceil(top / step - 1e-9)
    return [i * step for i in range(n + 1)]


def _y_axis(svg: Svg, plot: Plot, ticks: Sequence[float], fmt: Callable[[float], str],
            caption: str) -> None:
    top = ticks[-1] or 1
    for value in ticks:
        y = plot.bottom - value / top * plot.height
        svg.line(plot.left, y, plot.right, y, GRID if value else AXIS)
        svg.text(plot.left - 8, y + 4, fmt(value), anchor="end")
    if caption:
        svg.text(4, plot.top - 12, caption, size=10.5)


def _legend(svg: Svg, left: float, right: float, y: float,
            items: Sequence[tuple[str, str]]) -> float:
    """Draw the legend from (left, y), wrapping at `right`; returns the y below it."""
    x = left
    for label, color in items:
        width = 15 + 6.6 * len(label) + 16
        if x > left and x + width - 16 > right:
            x, y = left, y + 18
        svg.rect(x, y - 9, 10, 10, color, rx="2")
        svg.text(x + 15, y, label, fill=INK)
        x += width
    return y + 10


def _day_labels(svg: Svg, plot: Plot, days: Sequence[date]) -> None:
    n = len(days)
    band = plot.width / n
    every = max(1, math.ceil(n / max(1, int(plot.width // 56))))
    for i, d in enumerate(days):
        if (n - 1 - i) % every == 0:
            x = plot.left + (i + 0.5) * band
            svg.text(x, plot.bottom + 18, f"{d.day} {d.strftime('%b')}", anchor="middle")


def _long_day(d: date) -> str:
    return f"{d.strftime('%a')} {d.day} {d.strftime('%b %Y')}"


def _empty(svg: Svg, plot: Plot, message: str) -> None:
    svg.text(plot.left + plot.width / 2, plot.top + plot.height / 2, message,
             anchor="middle", size=13)


def _span(report: Report) -> str:
    first, last = report.days[0].day, report.days[-1].day
    return f"{first.day} {first.strftime('%b')} to {last.day} {last.strftime('%b %Y')}"


# ---------------------------------------------------------------- the charts


def transfers_per_day(report: Report, width: int = W, height: int = 280) -> Markup:
    """Stacked bars: transfers per day, coloured by state."""
    days = report.days
    totals = {g.key: report.count(g) for g in GROUPS}
    summary = ", ".join(f"{totals[g.key]} {g.label.lower()}" for g in GROUPS if totals[g.key])
    label = (f"Transfers per day by state, {_span(report)}: {report.total} transfers"
             + (f" ({summary})" if summary else ""))
    svg = Svg(width, height, label, "Transfers per day by state")
    below = _legend(svg, 52, width - 14, 16, [(g.label, g.color) for g in GROUPS])
    plot = Plot(52, below + 28, width - 14, height - 30)
    peak = max((d.total for d in days), default=0)
    ticks = nice_ticks(max(peak, 1))
    _y_axis(svg, plot, ticks, lambda v: human_count(int(v)), "transfers")
    band = plot.width / len(days)
    bar = min(band * 0.7, 34)
    scale = plot.height / ticks[-1]
    for i, d in enumerate(days):
        x = plot.left + i * band
        parts = [f"{d.count(g)} {g.label.lower()}" for g in GROUPS if d.count(g)]
        svg.rect(x, plot.top, band, plot.height, "#ffffff", fill_opacity="0",
                 title=f"{_long_day(d.day)}: {d.total} transfers"
                       + (f" ({', '.join(parts)})" if parts else ""))
        y = plot.bottom
        for g in GROUPS:
            n = d.count(g)
            if not n:
                continue
            h = n * scale
            svg.rect(x + (band - bar) / 2, y - h, bar, h, g.color,
                     title=f"{_long_day(d.day)}: {n} {g.label.lower()}",
                     data_state=g.key, data_day=d.day.isoformat(), data_count=str(n))
            y -= h
    _day_labels(svg, plot, [d.day for d in days])
    if peak == 0:
        _empty(svg, plot, "No transfers in this period")
    return svg.render()


# Residence time bins: from seconds to days, each bin one step of a roughly
# logarithmic scale, because most data stays seconds and a few wait for pickup.
EDGES: tuple[float, ...] = (0, 1, 2, 5, 10, 30, 60, 300, 900, 3600, 6 * 3600, 86400,
                            7 * 86400, math.inf)
EDGE_LABELS = ("0", "1 s", "2 s", "5 s", "10 s", "30 s", "1 min", "5 min", "15 min", "1 h",
               "6 h", "1 d", "7 d", "")
MIN_BINS = 7  # up to 5 min, even when every transfer took seconds


def bin_of(seconds: float) -> int:
    for i in range(len(EDGES) - 1):
        if seconds < EDGES[i + 1]:
            return i
    return len(EDGES) - 2


def bin_label(i: int) -> str:
    if i == len(EDGES) - 2:
        return f"more than {EDGE_LABELS[i]}"
    if i == 0:
        return "less than 1 s"
    return f"{EDGE_LABELS[i]} to {EDGE_LABELS[i + 1]}"


def histogram_bins(residences: Sequence[float]) -> list[int]:
    counts = [0] * (len(EDGES) - 1)
    for r in residences:
        counts[bin_of(r)] += 1
    used = max([i + 1 for i, n in enumerate(counts) if n] + [MIN_BINS])
    return counts[:used]


def _position(seconds: float, bins: int) -> float:
    """Where a value falls on the binned axis, in bins from the left."""
    i = min(bin_of(seconds), bins - 1)
    lo, hi = EDGES[i], EDGES[i + 1]
    if math.isinf(hi):
        frac = 0.5
    elif i == 0:
        frac = seconds / hi
    else:
        frac = math.log(max(seconds, lo) / lo) / math.log(hi / lo)
    return i + min(max(frac, 0.0), 1.0)


def residence_histogram(report: Report, width: int = W, height: int = 280) -> Markup:
    """How long data stayed: a histogram of residence times, with p50, p95 and p99."""
    values = report.residences
    marks = report.percentiles
    quoted = ", ".join(f"{k} {human_duration(v)}" for k, v in marks.items() if v is not None)
    label = (f"Residence time of {len(values)} finished transfers, {_span(report)}"
             + (f": {quoted}" if quoted else ""))
    svg = Svg(width, height, label, "Residence time distribution")
    plot = Plot(52, 72, width - 14, height - 30)
    counts = histogram_bins(values)
    ticks = nice_ticks(max(max(counts, default=0), 1))
    _y_axis(svg, plot, ticks, lambda v: human_count(int(v)), "transfers")
    band = plot.width / len(counts)
    scale = plot.height / ticks[-1]
    for i, n in enumerate(counts):
        x = plot.left + i * band
        svg.rect(x, plot.top, band, plot.height, "#ffffff", fill_opacity="0",
                 title=f"{bin_label(i)}: {n} transfers")
        if n:
            svg.rect(x + 1.5, plot.bottom - n * scale, band - 3, n * scale, HIST_COLOR,
                     title=f"{bin_label(i)}: {n} transfers", data_bin=str(i), data_count=str(n))
    every = 1 if band >= 46 else 2
    for i in range(len(counts) + 1):
        x = plot.left + i * band
        svg.line(x, plot.bottom, x, plot.bottom + 4, AXIS)
        if EDGE_LABELS[i] and i % every == 0:
            svg.text(x, plot.bottom + 18, EDGE_LABELS[i], anchor="middle")
    dashes = {"p50": None, "p95": "6 3", "p99": "2 3"}
    for row, (key, value) in enumerate(marks.items()):
        if value is None:
            continue
        x = plot.left + _position(value, len(counts)) * band
        y = 16 + row * 16
        svg.line(x, y + 4, x, plot.bottom, INK, 1.5, dashes[key])
        right = x > plot.right - 110
        svg.text(x - 5 if right else x + 5, y + 4, f"{key} {human_duration(value)}",
                 anchor="end" if right else "start", fill=INK, size=11.5, weight="600",
                 halo=True)
    if not values:
        _empty(svg, plot, "No finished transfers in this period")
    return svg.render()


def _unit(peak: float) -> tuple[float, str]:
    for power, unit in enumerate(("B", "kB", "MB", "GB", "TB")):
        if peak < 1000 ** (power + 1) or unit == "TB":
            return 1000.0 ** power, unit
    raise AssertionError("unreachable")


def bytes_per_day(report: Report, width: int = W, height: int = 280) -> Markup:
    """Bytes received and sent per day, side by side."""
    days = report.days
    label = (f"Bytes in and out per day, {_span(report)}: {human_bytes(report.bytes_in)} in, "
             f"{human_bytes(report.bytes_out)} out")
    svg = Svg(width, height, label, "Bytes in and out per day")
    below = _legend(svg, 64, width - 14, 16,
                    [("In (received)", IN_COLOR), ("Out (sent)", OUT_COLOR)])
    plot = Plot(64, below + 28, width - 14, height - 30)
    peak = max([d.bytes_in for d in days] + [d.bytes_out for d in days] + [0])
    div, unit = _unit(peak)
    ticks = nice_ticks(max(peak / div, 1), whole=False)
    _y_axis(svg, plot, ticks, lambda v: f"{v:g} {unit}", "")
    band = plot.width / len(days)
    bar = min(band * 0.36, 16)
    scale = plot.height / (ticks[-1] * div)
    for i, d in enumerate(days):
        x = plot.left + i * band
        svg.rect(x, plot.top, band, plot.height, "#ffffff", fill_opacity="0",
                 title=f"{_long_day(d.day)}: {human_bytes(d.bytes_in)} in, "
                       f"{human_bytes(d.bytes_out)} out")
        mid = x + band / 2
        for offset, value, color, what in ((-bar - 1, d.bytes_in, IN_COLOR, "in"),
                                           (1, d.bytes_out, OUT_COLOR, "out")):
            if value:
                h = max(value * scale, 1)
                svg.rect(mid + offset, plot.bottom - h, bar, h, color,
                         title=f"{_long_day(d.day)}: {human_bytes(value)} {what}",
                         data_bytes=what, data_day=d.day.isoformat(), data_value=str(value))
    _day_labels(svg, plot, [d.day for d in days])
    if peak == 0:
        _empty(svg, plot, "No data moved in this period")
    return svg.render()


@dataclass(frozen=True)
class Pair:
    """One chart drawn twice: wide for a laptop, narrow for a phone (CSS shows one)."""

    wide: Markup
    narrow: Markup


def pair(draw: Callable[..., Markup], report: Report, wide: int, narrow: int = 340) -> Pair:
    return Pair(draw(report, width=wide), draw(report, width=narrow, height=250))
