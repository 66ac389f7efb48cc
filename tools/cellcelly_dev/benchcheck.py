"""`make bench-check`: a bench run held against this machine's committed reference figures (issue 16).

A row fails when its throughput falls more than 25% below the same-named row of
`bench/reference.json`; where the row has a baseline measured in the same run (`ratio_to_baseline`
in both the run and the reference) its ratio to that baseline is compared instead, because this
shared machine's load moves absolute figures, baselines included, by 30-40% between runs while a
ratio moves much less. Rows the reference lacks are "new" and rows it has that did not run are "not
run": neither fails. A developer's check after a change, not a timed unit test.

The reference is per build. Its `results` are the pure-Python tree's; its `compiled.results` hold
the rows the mypyc-compiled charging path (`make compile`) moves, and a compiled run (the report's
`compiled`) is held against those where they exist and against the pure rows for the rest (the
baselines, which no build changes). Held against the pure figures, a compiled build could lose
most of its gain before any row failed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

TOLERANCE = 0.25  # a fall of more than this fraction below the reference fails


def link_baseline(row: dict[str, Any], baseline: dict[str, Any] | None) -> None:
    """Record on `row` the baseline it was measured beside in the same run, and its ratio to it
    (the figure the check prefers). No ratio beside a baseline that did nothing."""
    if baseline is None or not baseline.get("ops_per_s"):
        return
    row["baseline"] = baseline["name"]
    row["baseline_ops_per_s"] = baseline["ops_per_s"]
    row["ratio_to_baseline"] = round(row["ops_per_s"] / baseline["ops_per_s"], 3)


@dataclass(frozen=True, slots=True)
class Finding:
    name: str
    verdict: str  # "ok", "FAIL", "new", "skipped", "not run"
    measure: str = ""  # "ratio to baseline" or "ops/s"
    measured: float | None = None
    reference: float | None = None
    source: str = ""  # where the reference figure came from

    @property
    def failed(self) -> bool:
        return self.verdict == "FAIL"

    def line(self) -> str:
        if self.measured is None or self.reference is None:
            return f"{self.verdict:7} {self.name}"
        change = (self.measured / self.reference - 1) * 100 if self.reference else 0.0
        figures = f"{self.measure} {self.measured:,.3g} against {self.reference:,.3g} ({change:+.0f}%)"
        if self.measure == "ops/s":
            figures = f"ops/s {self.measured:,.0f} against {self.reference:,.0f} ({change:+.0f}%)"
        return f"{self.verdict:7} {self.name}: {figures}" + (f" [{self.source}]" if self.failed else "")


def build_of(report: dict[str, Any]) -> str:
    # a report's `compiled` is a flag; the reference's is its section of compiled rows
    return "compiled" if report.get("compiled") is True else "pure"


def _compiled_rows(reference: dict[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = reference.get("compiled", {}).get("results", [])
    return rows


def reference_rows(reference: dict[str, Any], build: str) -> dict[str, dict[str, Any]]:
    """The reference rows a run of `build` ("pure" or "compiled") is held against, by name."""
    rows = {row["name"]: row for row in reference.get("results", [])}
    if build == "compiled":
        rows.update((row["name"], row) for row in _compiled_rows(reference))
    return rows


def compare(report: dict[str, Any], reference: dict[str, Any], tolerance: float = TOLERANCE) -> list[Finding]:
    """Each row of a bench report (`bench/results/latest.json`) against the same-named reference
    row of its build: failures first, then the rest in the run's order, then the reference rows not
    run."""
    known = reference_rows(reference, build_of(report))
    findings: list[Finding] = []
    for row in report.get("results", []):
        name = row["name"]
        ref = known.pop(name, None)
        if name.startswith("skipped:") or not row.get("ops_per_s"):
            findings.append(Finding(name, "skipped"))
            continue
        if ref is None:
            findings.append(Finding(name, "new"))
            continue
        key, measure = "ops_per_s", "ops/s"
        if row.get("ratio_to_baseline") is not None and ref.get("ratio_to_baseline") is not None:
            key, measure = "ratio_to_baseline", "ratio to baseline"
        measured, expected = float(row[key]), float(ref[key])
        verdict = "FAIL" if measured < expected * (1 - tolerance) else "ok"
        findings.append(Finding(name, verdict, measure, measured, expected, ref.get("source", "")))
    findings += [Finding(name, "not run") for name in known]
    return sorted(findings, key=lambda f: not f.failed)  # stable: the run's order within each group


def describe(reference: dict[str, Any], build: str) -> str:
    """Which figures a run of `build` is held against, for the head of the check's report."""
    if build != "compiled":
        return "the pure tree's reference"
    own = len(_compiled_rows(reference))
    if not own:
        return "the compiled build: no reference of its own, so the pure tree's (a weaker check)"
    return f"the compiled build's reference ({own} rows of its own, the pure tree's for the rest)"


def render(findings: list[Finding], tolerance: float = TOLERANCE) -> str:
    failed = sum(f.failed for f in findings)
    lines = [f.line() for f in findings]
    verdict = (
        f"bench check: {failed} row(s) fell more than {tolerance:.0%} below the reference"
        if failed
        else f"bench check: no row fell more than {tolerance:.0%} below the reference"
    )
    return "\n".join([*lines, verdict])
