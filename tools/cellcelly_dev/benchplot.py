"""The latency picture of `make bench` (issue 16): the Diameter e2e rows as one HTML page.

For each e2e path, p50 and p99 latency (log scale) and the achieved CCR/s against the offered load,
so where a path stops keeping up (its knee) shows at a glance. A pure function of the bench's
report; the page is self-contained (inline SVG, no script, nothing fetched) so it opens anywhere.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from html import escape
from typing import Any

E2E_ROW = re.compile(r"^Diameter e2e, (?P<path>.+), offered (?P<rate>[\d.]+) sessions/s$")
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")
KEEPS_UP = 0.95  # achieved / offered at or above which a path is keeping up

# the panels' geometry (SVG user units)
WIDTH, PANEL_H, LEFT, RIGHT, TOP, GAP = 900, 300, 80, 20, 100, 80


@dataclass(frozen=True, slots=True)
class Point:
    offered: float  # on the x axis: CCR/s, or sessions/s when the report lacks CCRs a session
    achieved: float  # CCR/s
    p50_ms: float
    p99_ms: float
    shed: int
    errors: int


def e2e_points(report: dict[str, Any]) -> tuple[dict[str, list[Point]], str]:
    """The e2e rows by path (in the run's order), each path's points by offered load, and the x
    axis's label. Offered CCR/s is offered sessions/s times the report's CCRs a session (the
    generator's mix: an expectation, exact over a run), not the achieved rate, which is the y of
    the throughput panel."""
    per_session = (report.get("e2e") or {}).get("ccrs_per_session")
    scale = float(per_session) if per_session else 1.0
    axis = (
        f"offered CCR/s (sessions/s × {scale:g} CCRs a session)"
        if per_session
        else "offered sessions/s (the report gives no CCRs a session)"
    )
    paths: dict[str, list[Point]] = {}
    for row in report.get("results", []):
        match = E2E_ROW.match(row.get("name", ""))
        if match is None:
            continue
        paths.setdefault(match["path"], []).append(
            Point(
                float(match["rate"]) * scale,
                float(row["ops_per_s"]),
                row["p50_us"] / 1000,
                row["p99_us"] / 1000,
                int(row.get("shed_sessions", 0)),
                int(row.get("errors", 0)),
            )
        )
    return {path: sorted(points, key=lambda p: p.offered) for path, points in paths.items()}, axis


def _nice_step(span: float, ticks: int = 6) -> float:
    raw = span / ticks if span > 0 else 1.0
    magnitude = 10.0 ** math.floor(math.log10(raw))
    return next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)


class _Axis:
    """A value → pixel map, linear from 0 or logarithmic over whole decades."""

    def __init__(self, low: float, high: float, start: float, end: float, log: bool = False) -> None:
        self.log = log
        if log:
            self.low = 10.0 ** math.floor(math.log10(low))
            self.high = max(10.0 ** math.ceil(math.log10(high)), self.low * 10)
        else:
            step = _nice_step(high)
            self.low, self.high = 0.0, step * math.ceil(high / step) if high > 0 else 1.0
        self.start, self.end = start, end

    def __call__(self, value: float) -> float:
        if self.log:
            value = max(value, self.low)
            share = math.log10(value / self.low) / math.log10(self.high / self.low)
        else:
            share = (value - self.low) / (self.high - self.low)
        return round(self.start + share * (self.end - self.start), 1)

    def ticks(self) -> list[float]:
        if self.log:
            decades = round(math.log10(self.high / self.low))
            return [self.low * 10**i for i in range(decades + 1)]
        step = _nice_step(self.high)
        return [i * step for i in range(round(self.high / step) + 1)]


def _label(value: float, unit: str = "") -> str:
    text = f"{value:,.0f}" if value >= 10 or value == 0 else f"{value:g}"
    return f"{text}{unit}"


def _frame(x: _Axis, y: _Axis, top: float, title: str, x_label: str, y_unit: str) -> list[str]:
    """A panel's box, grid, tick labels and title."""
    bottom = top + PANEL_H
    out = [
        f'<text x="{LEFT}" y="{top - 12}" class="title">{escape(title)}</text>',
        f'<rect x="{LEFT}" y="{top}" width="{WIDTH - LEFT - RIGHT}" height="{PANEL_H}" class="box"/>',
    ]
    for value in x.ticks():
        px = x(value)
        out.append(f'<line x1="{px}" y1="{top}" x2="{px}" y2="{bottom}" class="grid"/>')
        out.append(
            f'<text x="{px}" y="{bottom + 16}" class="tick" text-anchor="middle">{_label(value)}</text>'
        )
    for value in y.ticks():
        py = y(value)
        out.append(f'<line x1="{LEFT}" y1="{py}" x2="{WIDTH - RIGHT}" y2="{py}" class="grid"/>')
        out.append(
            f'<text x="{LEFT - 6}" y="{py + 4}" class="tick" text-anchor="end">{_label(value, y_unit)}</text>'
        )
    out.append(
        f'<text x="{(LEFT + WIDTH - RIGHT) / 2}" y="{bottom + 36}" class="axis" text-anchor="middle">'
        f"{escape(x_label)}</text>"
    )
    return out


def _series(
    points: list[tuple[float, float, float]], colour: str, path: str, kind: str, dashed: bool
) -> list[str]:
    """One polyline and its points: (offered, x pixel, y pixel) each."""
    coords = " ".join(f"{px},{py}" for _, px, py in points)
    dash = ' stroke-dasharray="6 4"' if dashed else ""
    attrs = f'data-path="{escape(path)}" data-series="{kind}"'
    out = [f'<polyline points="{coords}" stroke="{colour}" class="line"{dash} {attrs}/>']
    out += [
        f'<circle cx="{px}" cy="{py}" r="3.5" fill="{colour}" {attrs} data-offered="{offered:g}"/>'
        for offered, px, py in points
    ]
    return out


def keeps_up_to(points: list[Point]) -> float | None:
    """The highest offered load a path kept up with (achieved ≥ 95% of it) before it first fell
    behind: its knee is past this point and before the next."""
    best = None
    for p in points:
        if p.achieved < KEEPS_UP * p.offered:
            break
        best = p.offered
    return best


def figure(report: dict[str, Any]) -> str | None:
    """The two panels as one inline SVG, or None when the report has no e2e rows."""
    paths, x_label = e2e_points(report)
    if not paths:
        return None
    every = [p for points in paths.values() for p in points]
    in_ccr = x_label.startswith("offered CCR/s")
    x_high = max(p.offered for p in every)
    x = _Axis(0.0, x_high, LEFT, WIDTH - RIGHT)
    latencies = [v for p in every for v in (p.p50_ms, p.p99_ms) if v > 0] or [1.0]
    lat = _Axis(min(latencies), max(latencies), TOP + PANEL_H, TOP, log=True)
    top2 = TOP + PANEL_H + GAP
    y_high = max(max(p.achieved for p in every), x_high if in_ccr else 0.0)
    thr = _Axis(0.0, y_high, top2 + PANEL_H, top2)
    height = top2 + PANEL_H + 50
    size = f'width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}"'
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" {size}>']
    out += _frame(x, lat, TOP, "latency (log scale): p99 solid, p50 dashed", x_label, " ms")
    out += _frame(x, thr, top2, "achieved CCR/s (grey: achieved = offered)", x_label, "")
    if in_ccr:  # where a path that keeps up lies
        edge = min(x.high, thr.high)
        out.append(f'<line x1="{x(0)}" y1="{thr(0)}" x2="{x(edge)}" y2="{thr(edge)}" class="ideal"/>')
    legend = []
    for i, (path, points) in enumerate(paths.items()):
        colour = COLOURS[i % len(COLOURS)]
        for kind, dashed, ys in (
            ("p99", False, [lat(p.p99_ms) for p in points]),
            ("p50", True, [lat(p.p50_ms) for p in points]),
            ("achieved", False, [thr(p.achieved) for p in points]),
        ):
            xs = [(p.offered, x(p.offered)) for p in points]
            out += _series(
                [(o, px, py) for (o, px), py in zip(xs, ys, strict=True)], colour, path, kind, dashed
            )
        knee = keeps_up_to(points) if in_ccr else None
        note = f" — keeps up to {knee:,.0f} CCR/s offered" if knee is not None else ""
        if in_ccr and knee is None:
            note = " — behind at every offered load"
        legend.append(
            f'<rect x="{LEFT}" y="{8 + 16 * i}" width="12" height="12" fill="{colour}"/>'
            f'<text x="{LEFT + 18}" y="{18 + 16 * i}" class="legend">{escape(path + note)}</text>'
        )
    out += legend
    out.append("</svg>")
    return "\n".join(out)


def _table(paths: dict[str, list[Point]], x_label: str) -> str:
    head = (
        f"<tr><th>path</th><th>{escape(x_label)}</th><th>achieved CCR/s</th>"
        "<th>p50 ms</th><th>p99 ms</th><th>sessions shed</th><th>timeouts + errors</th></tr>"
    )
    rows = [
        f"<tr><td>{escape(path)}</td><td>{p.offered:,.0f}</td><td>{p.achieved:,.0f}</td>"
        f"<td>{p.p50_ms:,.2f}</td><td>{p.p99_ms:,.2f}</td><td>{p.shed}</td><td>{p.errors}</td></tr>"
        for path, points in paths.items()
        for p in points
    ]
    return "<table>" + head + "".join(rows) + "</table>"


STYLE = """
body { font-family: sans-serif; margin: 24px; color: #222; }
h1 { font-size: 18px; font-weight: normal; }
svg text { font-family: sans-serif; }
.title { font-size: 14px; } .tick { font-size: 11px; fill: #555; } .axis { font-size: 12px; }
.legend { font-size: 12px; } .box { fill: none; stroke: #999; } .grid { stroke: #eee; }
.line { fill: none; stroke-width: 2; } .ideal { stroke: #aaa; stroke-dasharray: 2 4; }
table { border-collapse: collapse; font-size: 12px; margin-top: 16px; }
td, th { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
td:first-child { text-align: left; }
"""


def page(report: dict[str, Any]) -> str | None:
    """The whole page, or None when the report has no e2e rows (nothing to draw)."""
    svg = figure(report)
    if svg is None:
        return None
    machine = report.get("machine") or {}
    title = (
        f"Diameter e2e latency and throughput against offered load — {report.get('date', 'date unknown')}, "
        f"{machine.get('cpus', '?')} CPUs, Python {machine.get('python', '?')}"
    )
    paths, x_label = e2e_points(report)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head>\n<body>\n"
        f"<h1>{escape(title)}</h1>\n{svg}\n{_table(paths, x_label)}\n</body></html>\n"
    )
