"""`make bench-check`: a row fails when it falls more than 25% below this machine's reference,
by its ratio to a same-run baseline where both have one, else by its throughput; new rows do not
fail. And the committed reference names where each figure came from."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cellcelly_dev.benchcheck import compare, describe, link_baseline, render

pytestmark = pytest.mark.unit

REFERENCE_FILE = Path(__file__).resolve().parents[2] / "bench" / "reference.json"


def row(name: str, ops: float, baseline: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "ops_per_s": ops, "p50_us": 1.0, "p99_us": 2.0, "errors": 0}
    link_baseline(out, baseline)
    return out


def run(codec: float, raw: float = 100_000.0, charging: float = 20_000.0) -> dict[str, Any]:
    base = row("raw commit", raw)
    return {"results": [row("codec decode", codec), base, row("charging", charging, base)]}


REFERENCE = {**run(10_000.0), "results": [{**r, "source": "test"} for r in run(10_000.0)["results"]]}


def verdicts(report: dict[str, Any]) -> dict[str, str]:
    return {f.name: f.verdict for f in compare(report, REFERENCE)}


def test_a_30_percent_drop_fails_and_a_20_percent_drop_passes() -> None:
    assert verdicts(run(7_000.0))["codec decode"] == "FAIL"
    assert verdicts(run(8_000.0))["codec decode"] == "ok"
    assert verdicts(run(12_000.0))["codec decode"] == "ok"


def test_a_row_with_a_baseline_is_judged_by_its_ratio() -> None:
    # the machine twice as loaded: both halve, the ratio holds -> not a regression
    assert verdicts(run(10_000.0, raw=50_000.0, charging=10_000.0))["charging"] == "ok"
    # the same absolute figure, but its baseline got faster: the ratio fell 30% -> a regression
    findings = compare(run(10_000.0, raw=100_000.0 / 0.7, charging=20_000.0), REFERENCE)
    failed = [f for f in findings if f.failed]
    assert [(f.name, f.measure) for f in failed] == [("charging", "ratio to baseline")]
    assert failed[0].measured == pytest.approx(0.14) and failed[0].reference == pytest.approx(0.2)
    # the baseline itself has none: judged by its throughput
    assert verdicts(run(10_000.0, raw=60_000.0, charging=12_000.0))["raw commit"] == "FAIL"


def test_new_rows_are_reported_not_failed_and_missing_ones_not_run() -> None:
    report = run(10_000.0)
    report["results"].append(row("events: something new", 1.0))
    report["results"].append(row("skipped: VoltDB rows (no Java)", 0.0))
    del report["results"][0]
    findings = compare(report, REFERENCE)
    by_name = {f.name: f.verdict for f in findings}
    assert by_name["events: something new"] == "new"
    assert by_name["skipped: VoltDB rows (no Java)"] == "skipped"
    assert by_name["codec decode"] == "not run"
    assert not any(f.failed for f in findings)
    assert render(findings).endswith("no row fell more than 25% below the reference")


def test_every_failing_row_is_listed_first() -> None:
    findings = compare(run(5_000.0, raw=50_000.0, charging=5_000.0), REFERENCE)
    text = render(findings)
    assert [f.name for f in findings[:3]] == ["codec decode", "raw commit", "charging"]
    assert text.count("FAIL") == 3 and "3 row(s) fell more than 25% below" in text
    assert "[test]" in text  # the reference figure's source, beside a failure


def test_a_compiled_run_is_held_against_the_compiled_rows_where_there_are_some() -> None:
    # the compiled build's own decode figure is 3x the pure one; its baselines are the pure tree's
    reference = {**REFERENCE, "compiled": {"results": [{**row("codec decode", 30_000.0), "source": "c"}]}}
    compiled = {**run(20_000.0), "compiled": True}
    # 20,000 beats the pure 10,000 but is a third below the compiled 30,000: a regression
    findings = {f.name: f for f in compare(compiled, reference)}
    assert findings["codec decode"].verdict == "FAIL" and findings["codec decode"].reference == 30_000.0
    assert findings["raw commit"].verdict == "ok" and findings["raw commit"].reference == 100_000.0
    # the same figures from the pure tree pass against the pure rows
    assert not any(f.failed for f in compare(run(20_000.0), reference))
    # with no compiled rows, a compiled run falls back to the pure ones, and the report says so
    assert not any(f.failed for f in compare(compiled, REFERENCE))
    assert "no reference of its own" in describe(REFERENCE, "compiled")
    assert "1 rows of its own" in describe(reference, "compiled")
    assert describe(reference, "pure") == "the pure tree's reference"


def test_link_baseline_skips_a_baseline_that_did_nothing() -> None:
    assert "ratio_to_baseline" not in row("x", 10.0, row("base", 0.0))
    linked = row("x", 10.0, row("base", 40.0))
    assert (linked["baseline"], linked["ratio_to_baseline"]) == ("base", 0.25)


def test_the_committed_reference_is_well_formed() -> None:
    reference = json.loads(REFERENCE_FILE.read_text())
    rows = {r["name"]: r for r in reference["results"]}
    assert len(rows) == len(reference["results"])
    for name, r in rows.items():
        assert r["ops_per_s"] > 0 and r["source"], name
        if "baseline" in r:
            assert r["baseline"] in rows and r["ratio_to_baseline"] > 0, name
    # the e2e paths are each beside the noop baseline at the same offered load
    e2e = [n for n in rows if n.startswith("Diameter e2e") and "dgw --noop" not in n]
    assert len(e2e) == 4 and all(rows[n]["baseline"].endswith(n.rsplit(",", 1)[1]) for n in e2e)
    # a run equal to the reference passes
    assert not any(f.failed for f in compare(reference, reference))
    # the compiled build's rows: each names a pure row (the same bench) and its baseline there
    compiled = reference["compiled"]["results"]
    assert compiled and reference["compiled"]["about"]
    for r in compiled:
        assert r["name"] in rows and r["ops_per_s"] > 0 and r["source"], r["name"]
        assert r.get("baseline") == rows[r["name"]].get("baseline"), r["name"]
    assert not any(f.failed for f in compare({**reference, "results": compiled, "compiled": True}, reference))
