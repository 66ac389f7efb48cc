"""`SqlRecords` against real databases: SQLite (file, WAL) and a throwaway PostgreSQL.

Every test runs on both back ends (`records`/`db_url` are parametrized in conftest.py).
Oracle has no server here; its DDL and statements are checked in tests/unit/test_sql_oracle.py.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.pool import NullPool

from cellcelly.adapters.sql import SqlRecords, downgrade, migrate
from cellcelly.adapters.sql import records as sql_records
from cellcelly.adapters.sql.migrator import PG_MIGRATION_LOCK, current_revision, head_revision
from cellcelly.adapters.sql.schema import catalogue_versions, metadata, usage_records
from cellcelly.domain.charging import UsageEvent
from cellcelly.domain.provisioning import LedgerEvent
from cellcelly.domain.units import Service
from cellcelly.ports.records import (
    BalanceSnapshot,
    BucketRecord,
    CatalogueRecord,
    SubscriberExists,
    SubscriberRecord,
    SystemOfRecord,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

MSISDN = "905321234567"
OTHER = "905441112233"
T0 = 1_735_689_600  # 2025-01-01T00:00:00Z


def subscriber(msisdn: str = MSISDN, **kw: object) -> SubscriberRecord:
    fields: dict[str, object] = {
        "first_name": "Ayşe",
        "last_name": "Yılmaz",
        "email": "ayse@example.com.tr",
        "status": "active",
        "package": "GENC10",
        "created_at": T0,
    }
    fields.update(kw)
    return SubscriberRecord(msisdn, **fields)  # type: ignore[arg-type]


def usage(
    n: int, msisdn: str = MSISDN, at: int | None = None, buckets: Sequence[tuple[str, int]] = ()
) -> UsageEvent:
    session = f"pgw.example;{n // 10};1"
    return UsageEvent(
        event_id=f"{session}#{n % 10}#{10 + n % 3}",
        msisdn=msisdn,
        session_id=session,
        request_number=n % 10,
        rating_group=10 + n % 3,
        service=(Service.DATA, Service.VOICE, Service.SMS)[n % 3],
        rule_id=f"rule-{n % 3}",
        units=1000 + n,
        bucket_units=600 + n,
        wallet_units=400,
        uncharged_units=n % 2,
        money=7 * (n % 5),
        wallet_after=1_000_000 - n,
        occurred_at=T0 + n if at is None else at,
        buckets=tuple(buckets),
    )


def ledger(
    event_id: str,
    amount: int,
    kind: str = "topup",
    msisdn: str = MSISDN,
    buckets: tuple[tuple[str, str, int, int, int], ...] = (),
    package: str = "",
) -> LedgerEvent:
    return LedgerEvent(
        event_id=event_id,
        msisdn=msisdn,
        kind=kind,
        amount=amount,
        wallet_after=0,
        occurred_at=T0,
        reference=f"ref-{event_id}",
        package=package,
        buckets=buckets,
    )


def test_is_a_system_of_record(records: SqlRecords) -> None:
    sor: SystemOfRecord = records
    assert sor.get_subscriber(MSISDN) is None


# -- subscribers ------------------------------------------------------------------------------


def test_add_get_and_duplicate_subscriber(records: SqlRecords) -> None:
    records.add_subscriber(subscriber())
    assert records.get_subscriber(MSISDN) == subscriber()
    assert records.get_subscriber(OTHER) is None
    with pytest.raises(SubscriberExists):
        records.add_subscriber(subscriber(first_name="Başka"))
    assert records.get_subscriber(MSISDN) == subscriber()


def test_list_subscribers_pages_in_msisdn_order(records: SqlRecords) -> None:
    numbers = [f"9053{i:08d}" for i in (7, 3, 11, 1, 5)]
    for number in numbers:
        records.add_subscriber(subscriber(number))
    everyone = records.list_subscribers()
    assert [s.msisdn for s in everyone] == sorted(numbers)
    assert records.list_subscribers(limit=2, offset=1) == everyone[1:3]
    assert records.list_subscribers(limit=10, offset=5) == []


def test_set_status(records: SqlRecords) -> None:
    records.add_subscriber(subscriber())
    records.set_status(MSISDN, "suspended")
    found = records.get_subscriber(MSISDN)
    assert found is not None and found.status == "suspended"
    records.set_status(OTHER, "suspended")  # unknown: nothing happens
    assert records.get_subscriber(OTHER) is None


def test_turkish_characters_round_trip(records: SqlRecords) -> None:
    turkish = subscriber(first_name="Çağrı Işık", last_name="Öztürk Şen Ğ ü İ", email="çağrı@örnek.com.tr")
    records.add_subscriber(turkish)
    assert records.get_subscriber(MSISDN) == turkish
    assert records.list_subscribers() == [turkish]


def test_empty_strings_read_back_as_empty(records: SqlRecords) -> None:
    blank = subscriber(first_name="", last_name="", email="", package="")
    records.add_subscriber(blank)
    assert records.get_subscriber(MSISDN) == blank


# -- ledger and buckets -----------------------------------------------------------------------


def test_apply_ledger_is_idempotent_and_writes_buckets(records: SqlRecords) -> None:
    grant = (
        (f"pkg-1:{Service.VOICE.value}", "voice", 60_000, T0, T0 + 30 * 86_400),
        (f"pkg-1:{Service.DATA.value}", "data", 10 * 1024**3, T0, T0 + 30 * 86_400),
    )
    events = [
        ledger("e1", 10_000, kind="provisioned"),
        ledger("e2", 5_000),
        ledger("e3", -3_000, kind="package", buckets=grant, package="GENC10"),
    ]
    assert records.apply_ledger(events) == 3
    assert records.apply_ledger(events) == 0
    assert records.apply_ledger([*events, ledger("e4", 1)]) == 1
    assert records.apply_ledger([ledger("e5", 2), ledger("e5", 2)]) == 1  # repeat inside a batch
    assert records.wallet_balance(MSISDN) == 10_000 + 5_000 - 3_000 + 1 + 2
    assert records.buckets_for(MSISDN) == [
        BucketRecord(b[0], MSISDN, "GENC10", b[1], b[2], b[3], b[4]) for b in sorted(grant)
    ]  # soonest expiry first, then by id
    assert records.buckets_for(OTHER) == []
    assert records.apply_ledger([]) == 0


def test_buckets_are_idempotent_by_bucket_id(records: SqlRecords) -> None:
    bucket = ("b-1", "sms", 100, T0, T0 + 86_400)
    assert records.apply_ledger([ledger("e1", 0, buckets=(bucket,))]) == 1
    assert records.apply_ledger([ledger("e2", 0, buckets=(bucket,))]) == 1
    assert len(records.buckets_for(MSISDN)) == 1


# -- usage ------------------------------------------------------------------------------------


def test_record_usage_is_idempotent_with_overlapping_batches(records: SqlRecords) -> None:
    first = [usage(n) for n in range(0, 60)]
    second = [usage(n) for n in range(40, 100)]  # 20 already recorded
    assert records.record_usage(first) == 60
    assert records.record_usage(first) == 0
    assert records.record_usage(second) == 40
    assert records.record_usage(second + first) == 0
    assert records.record_usage([]) == 0
    stored = records.usage_for(MSISDN, limit=1000)
    assert len(stored) == 100
    assert sorted(stored, key=lambda e: e.occurred_at) == [usage(n) for n in range(100)]


@pytest.mark.timeout(180)
def test_record_usage_in_a_batch_of_5000(records: SqlRecords) -> None:
    batch = [usage(n, buckets=[(f"b-{n % 7}", 600 + n)]) for n in range(5_000)]
    assert records.record_usage(batch) == 5_000
    assert records.record_usage(batch[2_500:] + [usage(5_000)]) == 1
    newest = records.usage_for(MSISDN, limit=5_001)
    assert len(newest) == 5_001
    assert newest[0] == usage(5_000)
    assert newest[1:] == batch[::-1]


def test_usage_for_is_newest_first_and_equal_to_what_was_stored(records: SqlRecords) -> None:
    events = [
        usage(3, buckets=[("pkg-1:data", 500), ("pkg-2:data", 103)]),
        usage(1),
        usage(7, buckets=[("pkg-1:voice", 60)]),
        usage(5, msisdn=OTHER),
        usage(2, at=T0 + 7),  # same second as usage(7): request number 2 < 7
    ]
    records.record_usage(events)
    assert records.usage_for(MSISDN) == [events[2], events[4], events[0], events[1]]
    assert records.usage_for(MSISDN, limit=2) == [events[2], events[4]]
    assert records.usage_for(OTHER) == [events[3]]
    assert records.usage_for("900000000000") == []
    assert all(isinstance(e.service, Service) for e in records.usage_for(MSISDN))


def test_wallet_balance_is_ledger_minus_usage(records: SqlRecords) -> None:
    assert records.wallet_balance(MSISDN) == 0
    records.apply_ledger([ledger("p", 20_000, kind="provisioned"), ledger("t", 5_000)])
    records.apply_ledger([ledger("o", 999, msisdn=OTHER)])
    events = [usage(n) for n in range(10)] + [usage(10, msisdn=OTHER)]
    records.record_usage(events)
    spent = sum(e.money for e in events if e.msisdn == MSISDN)
    assert spent > 0
    assert records.wallet_balance(MSISDN) == 25_000 - spent
    assert records.wallet_balance(OTHER) == 999 - usage(10).money
    big = 9_000_000_000_000_000  # BigInteger, beyond 2**53
    records.apply_ledger([ledger("big", big)])
    assert records.wallet_balance(MSISDN) == 25_000 - spent + big


# method="thread": a thread blocked inside the driver cannot be interrupted by a signal
@pytest.mark.timeout(120, method="thread")
def test_concurrent_writers_of_the_same_events(records: SqlRecords) -> None:
    batch = [usage(n) for n in range(300)]
    results: list[int] = []
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def write(offset: int) -> None:
        try:
            start.wait()
            # different orders so the writers meet on each other's rows
            results.append(records.record_usage(batch[offset:] + batch[:offset]))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(k * 75,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=100)
    assert not any(t.is_alive() for t in threads)
    assert not errors
    assert sum(results) == 300
    assert len(records.usage_for(MSISDN, limit=1000)) == 300


class _LiesOnce:
    """`_existing` that reports nothing present on its first call: a writer that lost a race."""

    def __init__(self, real: Callable[..., set[str]]) -> None:
        self.real = real
        self.calls = 0

    def __call__(self, *args: object) -> set[str]:
        self.calls += 1
        return set() if self.calls == 1 else self.real(*args)


def test_a_lost_race_is_replayed_row_by_row(records: SqlRecords, monkeypatch: pytest.MonkeyPatch) -> None:
    events = [usage(n, buckets=[("b", 1)]) for n in range(20)]
    records.record_usage(events[:10])
    records.apply_ledger([ledger("e1", 100, buckets=(("b-1", "sms", 5, T0, T0 + 1),))])

    liar = _LiesOnce(sql_records._existing)
    monkeypatch.setattr(sql_records, "_existing", liar)
    assert records.record_usage(events) == 10
    assert liar.calls > 20  # the batch failed and each row was tried on its own

    liar = _LiesOnce(sql_records._existing)
    monkeypatch.setattr(sql_records, "_existing", liar)
    assert records.apply_ledger([ledger("e1", 100), ledger("e2", 50)]) == 1
    assert liar.calls > 2

    assert sorted(records.usage_for(MSISDN, limit=100), key=lambda e: e.occurred_at) == events
    assert records.wallet_balance(MSISDN) == 150 - sum(e.money for e in events)


def test_a_fresh_batch_is_written_without_asking_which_ids_exist(
    records: SqlRecords, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SF's hot path: a new batch is one bulk write (PostgreSQL's COPY, SQLite's executemany of
    tuples) with no existence query; a batch with ids on record already fails it and is written the
    careful way, doubling nothing."""
    asked: list[int] = []
    real = sql_records._existing

    def existing(conn: object, column: object, keys: Sequence[str]) -> set[str]:
        if column is usage_records.c.event_id:
            asked.append(len(keys))
        return real(conn, column, keys)  # type: ignore[arg-type]

    monkeypatch.setattr(sql_records, "_existing", existing)
    events = [usage(n, buckets=[("b", 1)]) for n in range(30)]
    assert records.record_usage(events[:20]) == 20
    assert asked == []
    assert records.record_usage(events[10:]) == 10  # 10 on record already: the careful way
    assert asked == [20]
    assert sorted(records.usage_for(MSISDN, limit=100), key=lambda e: e.occurred_at) == events
    assert records.bucket_consumption(MSISDN) == {"b": 30}


