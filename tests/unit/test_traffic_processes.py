"""The generator's split over processes and the merge of their reports (pure; the processes
themselves run in tests/integration/test_traffic_generator.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cellcelly.traffic.generator import BEHIND_LIMIT_MS, TrafficConfig, TrafficReport, percentile_ms
from cellcelly.traffic.processes import merge, shares


def _report(latencies: list[int], duration: float, behind: float, counts: dict[int, int]) -> TrafficReport:
    n = len(latencies)
    return TrafficReport(
        requests=n + 1,
        answers=n,
        sessions_started=n,
        sessions_completed=n,
        sessions_aborted=0,
        sessions_shed=2,
        duration=duration,
        ccr_per_s=n / duration,
        p50_ms=0.0,
        p95_ms=0.0,
        p99_ms=0.0,
        max_ms=0.0,
        result_counts=counts,
        mscc_result_counts=counts,
        timeouts=1,
        errors=0,
        connections=2,
        behind_ms=behind * 2,
        behind_p99_ms=behind,
        service_counts={"voice": n},
    )


@given(
    st.integers(1, 8),
    st.integers(1, 16),
    st.integers(0, 64),
    st.floats(1.0, 50_000.0, allow_nan=False),
)
def test_shares_divide_the_rate_and_spread_the_connections(
    processes: int, connections: int, bound: int, rate: float
) -> None:
    config = TrafficConfig(rate=rate, connections=connections, max_in_flight=bound, seed=5)
    parts = shares(config, processes)
    assert len(parts) == processes
    assert sum(p.rate for p in parts) == pytest.approx(rate)
    assert sum(p.connections for p in parts) == max(connections, processes)
    assert all(p.connections >= 1 for p in parts)
    assert max(p.connections for p in parts) - min(p.connections for p in parts) <= 1
    if bound:
        assert all(p.max_in_flight >= 1 for p in parts)
        assert sum(p.max_in_flight for p in parts) == max(bound, processes)
    else:
        assert all(p.max_in_flight == 0 for p in parts)  # each its own automatic bound
    assert len({p.seed for p in parts}) == processes  # no two processes draw the same sessions
    assert all(
        (p.duration, p.subscribers, p.mix) == (config.duration, config.subscribers, config.mix) for p in parts
    )


def test_no_processes_is_refused() -> None:
    with pytest.raises(ValueError):
        shares(TrafficConfig(), 0)


latencies = st.lists(st.integers(1, 10**10), min_size=1, max_size=200)


@given(st.lists(st.tuples(latencies, st.floats(0.1, 100.0), st.floats(0.0, 50.0)), min_size=1, max_size=5))
def test_the_merged_report_is_exact_over_every_latency(parts: list[tuple[list[int], float, float]]) -> None:
    reports = [(_report(lat, d, b, {2001: len(lat), 4012: 1}), lat) for lat, d, b in parts]
    merged = merge(reports, 123.0)
    every = sorted(ns for lat, _, _ in parts for ns in lat)
    # percentiles of every answer, not an average of the processes' percentiles
    for p, got in ((50, merged.p50_ms), (95, merged.p95_ms), (99, merged.p99_ms)):
        assert got == percentile_ms(every, p)
    assert merged.max_ms == every[-1] / 1e6
    assert merged.answers == len(every) and merged.requests == len(every) + len(parts)
    assert merged.sessions_shed == 2 * len(parts) and merged.timeouts == len(parts)
    assert merged.result_counts == {2001: len(every), 4012: len(parts)}
    assert merged.service_counts == {"voice": len(every)}
    # the processes ran at once: the run lasted as long as the longest, and was as late as the latest
    assert merged.duration == max(d for _, d, _ in parts)
    assert merged.ccr_per_s == pytest.approx(len(every) / merged.duration)
    assert merged.behind_p99_ms == max(b for _, _, b in parts)
    assert merged.generator_bound == (merged.behind_p99_ms > BEHIND_LIMIT_MS)
    assert (merged.processes, merged.connections, merged.target_rate) == (len(parts), 2 * len(parts), 123.0)


def test_a_report_over_the_limit_says_the_figures_are_the_generators() -> None:
    late = _report([1_000_000], 1.0, BEHIND_LIMIT_MS + 1, {2001: 1})
    on_time = _report([1_000_000], 1.0, BEHIND_LIMIT_MS, {2001: 1})
    assert late.generator_bound and not on_time.generator_bound
    assert "the generator's limit" in late.render() and "limit" not in on_time.render()
    assert late.as_dict()["generator_bound"] is True and on_time.as_dict()["generator_bound"] is False
