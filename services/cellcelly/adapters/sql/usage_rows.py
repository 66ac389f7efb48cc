"""A batch of events as the system of record's rows: what the SF does for every event it writes.

Its own module so that mypyc compiles it (setup.py): in `make run` the SF child shares the two
cores with charging, and building these rows and picking each subscriber's newest balance was a
tenth of its samples (py-spy at 1,000 sessions/s) as interpreted Python. `records.py`, around it,
stays interpreted: the rest of it runs per query, not per event.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from cellcelly.adapters.sql.schema import TEXT_COLUMN
from cellcelly.domain.charging import UsageEvent
from cellcelly.domain.provisioning import LedgerEvent
from cellcelly.ports.records import BalanceSnapshot

__all__ = ["newest_snapshots", "usage_bucket_values", "usage_values"]


def usage_values(e: UsageEvent) -> tuple[Any, ...]:
    """A usage record's values in `usage_records` column order (the bulk path's rows)."""
    return (
        e.event_id,
        e.msisdn,
        e.session_id,
        e.request_number,
        e.rating_group,
        str(e.service),
        e.rule_id,
        e.units,
        e.bucket_units,
        e.wallet_units,
        e.uncharged_units,
        e.money,
        e.wallet_after,
        e.occurred_at,
        e.destination[:TEXT_COLUMN],
        e.location[:TEXT_COLUMN],
        e.catalogue_version[:TEXT_COLUMN],
    )


def usage_bucket_values(e: UsageEvent) -> list[tuple[str, int, str, int]]:
    """The buckets one usage event consumed, in `usage_buckets` column order."""
    return [(e.event_id, i, bucket_id, units) for i, (bucket_id, units) in enumerate(e.buckets)]


def newest_snapshots(items: Iterable[BalanceSnapshot | UsageEvent | LedgerEvent]) -> list[BalanceSnapshot]:
    """Each subscriber's newest wallet among `items`, by MSISDN (the order rows are locked in).
    Newer is a later (as_of, revision), then the lower wallet (a commit's debits come in order);
    of equals, the first. A snapshot is made only for each subscriber's newest event."""
    newest: dict[str, tuple[tuple[int, int, int], BalanceSnapshot | UsageEvent | LedgerEvent]] = {}
    for item in items:
        if isinstance(item, BalanceSnapshot):
            key = (item.as_of, item.revision, -item.wallet)
        else:
            key = (item.occurred_at, item.revision, -item.wallet_after)
        seen = newest.get(item.msisdn)
        if seen is None or key > seen[0]:
            newest[item.msisdn] = (key, item)
    return [_snapshot(newest[msisdn][1]) for msisdn in sorted(newest)]


def _snapshot(item: BalanceSnapshot | UsageEvent | LedgerEvent) -> BalanceSnapshot:
    if isinstance(item, BalanceSnapshot):
        return item
    return BalanceSnapshot(item.msisdn, item.wallet_after, item.revision, item.occurred_at, item.event_id)
