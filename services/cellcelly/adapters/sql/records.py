"""`SqlRecords`: the system of record on SQLAlchemy Core, for SQLite, PostgreSQL and Oracle.

    records = SqlRecords("sqlite:///cellcelly.db")            # embedded default
    records = SqlRecords("postgresql+psycopg://user@host/db")
    records = SqlRecords("oracle+oracledb://user:pw@host/?service_name=FREEPDB1")
    records.migrate()

Idempotent writes are portable: in one transaction, select which ids are already present and
insert only the missing ones with executemany. Should a concurrent writer insert the same id
between the two (IntegrityError), the batch is rolled back and replayed row by row, each row in
its own transaction, where a duplicate is skipped. Rows are inserted in primary-key order (ledger
rows before bucket rows), so two writers of overlapping batches wait for each other instead of
deadlocking on PostgreSQL and Oracle.

SQLite: WAL journal, a busy timeout, connections usable from any thread, and write transactions
opened with BEGIN IMMEDIATE so concurrent writers wait for each other (see `engine.py`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any, TypeVar

from sqlalchemy import URL, Column, Connection, Engine, Row
from sqlalchemy.exc import IntegrityError

from cellcelly.adapters.sql import queries as q
from cellcelly.adapters.sql.engine import make_engine, reading, writing
from cellcelly.adapters.sql.migrator import migrate as run_migrations
from cellcelly.adapters.sql.schema import (
    balance_snapshots,
    buckets,
    catalogue_in_force,
    catalogue_versions,
    package_renewals,
    subscribers,
    usage_buckets,
    usage_records,
    wallet_ledger,
)
from cellcelly.adapters.sql.usage_rows import newest_snapshots, usage_bucket_values, usage_values
from cellcelly.domain.charging import UsageEvent
from cellcelly.domain.provisioning import LedgerEvent
from cellcelly.domain.units import Service
from cellcelly.ports.records import (
    BalanceSnapshot,
    BucketRecord,
    CatalogueConflict,
    CatalogueInForce,
    CatalogueRecord,
    ExpiringPackage,
    SubscriberExists,
    SubscriberRecord,
)

__all__ = ["SqlRecords"]

log = logging.getLogger(__name__)

T = TypeVar("T")
E = TypeVar("E", UsageEvent, LedgerEvent)


def _chunks(items: Sequence[T], size: int = q.IN_CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _text(value: Any) -> str:
    """Oracle hands "" back as NULL; every back end reads it as ""."""
    return "" if value is None else str(value)


def _unique(items: Iterable[T], key: Callable[[T], str]) -> list[T]:
    """First occurrence of each key, in input order."""
    seen: set[str] = set()
    out: list[T] = []
    for item in items:
        k = key(item)
        if k not in seen:
            seen.add(k)
            out.append(item)
    return out


def _existing(conn: Connection, column: Column[str], keys: Sequence[str]) -> set[str]:
    if conn.dialect.name == "postgresql":  # one round trip, whatever the number of keys
        return set(conn.execute(q.existing_keys_any(column, keys)).scalars())
    found: set[str] = set()
    for chunk in _chunks(keys):
        found.update(conn.execute(q.existing_keys(column, chunk)).scalars())
    return found


def _ledger_row(e: LedgerEvent) -> dict[str, Any]:
    return {
        "event_id": e.event_id,
        "msisdn": e.msisdn,
        "kind": e.kind,
        "amount": e.amount,
        "wallet_after": e.wallet_after,
        "reference": e.reference,
        "package": e.package,
        "status": e.status,
        "occurred_at": e.occurred_at,
    }


def _bucket_rows(e: LedgerEvent) -> list[dict[str, Any]]:
    return [
        {
            "id": bucket_id,
            "msisdn": e.msisdn,
            "package": e.package,
            "service": str(service),
            "units": units,
            "valid_from": valid_from,
            "valid_until": valid_until,
        }
        for bucket_id, service, units, valid_from, valid_until in e.buckets
    ]


USAGE_COLUMNS = tuple(c.name for c in usage_records.columns)


def _usage_row(e: UsageEvent) -> dict[str, Any]:
    return dict(zip(USAGE_COLUMNS, usage_values(e), strict=True))


def _snapshot_row(s: BalanceSnapshot) -> dict[str, Any]:
    return {
        "msisdn": s.msisdn,
        "wallet": s.wallet,
        "revision": s.revision,
        "as_of": s.as_of,
        "event_id": s.event_id,
    }


def _usage_bucket_rows(e: UsageEvent) -> list[dict[str, Any]]:
    return [
        {"event_id": event_id, "ordinal": i, "bucket_id": bucket_id, "units": units}
        for event_id, i, bucket_id, units in usage_bucket_values(e)
    ]


def subscriber_row(subscriber: SubscriberRecord) -> dict[str, Any]:
    return {
        "msisdn": subscriber.msisdn,
        "first_name": subscriber.first_name,
        "last_name": subscriber.last_name,
        "email": subscriber.email,
        "status": subscriber.status,
        "package": subscriber.package,
        "created_at": subscriber.created_at,
    }


def _subscriber(row: Row[Any]) -> SubscriberRecord:
    return SubscriberRecord(
        msisdn=row.msisdn,
        first_name=_text(row.first_name),
        last_name=_text(row.last_name),
        email=_text(row.email),
        status=_text(row.status),
        package=_text(row.package),
        created_at=row.created_at,
    )


class SqlRecords:
    """The `SystemOfRecord` port on one SQLAlchemy engine; thread-safe (one pool, short transactions)."""

    def __init__(self, url: str | URL, *, sqlite_cache_mib: int = 0, **engine_kwargs: Any) -> None:
        self._engine: Engine = make_engine(url, sqlite_cache_mib=sqlite_cache_mib, **engine_kwargs)
        dialect = self._engine.dialect
        self._bulk_usage: Callable[[Connection, Sequence[UsageEvent]], None] | None
        self._bulk_usage = None
        self._upsert_balances: Callable[[Connection, list[dict[str, Any]]], None] | None = None
        if dialect.name == "postgresql" and dialect.driver == "psycopg":
            from cellcelly.adapters.sql.pg_copy import copy_usage, upsert_balances  # psycopg: only in use

            self._bulk_usage = copy_usage
            self._upsert_balances = upsert_balances
        elif dialect.name == "sqlite":
            from cellcelly.adapters.sql import sqlite_bulk

            self._bulk_usage = sqlite_bulk.insert_usage
            self._upsert_balances = sqlite_bulk.upsert_balances

    @property
    def engine(self) -> Engine:
        return self._engine

    def _write(self) -> AbstractContextManager[Connection]:
        return writing(self._engine)

    def _read(self) -> AbstractContextManager[Connection]:
        return reading(self._engine)

    # -- schema -------------------------------------------------------------------------------

    def migrate(self) -> None:
        run_migrations(self._engine)

    def close(self) -> None:
        self._engine.dispose()

    # -- subscribers --------------------------------------------------------------------------

    def add_subscriber(self, subscriber: SubscriberRecord) -> None:
        row = subscriber_row(subscriber)
        try:
            with self._write() as conn:
                if _existing(conn, subscribers.c.msisdn, [subscriber.msisdn]):
                    raise SubscriberExists(subscriber.msisdn)
                conn.execute(q.insert_rows(subscribers), row)
        except IntegrityError as exc:
            if self.get_subscriber(subscriber.msisdn) is not None:
                raise SubscriberExists(subscriber.msisdn) from exc
            raise

    def get_subscriber(self, msisdn: str) -> SubscriberRecord | None:
        with self._read() as conn:
            row = conn.execute(q.select_subscriber(msisdn)).first()
        return None if row is None else _subscriber(row)

    def list_subscribers(self, limit: int = 100, offset: int = 0) -> list[SubscriberRecord]:
        with self._read() as conn:
            rows = conn.execute(q.select_subscribers(limit, offset)).all()
        return [_subscriber(row) for row in rows]

    def set_status(self, msisdn: str, status: str) -> None:
        with self._write() as conn:
            changed = conn.execute(q.update_status(msisdn, status)).rowcount
        if not changed:
            log.warning("set_status(%s, %s): no such subscriber on record", msisdn, status)

    # -- ledger and buckets -------------------------------------------------------------------

    def apply_ledger(self, events: Sequence[LedgerEvent]) -> int:
        return self._idempotently(events, self._insert_ledger, wallet_ledger.c.event_id)

    def _idempotently(
        self,
        events: Sequence[E],
        insert: Callable[[Connection, Sequence[E]], int],
        id_column: Column[str],
    ) -> int:
        """Insert the events not yet on record, in one transaction; how many were new. A concurrent
        writer that wins a race on a key (IntegrityError) makes the batch replay row by row, each
        row in its own transaction, tried twice: a row whose event is then present was theirs."""
        unique = _unique(events, lambda e: e.event_id)
        if not unique:
            return 0
        try:
            with self._write() as conn:
                return insert(conn, unique)
        except IntegrityError:
            log.info("%s: concurrent writer, replaying %d events one by one", id_column.table, len(unique))
        new = 0
        for e in unique:
            for attempt in (1, 2):
                try:
                    with self._write() as conn:
                        new += insert(conn, [e])
                    break
                except IntegrityError:
                    with self._read() as conn:
                        if e.event_id in _existing(conn, id_column, [e.event_id]):
                            break
                    if attempt == 2:
                        raise
        return new

    def _insert_ledger(self, conn: Connection, events: Sequence[LedgerEvent]) -> int:
        present = _existing(conn, wallet_ledger.c.event_id, [e.event_id for e in events])
        fresh = sorted((e for e in events if e.event_id not in present), key=lambda e: e.event_id)
        if fresh:
            conn.execute(q.insert_rows(wallet_ledger), [_ledger_row(e) for e in fresh])
        bucket_rows = _unique((row for e in events for row in _bucket_rows(e)), lambda r: r["id"])
        if bucket_rows:
            have = _existing(conn, buckets.c.id, [r["id"] for r in bucket_rows])
            missing = sorted((r for r in bucket_rows if r["id"] not in have), key=lambda r: str(r["id"]))
            if missing:
                conn.execute(q.insert_rows(buckets), missing)
        self._save_balances(conn, fresh)
        return len(fresh)

    def buckets_for(self, msisdn: str) -> list[BucketRecord]:
        with self._read() as conn:
            rows = conn.execute(q.select_buckets(msisdn)).all()
        return [
            BucketRecord(
                id=row.id,
                msisdn=row.msisdn,
                package=_text(row.package),
                service=row.service,
                units=int(row.units),
                valid_from=row.valid_from,
                valid_until=row.valid_until,
            )
            for row in rows
        ]

    def wallet_balance(self, msisdn: str) -> int:
        with self._read() as conn:
            value = conn.execute(q.select_wallet_balance(msisdn)).scalar_one()
        return int(value or 0)

    # -- usage --------------------------------------------------------------------------------

    def bucket_consumption(self, msisdn: str) -> dict[str, int]:
        with self._read() as conn:
            return {
                row.bucket_id: int(row.units) for row in conn.execute(q.select_bucket_consumption(msisdn))
            }

    def record_usage(self, events: Sequence[UsageEvent]) -> int:
        if self._bulk_usage is not None:
            # Optimistic bulk path (PostgreSQL's COPY, SQLite's executemany of tuples): a batch is
            # almost always new, so write it without asking which ids exist; one already on record
            # (a redelivery) fails the write with a unique violation, and the batch is then written
            # the careful way, which leaves those out.
            # In key order like the careful way: writers of overlapping batches then wait for each
            # other instead of deadlocking (seen with four writers of one batch in other orders).
            unique = sorted(_unique(events, lambda e: e.event_id), key=lambda e: e.event_id)
            try:
                with self._write() as conn:
                    self._bulk_usage(conn, unique)
                    self._save_balances(conn, unique)
                return len(unique)
            except IntegrityError:
                log.debug("usage batch partly on record already: checking each id")
        return self._idempotently(events, self._insert_usage, usage_records.c.event_id)

    def _insert_usage(self, conn: Connection, events: Sequence[UsageEvent]) -> int:
        present = _existing(conn, usage_records.c.event_id, [e.event_id for e in events])
        fresh = sorted((e for e in events if e.event_id not in present), key=lambda e: e.event_id)
        if self._bulk_usage is not None:
            self._bulk_usage(conn, fresh)
        elif fresh:
            conn.execute(q.insert_rows(usage_records), [_usage_row(e) for e in fresh])
            consumed = [row for e in fresh for row in _usage_bucket_rows(e)]
            if consumed:
                conn.execute(q.insert_rows(usage_buckets), consumed)
        self._save_balances(conn, fresh)
        return len(fresh)

    def usage_for(
        self, msisdn: str, limit: int = 100, before: tuple[int, int, str] | None = None
    ) -> list[UsageEvent]:
        with self._read() as conn:
            rows = conn.execute(q.select_usage(msisdn, limit, before)).all()
            return _usage_events(conn, rows)

    def usage_between(self, start: int, end: int, batch: int = 2_000) -> Iterator[UsageEvent]:
        """Every usage record of [start, end), oldest first, read as one streamed query (a server-side
        cursor where the driver has one): one scan whatever the size, `batch` rows in memory."""
        with self._read() as conn:
            result = conn.execution_options(stream_results=True, yield_per=batch).execute(
                q.select_usage_between(start, end)
            )
            for rows in result.partitions(batch):
                yield from _usage_events(conn, rows)

    # -- balance snapshots --------------------------------------------------------------------

    def save_balances(self, snapshots: Sequence[BalanceSnapshot]) -> None:
        """Keep, per subscriber, the newest of the stored snapshot and these. `record_usage` and
        `apply_ledger` do this themselves for the events they write, in their transaction."""
        with self._write() as conn:
            self._save_balances(conn, snapshots)

    def _save_balances(
        self, conn: Connection, items: Iterable[BalanceSnapshot | UsageEvent | LedgerEvent]
    ) -> None:
        rows = [_snapshot_row(s) for s in newest_snapshots(items)]  # in MSISDN order: the lock order
        if not rows:
            return
        if self._upsert_balances is not None:
            self._upsert_balances(conn, rows)
            return
        # a concurrent first insert fails the transaction; its caller replays (see `_idempotently`)
        present = _existing(conn, balance_snapshots.c.msisdn, [r["msisdn"] for r in rows])
        fresh = [r for r in rows if r["msisdn"] not in present]
        if fresh:
            conn.execute(q.insert_rows(balance_snapshots), fresh)
        known = [{f"b_{k}": v for k, v in r.items()} for r in rows if r["msisdn"] in present]
        if known:
            conn.execute(q.update_older_snapshot(), known)

    def balance_snapshot(self, msisdn: str) -> BalanceSnapshot | None:
        with self._read() as conn:
            row = conn.execute(q.select_balance_snapshot(msisdn)).first()
        if row is None:
            return None
        return BalanceSnapshot(row.msisdn, int(row.wallet), int(row.revision), int(row.as_of), row.event_id)

    def set_renewal(self, msisdn: str, package: str, renew: bool, now: int) -> None:
        if not renew:
            with self._write() as conn:
                conn.execute(q.delete_renewal(msisdn, package))
            return
        row = {"msisdn": msisdn, "package": package, "chosen_at": now, "tried_until": None}
        try:
            with self._write() as conn:
                if package not in self._renewals(conn, msisdn):
                    conn.execute(q.insert_rows(package_renewals), row)
        except IntegrityError:  # chosen at the same time elsewhere: chosen
            if package not in self.renewals_of(msisdn):
                raise

    def renewals_of(self, msisdn: str) -> list[str]:
        with self._read() as conn:
            return self._renewals(conn, msisdn)

    @staticmethod
    def _renewals(conn: Connection, msisdn: str) -> list[str]:
        return [row.package for row in conn.execute(q.select_renewals_of(msisdn))]

    def renewals_due(self, start: int, end: int) -> list[ExpiringPackage]:
        with self._read() as conn:
            rows = conn.execute(q.select_renewals_due(start, end)).all()
        # MAX() keeps the column's type: valid_until comes back as epoch seconds
        return [ExpiringPackage(row.msisdn, row.package, int(row.valid_until)) for row in rows]

    def renewal_tried(self, msisdn: str, package: str, valid_until: int) -> None:
        with self._write() as conn:
            conn.execute(q.update_renewal_tried(msisdn, package, valid_until))

    def expiring_packages(self, start: int, end: int) -> list[ExpiringPackage]:
        with self._read() as conn:
            rows = conn.execute(q.select_expiring_packages(start, end)).all()
        return [
            ExpiringPackage(row.msisdn, _text(row.package), int(row.valid_until), bool(row.renews))
            for row in rows
        ]

    # -- catalogue ----------------------------------------------------------------------------

    def save_catalogue(self, version: str, source: str, activated_at: int) -> None:
        row = {"version": version, "source": source, "activated_at": activated_at}
        try:
            with self._write() as conn:
                if not _existing(conn, catalogue_versions.c.version, [version]):
                    conn.execute(q.insert_rows(catalogue_versions), row)
        except IntegrityError:
            with self._read() as conn:
                if not _existing(conn, catalogue_versions.c.version, [version]):
                    raise

    def latest_catalogue(self) -> CatalogueRecord | None:
        in_force = self.catalogue_in_force()  # a return to an older version is not the latest row
        if in_force is not None:
            return self.catalogue_version(in_force.version)
        with self._read() as conn:
            row = conn.execute(q.select_latest_catalogue()).first()
        if row is None:
            return None
        return CatalogueRecord(version=row.version, source=_text(row.source), activated_at=row.activated_at)

    def put_catalogue_in_force(
        self, version: str, source: str, activated_at: int, *, only_if_none: bool = False
    ) -> CatalogueInForce:
        for attempt in (1, 2):  # a concurrent first insert (version or slot) wins: read it and go on
            try:
                with self._write() as conn:
                    self._activate(conn, version, source, activated_at, only_if_none)
                break
            except IntegrityError:
                if attempt == 2:
                    raise
        in_force = self.catalogue_in_force()
        assert in_force is not None  # just written in a committed transaction
        return in_force

    def _activate(self, conn: Connection, version: str, source: str, at: int, only_if_none: bool) -> None:
        known = conn.execute(q.select_catalogue_version(version)).first()
        if known is None:
            conn.execute(
                q.insert_rows(catalogue_versions), {"version": version, "source": source, "activated_at": at}
            )
        elif _text(known.source) != source:
            raise CatalogueConflict(version)
        if conn.execute(q.select_catalogue_in_force()).first() is None:
            row = {"slot": q.IN_FORCE_SLOT, "version": version, "generation": 1, "activated_at": at}
            conn.execute(q.insert_rows(catalogue_in_force), row)
        elif not only_if_none:
            conn.execute(q.update_catalogue_in_force(version, at))

    def catalogue_in_force(self) -> CatalogueInForce | None:
        with self._read() as conn:
            row = conn.execute(q.select_catalogue_in_force()).first()
        if row is None:
            return None
        return CatalogueInForce(row.version, int(row.generation), int(row.activated_at))

    def catalogue_version(self, version: str) -> CatalogueRecord | None:
        with self._read() as conn:
            row = conn.execute(q.select_catalogue_version(version)).first()
        if row is None:
            return None
        return CatalogueRecord(version=row.version, source=_text(row.source), activated_at=row.activated_at)


def _usage_events(conn: Connection, rows: Sequence[Any]) -> list[UsageEvent]:
    """Usage rows with the buckets each consumed, as events."""
    consumed: dict[str, list[tuple[str, int]]] = {}
    for chunk in _chunks([row.event_id for row in rows]):
        for b in conn.execute(q.select_usage_buckets(chunk)):
            consumed.setdefault(b.event_id, []).append((b.bucket_id, int(b.units)))
    return [
        UsageEvent(
            event_id=row.event_id,
            msisdn=row.msisdn,
            session_id=_text(row.session_id),
            request_number=int(row.request_number),
            rating_group=int(row.rating_group),
            service=Service(row.service),
            rule_id=_text(row.rule_id),
            units=int(row.units),
            bucket_units=int(row.bucket_units),
            wallet_units=int(row.wallet_units),
            uncharged_units=int(row.uncharged_units),
            money=int(row.money),
            wallet_after=int(row.wallet_after),
            occurred_at=row.occurred_at,
            buckets=tuple(consumed.get(row.event_id, ())),
            destination=_text(row.destination),
            location=_text(row.location),
            catalogue_version=_text(row.catalogue_version),
        )
        for row in rows
    ]