def test_sqlites_bulk_rows_are_the_ones_sqlalchemy_writes(tmp_path: Path) -> None:
    """What SQLite's bulk path stores (the raw values and their SQLite types) is what SQLAlchemy's
    executemany stores for the same events: the timestamps through the column's own processor."""
    odd = [
        usage(1, buckets=[("b-1", 5), ("b-2", 7)]),
        usage(2, at=0),
        usage(3, at=4_102_444_800),  # 2100-01-01
        replace(usage(4), session_id="", rule_id="", destination="905551112233", location="28601-1"),
        replace(usage(5), destination="ş" * 1000, catalogue_version="v" * 300),  # cut to the column
    ]
    stored = []
    for bulk in (True, False):
        path = tmp_path / f"bulk-{bulk}.db"
        records = SqlRecords(f"sqlite:///{path}")
        records.migrate()
        if not bulk:
            records._bulk_usage = None  # SQLAlchemy's executemany of dicts
            records._upsert_balances = None  # and its select, insert and update of the snapshots
        assert records.record_usage(odd) == len(odd)
        # a snapshot replaced by a newer event, kept against an older one, and a new subscriber's
        assert records.record_usage([usage(6, at=T0 + 100), usage(7, at=5), usage(8, msisdn=OTHER)]) == 3
        records.close()
        with sqlite3.connect(path) as db:
            stored.append(
                [
                    db.execute(f"SELECT *, {types} FROM {table} ORDER BY 1, 2").fetchall()
                    for table, types in (
                        ("usage_records", "typeof(occurred_at), typeof(units)"),
                        ("usage_buckets", "typeof(ordinal), typeof(units)"),
                        ("balance_snapshots", "typeof(as_of)"),
                    )
                ]
            )
    assert stored[0] == stored[1]
    assert len(stored[0][0]) == 8 and len(stored[0][1]) == 2 and len(stored[0][2]) == 2


