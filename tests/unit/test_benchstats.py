"""How the bench says what the host did to a group of rows: the steal between two readings of
/proc/stat, and the pace of a fixed piece of work."""

from __future__ import annotations

from cellcelly_dev.benchstats import host_ticks, machine_pace, steal_pct


def test_steal_is_the_share_of_the_ticks_between_two_readings() -> None:
    assert steal_pct((10, 1_000), (40, 1_300)) == 10.0
    assert steal_pct((10, 1_000), (10, 1_300)) == 0.0
    assert steal_pct((5, 500), (5, 500)) == 0.0  # no time between them: no share, no division


def test_the_machine_is_read_and_its_ticks_only_grow() -> None:
    first = host_ticks()
    assert machine_pace(1) > 0
    second = host_ticks()
    assert 0 <= first[0] <= first[1] and first[1] > 0
    assert second[0] >= first[0] and second[1] >= first[1]
