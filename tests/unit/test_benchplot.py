"""The latency picture of `make bench` (issue 16): one line and point set per e2e path and series,
in the order of the offered load, and no page when there is nothing to draw."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any

import pytest

from cellcelly_dev.benchplot import E2E_ROW, Point, figure, keeps_up_to, page

pytestmark = pytest.mark.unit

SVG = "{http://www.w3.org/2000/svg}"
PATHS = ("baseline: noop", "two processes", "embedded stack")
RATES = (500, 1000, 2000)
# (path, sessions/s) -> (achieved CCR/s, p50 µs, p99 µs): every path falls behind somewhere
FIGURES = {
    (path, rate): (min(rate * 4.2, cap), 300.0 * rate / 500 * (i + 1), 1000.0 * rate / 500 * (i + 1))
    for i, (path, cap) in enumerate(zip(PATHS, (7000, 4500, 3000), strict=True))
    for rate in RATES
}


def e2e_row(path: str, rate: int) -> dict[str, Any]:
    achieved, p50, p99 = FIGURES[(path, rate)]
    return {
        "name": f"Diameter e2e, {path}, offered {rate} sessions/s",
        "ops_per_s": achieved,
        "p50_us": p50,
        "p99_us": p99,
        "errors": 0,
        "shed_sessions": 0,
    }


def report(per_session: float | None = 4.2) -> dict[str, Any]:
    # rates deliberately out of order: the picture sorts by offered load, not by the run's order
    rows = [e2e_row(path, rate) for path in PATHS for rate in (2000, 500, 1000)]
    rows.insert(
        0, {"name": "HTTP baseline: same stack, /noop", "ops_per_s": 20_000.0, "p50_us": 1.0, "p99_us": 2.0}
    )
    out: dict[str, Any] = {
        "date": "2026-12-02 15:00 UTC",
        "machine": {"cpus": 2, "python": "3.11.7"},
        "results": rows,
    }
    if per_session is not None:
        out["e2e"] = {"ccrs_per_session": per_session}
    return out


def parse(svg: str | None) -> ET.Element:
    assert svg is not None
    return ET.fromstring(svg)


def test_one_polyline_per_path_and_series_with_a_point_per_rate() -> None:
    root = parse(figure(report()))
    lines = root.findall(f"{SVG}polyline")
    assert sorted((e.get("data-path"), e.get("data-series")) for e in lines) == sorted(
        (path, series) for path in PATHS for series in ("p50", "p99", "achieved")
    )
    for path in PATHS:
        for series in ("p50", "p99", "achieved"):
            dots = [
                float(e.get("data-offered", "nan"))
                for e in root.findall(f"{SVG}circle")
                if e.get("data-path") == path and e.get("data-series") == series
            ]
            assert dots == [rate * 4.2 for rate in RATES]  # offered CCR/s, in order


def test_coordinates_are_monotone_in_the_offered_rate_and_follow_the_figures() -> None:
    root = parse(figure(report()))
    for line in root.findall(f"{SVG}polyline"):
        xy = [tuple(float(v) for v in pair.split(",")) for pair in (line.get("points") or "").split()]
        assert len(xy) == len(RATES)
        xs = [x for x, _ in xy]
        assert xs == sorted(xs) and len(set(xs)) == len(xs)
        # SVG's y grows downwards: a higher figure is a smaller y
        path, series = line.get("data-path"), line.get("data-series")
        column = {"achieved": 0, "p50": 1, "p99": 2}[str(series)]
        values = [FIGURES[(str(path), rate)][column] for rate in RATES]
        order = sorted(range(len(RATES)), key=lambda i: values[i])
        ys = [xy[i][1] for i in order]
        assert all(a >= b for a, b in zip(ys, ys[1:], strict=False)), (path, series, xy)
    # the same offered load sits at the same x in both panels, whatever the path
    xs_by_rate: dict[str, set[str]] = {}
    for dot in root.findall(f"{SVG}circle"):
        xs_by_rate.setdefault(dot.get("data-offered", ""), set()).add(dot.get("cx", ""))
    assert len(xs_by_rate) == len(RATES) and all(len(xs) == 1 for xs in xs_by_rate.values())


def test_paths_have_distinct_colours_and_a_legend() -> None:
    root = parse(figure(report()))
    colours = {e.get("data-path"): e.get("stroke") for e in root.findall(f"{SVG}polyline")}
    assert len(set(colours.values())) == len(PATHS)
    legend = " ".join(e.text or "" for e in root.findall(f"{SVG}text") if e.get("class") == "legend")
    for path in PATHS:
        assert path in legend
    # offered 2,100 / 4,200 / 8,400 CCR/s against caps of 7,000 / 4,500 / 3,000
    assert "baseline: noop — keeps up to 4,200 CCR/s offered" in legend
    assert "two processes — keeps up to 4,200 CCR/s offered" in legend
    assert "embedded stack — keeps up to 2,100 CCR/s offered" in legend


def test_the_page_is_self_contained_with_the_machine_and_date_in_its_title() -> None:
    html = page(report())
    assert html is not None
    title = re.search(r"<title>(.*)</title>", html)
    assert title is not None
    assert "2026-12-02 15:00 UTC" in title[1] and "2 CPUs" in title[1] and "3.11.7" in title[1]
    assert "<script" not in html.lower()
    assert re.findall(r"https?://[^\"' ]+", html) == ["http://www.w3.org/2000/svg"]  # nothing fetched
    assert "offered CCR/s (sessions/s × 4.2 CCRs a session)" in html


def test_without_ccrs_a_session_the_axis_says_sessions() -> None:
    root = parse(figure(report(per_session=None)))
    dots = {float(e.get("data-offered", "nan")) for e in root.findall(f"{SVG}circle")}
    assert dots == {float(rate) for rate in RATES}
    labels = " ".join(e.text or "" for e in root.findall(f"{SVG}text"))
    assert "offered sessions/s" in labels and "CCRs a session" in labels


@pytest.mark.parametrize(
    "rows",
    [[], [{"name": "HTTP charging", "ops_per_s": 1.0, "p50_us": 1.0, "p99_us": 1.0}]],
    ids=["empty", "no e2e rows"],
)
def test_no_page_without_e2e_rows(rows: list[dict[str, Any]]) -> None:
    assert figure({"results": rows}) is None
    assert page({"results": rows}) is None
    assert page({}) is None


def test_the_row_names_the_bench_writes_are_read() -> None:
    match = E2E_ROW.match("Diameter e2e, DGW -> OCS (wire) -> store, two processes, offered 750 sessions/s")
    assert match is not None
    assert (match["path"], match["rate"]) == ("DGW -> OCS (wire) -> store, two processes", "750")


def test_keeps_up_to_is_the_last_load_before_the_first_fall() -> None:
    def p(offered: float, achieved: float) -> Point:
        return Point(offered, achieved, 1.0, 2.0, 0, 0)

    assert keeps_up_to([p(1000, 1000), p(2000, 1960), p(3000, 2500), p(4000, 3990)]) == 2000
    assert keeps_up_to([p(1000, 900)]) is None