# -- catalogue --------------------------------------------------------------------------------


def test_catalogue_versions(records: SqlRecords) -> None:
    assert records.latest_catalogue() is None
    source = "packages:\n  GENC10: {price: 'TL 199,90', data: 10 GB}  # çğıöşü\n" * 500  # > 4000 bytes
    records.save_catalogue("2025.01", source, T0)
    records.save_catalogue("2025.02", "v2", T0 + 100)
    records.save_catalogue("2025.01", "ignored repeat", T0 + 200)
    assert records.latest_catalogue() == CatalogueRecord("2025.02", "v2", T0 + 100)
    records.save_catalogue("2025.03", "v3", T0 + 300)
    assert records.latest_catalogue() == CatalogueRecord("2025.03", "v3", T0 + 300)
    with records.engine.connect() as conn:
        rows = conn.execute(catalogue_versions.select().order_by(catalogue_versions.c.version)).all()
    assert [(r.version, r.source, r.activated_at) for r in rows][0] == ("2025.01", source, T0)
    assert len(rows) == 3


# -- migrations -------------------------------------------------------------------------------

TABLES = {
    "subscribers",
    "buckets",
    "wallet_ledger",
    "usage_records",
    "usage_buckets",
    "balance_snapshots",
    "catalogue_versions",
    "catalogue_in_force",
    "credentials",
    "refresh_tokens",
    "reset_codes",
    "vouchers",
    "notices",
    "package_renewals",
}


