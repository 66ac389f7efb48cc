"""CDRs: a usage record carries destination, location, rule and catalogue version from the charge
to the record; the subscriber's usage pages; `cellcelly cdr export` writes whole UTC days as CSV or
JSON lines. On SQLite and a throwaway PostgreSQL (the `records` fixture)."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_records import T0, usage

from cellcelly.adapters.balance_embedded import EmbeddedBalanceStore
from cellcelly.adapters.sql import SqlRecords
from cellcelly.adapters.sql.schema import TEXT_COLUMN
from cellcelly.application.cdr import FIELDS, day_range, write
from cellcelly.application.charging import ChargingService
from cellcelly.catalogue_store import CatalogueHolder
from cellcelly.codec import event_from_dict
from cellcelly.domain.charging import ChargeRequest, RequestType, ServiceUsage, UsageEvent
from cellcelly.domain.provisioning import open_account
from cellcelly.domain.units import Service
from cellcelly.ports.balance_store import Commit

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

DEFAULT_CATALOGUE = Path(__file__).resolve().parents[2] / "services/cellcelly/catalogue/default.yaml"
MSISDN = "905321234567"
DAY = 86_400


def charged_call(tmp_path: Path) -> list[UsageEvent]:
    """A real call through the charging engine: to Germany, from a Turkish network."""
    catalogue = CatalogueHolder.from_file(DEFAULT_CATALOGUE)
    store = EmbeddedBalanceStore(tmp_path / "balances", fsync="never")
    try:
        change = open_account(MSISDN, catalogue.current, "ANKARA", int(time.time()))
        store.transact(MSISDN, lambda _: (None, Commit(change.account, events=change.events)))
        charging = ChargingService(store, catalogue)
        voice = ServiceUsage(1, Service.VOICE, 60, 0, "4915112345678")
        charging.charge(ChargeRequest("call-1", RequestType.INITIAL, 0, MSISDN, (voice,), "90"))
        done = dataclasses.replace(voice, requested=None, used=42)
        charging.charge(ChargeRequest("call-1", RequestType.TERMINATE, 1, MSISDN, (done,), "90"))
        events = [event_from_dict(entry.event) for entry in store.outbox()]
        return [e for e in events if isinstance(e, UsageEvent)]
    finally:
        store.close()


def test_a_charge_records_where_from_where_and_under_which_catalogue(
    tmp_path: Path, records: SqlRecords
) -> None:
    events = charged_call(tmp_path)
    assert len(events) == 1
    (event,) = events
    version = CatalogueHolder.from_file(DEFAULT_CATALOGUE).current.version
    assert (event.destination, event.location, event.catalogue_version) == ("4915112345678", "90", version)
    assert event.units == 42 and event.rule_id
    records.record_usage([event])
    (back,) = records.usage_for(MSISDN)
    assert back == dataclasses.replace(event, revision=0)  # every field, the new ones included


def test_values_longer_than_the_column_are_cut_not_refused(records: SqlRecords) -> None:
    long = dataclasses.replace(
        usage(1), destination="9" * 300, location="x" * 200, catalogue_version="v" * 129
    )
    assert records.record_usage([long]) == 1
    (back,) = records.usage_for(long.msisdn)
    assert back.destination == "9" * TEXT_COLUMN and back.location == "x" * TEXT_COLUMN
    assert back.catalogue_version == "v" * TEXT_COLUMN


def test_usage_pages_walk_every_record_once_newest_first(records: SqlRecords) -> None:
    events = [usage(n, at=T0 + n // 3) for n in range(23)]  # three a second: the keyset's ties
    records.record_usage(events)
    seen: list[str] = []
    before = None
    for _ in range(10):
        page = records.usage_for(events[0].msisdn, 5, before)
        seen += [e.event_id for e in page]
        if len(page) < 5:
            break
        last = page[-1]
        before = (last.occurred_at, last.request_number, last.event_id)
    assert sorted(seen) == sorted(e.event_id for e in events) and len(seen) == len(set(seen))
    assert seen == [e.event_id for e in records.usage_for(events[0].msisdn, 100)]  # the same order


def test_usage_between_is_the_days_records_oldest_first(records: SqlRecords) -> None:
    inside = [usage(n, at=T0 + DAY + n * 1000) for n in range(40)]  # day 2, 11 hours
    outside = [usage(100, at=T0 + DAY - 1), usage(101, at=T0 + 2 * DAY)]  # the edges
    records.record_usage(inside + outside)
    got = list(records.usage_between(T0 + DAY, T0 + 2 * DAY, batch=7))  # several partitions
    assert [e.event_id for e in got] == [
        e.event_id for e in sorted(inside, key=lambda e: (e.occurred_at, e.event_id))
    ]


def test_csv_and_json_lines_carry_every_field() -> None:
    event = dataclasses.replace(
        usage(3, buckets=[("b1", 5), ("b2", 7)]),
        destination="905551112233",
        location="90",
        catalogue_version="7",
    )
    out = io.StringIO()
    assert write([event], out, "csv") == 1
    (row,) = csv.DictReader(io.StringIO(out.getvalue()))
    assert tuple(row) == FIELDS
    assert row["destination"] == "905551112233" and row["catalogue_version"] == "7"
    assert row["buckets"] == "b1:5;b2:7" and row["occurred_at"] == "2025-01-01T00:00:03Z"
    assert row["money_kurus"] == str(event.money) and row["units"] == str(event.units)
    lines = io.StringIO()
    write([event, event], lines, "jsonl")
    parsed = [json.loads(line) for line in lines.getvalue().splitlines()]
    assert len(parsed) == 2 and parsed[0]["location"] == "90" and set(parsed[0]) == set(FIELDS)
    with pytest.raises(ValueError, match="unknown CDR format"):
        write([event], io.StringIO(), "xml")


def test_day_range_is_whole_utc_days() -> None:
    assert day_range("2025-01-02", None) == (T0 + DAY, T0 + 2 * DAY)
    assert day_range("2025-01-01", "2025-01-03") == (T0, T0 + 3 * DAY)
    with pytest.raises(ValueError, match="before"):
        day_range("2025-01-03", "2025-01-01")


def test_the_export_command_writes_the_days_records(tmp_path: Path, db_url: str, records: SqlRecords) -> None:
    records.record_usage([usage(n, at=T0 + DAY + n) for n in range(5)] + [usage(9, at=T0)])
    env = {**os.environ, "CELLCELLY_DATABASE_URL": db_url, "CELLCELLY_DATA_DIR": str(tmp_path)}
    out = tmp_path / "cdr.csv"
    command = [
        sys.executable,
        "-m",
        "cellcelly.cli",
        "cdr",
        "export",
        "--from",
        "2025-01-02",
        "--out",
        str(out),
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "5 records" in done.stderr
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert len(rows) == 5 and all(r["occurred_at"].startswith("2025-01-02T") for r in rows)
    command = [*command[:-2], "--format", "jsonl", "--to", "2025-01-02"]
    lines = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=True).stdout
    assert len(lines.splitlines()) == 5
    bad = subprocess.run(
        [*command[:5], "--from", "2025-13-01"], env=env, capture_output=True, text=True, timeout=60
    )
    assert bad.returncode == 2 and "cdr export" in bad.stderr
