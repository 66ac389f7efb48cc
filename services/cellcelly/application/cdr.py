"""Charging data records: the system of record's usage, written out for billing, audit, rerating.

One CDR per usage record (one debit of one rating group of one request), every field a billing or
rerating job needs: who, when, what service to where from where, under which rule of which
catalogue version, how many units, how they were paid (package buckets, wallet, not at all) and
the wallet after. CSV (a header line, UTC ISO times, money in kuruş and in TL) or JSON lines.
"""

from __future__ import annotations

import csv
import datetime
from collections.abc import Callable, Iterable
from typing import Any, TextIO

import orjson

from cellcelly.domain.charging import UsageEvent
from cellcelly.domain.money import format_tl

FIELDS = (
    "event_id",
    "msisdn",
    "session_id",
    "request_number",
    "occurred_at",
    "service",
    "rating_group",
    "destination",
    "location",
    "rule_id",
    "catalogue_version",
    "units",
    "bucket_units",
    "wallet_units",
    "uncharged_units",
    "money_kurus",
    "money_tl",
    "wallet_after_kurus",
    "buckets",
)
FORMATS = ("csv", "jsonl")


def record(e: UsageEvent) -> dict[str, Any]:
    """One CDR; `buckets` as "id:units" pairs joined by ";" (one CSV cell), in the order consumed."""
    at = datetime.datetime.fromtimestamp(e.occurred_at, datetime.UTC)
    return {
        "event_id": e.event_id,
        "msisdn": e.msisdn,
        "session_id": e.session_id,
        "request_number": e.request_number,
        "occurred_at": at.isoformat().replace("+00:00", "Z"),
        "service": e.service.value,
        "rating_group": e.rating_group,
        "destination": e.destination,
        "location": e.location,
        "rule_id": e.rule_id,
        "catalogue_version": e.catalogue_version,
        "units": e.units,
        "bucket_units": e.bucket_units,
        "wallet_units": e.wallet_units,
        "uncharged_units": e.uncharged_units,
        "money_kurus": e.money,
        "money_tl": format_tl(e.money),
        "wallet_after_kurus": e.wallet_after,
        "buckets": ";".join(f"{bucket}:{units}" for bucket, units in e.buckets),
    }


def write(events: Iterable[UsageEvent], out: TextIO, fmt: str = "csv") -> int:
    """Write the events' CDRs to `out` in `fmt`; returns how many."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown CDR format {fmt!r}: one of {', '.join(FORMATS)}")
    if fmt == "csv":
        writer = csv.DictWriter(out, FIELDS, lineterminator="\n")
        writer.writeheader()
        put: Callable[[dict[str, Any]], object] = writer.writerow
    else:
        put = lambda cdr: out.write(orjson.dumps(cdr).decode() + "\n")  # noqa: E731
    count = 0
    for e in events:
        put(record(e))
        count += 1
    return count


def day_range(first: str, last: str | None) -> tuple[int, int]:
    """[start, end) in epoch seconds for the UTC days `first` .. `last` (ISO dates, both included;
    `last` defaults to `first`)."""
    start = datetime.date.fromisoformat(first)
    end = datetime.date.fromisoformat(last) if last else start
    if end < start:
        raise ValueError(f"--to {end} is before --from {start}")
    midnight = datetime.time(tzinfo=datetime.UTC)
    begin = datetime.datetime.combine(start, midnight)
    stop = datetime.datetime.combine(end + datetime.timedelta(days=1), midnight)
    return int(begin.timestamp()), int(stop.timestamp())
