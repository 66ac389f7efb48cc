"""Engines for the system of record, with the per-dialect settings in one place.

SQLite: WAL journal, a busy timeout, `check_same_thread=False` so pooled connections can be
used from any thread, a single shared connection for in-memory databases, and our own BEGIN
(pysqlite's implicit transaction handling is switched off): `BEGIN IMMEDIATE` for connections
carrying the `SQLITE_WRITE_OPTION` execution option, so concurrent writers (and migrators) queue
on the busy timeout instead of failing with "database is locked" when upgrading a read lock.

Other back ends: `pool_pre_ping` so a server restart costs one retry, not an error.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import URL, Connection, Engine, create_engine, event, make_url
from sqlalchemy.pool import StaticPool

__all__ = ["SQLITE_BUSY_TIMEOUT_MS", "SQLITE_WRITE_OPTION", "make_engine", "reading", "writing"]

SQLITE_WRITE_OPTION = "cellcelly_write"
SQLITE_BUSY_TIMEOUT_MS = 30_000


def _in_memory(url: URL) -> bool:
    return url.database in (None, "", ":memory:")


def _enable_wal(cursor: Any) -> None:
    """PRAGMA journal_mode=WAL, waiting like the busy timeout would.

    Switching a database that is not in WAL mode yet needs an exclusive lock, and SQLite fails
    that at once ("database is locked") rather than calling the busy handler. Once a database is
    in WAL mode (it stays so), this is a no-op that takes no lock.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def make_engine(url: str | URL, *, sqlite_cache_mib: int = 0, **engine_kwargs: Any) -> Engine:
    """`sqlite_cache_mib`: each SQLite connection's page cache (0: SQLite's own, ~2 MiB). The SF's
    writes land on random leaves of the usage history's index (one a subscriber); once that index
    outgrows the cache, every record reads its leaf back from the OS (docs/performance-log.md)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        engine_kwargs.setdefault("pool_pre_ping", True)
        engine = create_engine(parsed, **engine_kwargs)
        if parsed.get_backend_name() == "postgresql":

            @event.listens_for(engine, "connect")
            def _on_pg_connect(dbapi_connection: Any, _record: Any) -> None:
                # psycopg prepares a statement after 5 runs; PostgreSQL's generic plan for the
                # existing-ids IN list turns into a sequential scan once the table has grown
                # (seconds per SF batch at ~35k rows): always plan with the actual values
                with dbapi_connection.cursor() as cursor:
                    cursor.execute("SET plan_cache_mode = force_custom_plan")
                dbapi_connection.commit()

        return engine

    connect_args = dict(engine_kwargs.pop("connect_args", {}))
    connect_args.setdefault("check_same_thread", False)
    engine_kwargs["connect_args"] = connect_args
    memory = _in_memory(parsed)
    if memory:
        # One shared connection, else every pooled connection would be a new empty database.
        engine_kwargs.setdefault("poolclass", StaticPool)
    engine = create_engine(parsed, **engine_kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # no implicit BEGIN/COMMIT from pysqlite
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            if not memory:
                _enable_wal(cursor)
            cursor.execute("PRAGMA foreign_keys=ON")
            if sqlite_cache_mib > 0:
                cursor.execute(f"PRAGMA cache_size=-{sqlite_cache_mib * 1024}")  # negative: KiB
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        write = conn.get_execution_options().get(SQLITE_WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


@contextmanager
def writing(engine: Engine) -> Iterator[Connection]:
    """A connection inside a write transaction (BEGIN IMMEDIATE on SQLite), committed on success."""
    with engine.connect() as conn:
        conn.execution_options(**{SQLITE_WRITE_OPTION: True})
        with conn.begin():
            yield conn


@contextmanager
def reading(engine: Engine) -> Iterator[Connection]:
    with engine.connect() as conn:
        yield conn
