"""The operator bench (`make bench`) still runs: two stacks through kopf and kmock, figures that add up."""

from __future__ import annotations

import asyncio

import pytest

from cellcelly_dev import operator_bench as bench

pytestmark = [pytest.mark.operator, pytest.mark.timeout(180)]


def test_bench_creates_and_reconciles_stacks_with_a_baseline() -> None:
    figures = asyncio.run(bench.run(2, 1))
    assert figures["children_per_stack"] > 20
    assert figures["single_stack_created_to_children_s"]["runs"] == 1
    assert 0 < figures["2_stacks_created_to_all_children_s"] < 120
    assert figures["2_stacks_steady_reconcile_s"] > 0
    assert figures["2_stacks_same_requests_raw_s"] > 0
    # three stacks' children (1 single + 2) are all in the fake server, plus the stacks and Secrets
    assert figures["objects_in_fake_server"] >= 3 * figures["children_per_stack"]