def _tables(url: str) -> set[str]:
    engine = create_engine(url, poolclass=NullPool)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_migrations_upgrade_downgrade_upgrade(db_url: str) -> None:
    assert current_revision(db_url) is None
    migrate(db_url)
    assert _tables(db_url) == TABLES | {"alembic_version"}
    assert current_revision(db_url) == head_revision()
    migrate(db_url)  # already at head: nothing to do
    downgrade(db_url)
    assert _tables(db_url) == {"alembic_version"}
    assert current_revision(db_url) is None
    migrate(db_url)
    assert _tables(db_url) >= TABLES
    store = SqlRecords(db_url)
    try:
        store.migrate()
        store.add_subscriber(subscriber())
        assert store.get_subscriber(MSISDN) == subscriber()
    finally:
        store.close()


# Imports first, then all processes start migrating at the same moment (argv[2], epoch seconds).
_MIGRATE = (
    "import sys, time; from cellcelly.adapters.sql import migrate;"
    " time.sleep(max(0.0, float(sys.argv[2]) - time.time())); migrate(sys.argv[1])"
)


@pytest.mark.timeout(150)
def test_services_starting_together_migrate_once(db_url: str) -> None:
    """Several processes migrating one fresh database at once (services booting together)."""
    at = str(time.time() + 3)
    procs = [
        subprocess.Popen([sys.executable, "-c", _MIGRATE, db_url, at], stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    failures = []
    for proc in procs:
        try:
            _, stderr = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, stderr = proc.communicate()
        if proc.returncode != 0:
            failures.append(stderr[-2000:])
    assert not failures, failures[0]
    assert current_revision(db_url) == head_revision()
    assert _tables(db_url) == TABLES | {"alembic_version"}


@pytest.mark.timeout(120, method="thread")
def test_a_migration_waits_for_another_one(db_url: str) -> None:
    """While one migrator holds the migration lock, another waits instead of colliding."""
    engine = create_engine(db_url, poolclass=NullPool)
    done = threading.Event()
    errors: list[BaseException] = []

    def second() -> None:
        try:
            migrate(db_url)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            done.set()

    try:
        with engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": PG_MIGRATION_LOCK})
            else:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            worker = threading.Thread(target=second)
            worker.start()
            assert not done.wait(1.5), "the second migration did not wait for the lock"
            conn.rollback()
        worker.join(timeout=60)
        assert done.is_set() and not errors
        assert current_revision(db_url) == head_revision()
    finally:
        engine.dispose()


def test_migrated_schema_matches_the_metadata(records: SqlRecords) -> None:
    with records.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, metadata)
    assert diff == []


def test_in_memory_sqlite_is_shared_across_threads() -> None:
    store = SqlRecords("sqlite://")
    try:
        store.migrate()
        worker = threading.Thread(target=store.add_subscriber, args=(subscriber(),))
        worker.start()
        worker.join(timeout=30)
        assert store.get_subscriber(MSISDN) == subscriber()
    finally:
        store.close()


def test_an_sqlite_record_gets_the_page_cache_it_is_given(tmp_path: Path) -> None:
    """`sqlite_cache_mib` (the SF child's CELLCELLY_SQLITE_CACHE_MIB) on every pooled connection;
    without it, SQLite's own (-2000: ~2 MiB)."""

    def cache_sizes(records: SqlRecords) -> set[int]:
        with records.engine.connect() as one, records.engine.connect() as another:
            return {c.exec_driver_sql("PRAGMA cache_size").scalar_one() for c in (one, another)}

    for mib, expected in ((64, -64 * 1024), (0, -2000)):
        records = SqlRecords(f"sqlite:///{tmp_path / f'cache-{mib}.db'}", sqlite_cache_mib=mib)
        try:
            assert cache_sizes(records) == {expected}
        finally:
            records.close()


def test_balance_snapshots_keep_the_newest_and_never_go_back(records: SqlRecords) -> None:
    def snap(wallet: int, revision: int, as_of: int, event: str) -> BalanceSnapshot:
        return BalanceSnapshot(MSISDN, wallet, revision, as_of, event)

    assert records.balance_snapshot(MSISDN) is None
    # one batch: the newest of them (same commit: the lower wallet, its later debit)
    records.save_balances([snap(900, 3, T0, "a"), snap(800, 3, T0, "b"), snap(950, 2, T0, "c")])
    assert records.balance_snapshot(MSISDN) == snap(800, 3, T0, "b")
    records.save_balances([snap(990, 1, T0, "old")])  # a replayed older batch
    records.save_balances([snap(850, 3, T0, "a")])  # the same commit, an earlier debit
    assert records.balance_snapshot(MSISDN) == snap(800, 3, T0, "b")
    records.save_balances([snap(5000, 4, T0, "topup")])  # a later commit, in the same second
    assert records.balance_snapshot(MSISDN) == snap(5000, 4, T0, "topup")
    records.save_balances([snap(4000, 0, T0 + 60, "after-reconcile")])  # revisions restart; time goes on
    assert records.balance_snapshot(MSISDN) == snap(4000, 0, T0 + 60, "after-reconcile")
    records.save_balances([])
    assert records.balance_snapshot(MSISDN) == snap(4000, 0, T0 + 60, "after-reconcile")
