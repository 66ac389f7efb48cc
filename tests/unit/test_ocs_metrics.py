"""The OCS's charging metrics, counted as plain numbers and read when scraped, are what
prometheus_client's own Counter and Histogram would have exported for the same charges."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from cellcelly.ocs.metrics import BUCKETS, OcsMetrics

pytestmark = pytest.mark.unit

charges = st.lists(
    st.tuples(
        st.sampled_from(["INITIAL", "UPDATE", "TERMINATE", "EVENT"]),
        st.sampled_from([2001, 4012, 5030]),
        st.one_of(st.sampled_from(BUCKETS), st.floats(0.0, 0.5, allow_nan=False)),  # bounds too
    ),
    max_size=60,
)


def lines(registry: CollectorRegistry, prefix: str) -> list[str]:
    text = generate_latest(registry).decode()
    return sorted(line for line in text.splitlines() if line.startswith(prefix) and "_created" not in line)


@given(charges)
def test_the_scrape_is_prometheus_clients_own(seen: list[tuple[str, int, float]]) -> None:
    ours = OcsMetrics()
    theirs = CollectorRegistry()
    requests = Counter("cellcelly_charging_requests", "", ["type", "result"], registry=theirs)
    latency = Histogram("cellcelly_charging_seconds", "", ["type"], buckets=BUCKETS, registry=theirs)
    for kind, result, seconds in seen:
        ours.charged(kind, result, seconds)
        requests.labels(kind, str(result)).inc()
        latency.labels(kind).observe(seconds)
    for prefix in ("cellcelly_charging_requests", "cellcelly_charging_seconds"):
        assert lines(ours.registry, prefix) == lines(theirs, prefix)
