"""Fixtures of the integration tests: real databases on this machine.

`postgres_url` starts one throwaway PostgreSQL server per session (see `postgres.py`).
`db_url` gives an empty database per test, on SQLite (a file in tmp_path) and on PostgreSQL
(a fresh schema, selected through the connection's search_path, dropped afterwards);
`records` is a migrated `SqlRecords` on it. `kafka` is one real Kafka broker per session
(`kafka_server.py`), shared by every test that asks for it: tests use topics or groups of their own.
`voltdb_servers` is one real VoltDB per session (a start costs 10 s or more), with the
CellCelly schema and procedures; `voltdb` is that server emptied for the test that asks for it.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from gy_client import CLIENT
from kafka_server import KafkaServer, KafkaUnavailable, kafka_server
from postgres import PostgresUnavailable, postgres_server
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.pool import NullPool

from cellcelly.adapters.sql import SqlRecords
from cellcelly.deploy.embedded import EmbeddedStack
from cellcelly.diameter.peer import PeerConnection, connect
from cellcelly_dev.devservers import voltdb_truncate
from cellcelly_testing import require, running_voltdb

log = logging.getLogger(__name__)

_schemas = itertools.count(1)

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    began = time.monotonic()
    with ExitStack() as stack:
        try:
            url = stack.enter_context(postgres_server())
        except PostgresUnavailable as exc:
            if os.environ.get("CI") == "true":
                pytest.fail(f"PostgreSQL is required in CI: {exc}")
            pytest.skip("PostgreSQL not installed: apt-get install postgresql")
        log.info("postgres fixture ready in %.2fs", time.monotonic() - began)
        yield url


@pytest.fixture(scope="session")
def kafka() -> Iterator[KafkaServer]:
    with ExitStack() as stack:
        try:
            server = stack.enter_context(kafka_server())
        except KafkaUnavailable as exc:
            require(False, f"Kafka cannot run here: {exc}")
            raise  # unreachable: require() skips or fails
        yield server


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka: KafkaServer) -> str:
    return kafka.bootstrap


@pytest.fixture(scope="session")
def voltdb_servers() -> Iterator[str]:
    """The session's VoltDB ("127.0.0.1:PORT") as earlier tests left it, rows included; a skip where
    VoltDB cannot run, a failure under CI=true. For tests that leave its schema and procedures as
    they are: one that changes them, or needs security on, starts a server of its own."""
    with running_voltdb() as servers:
        yield servers


@pytest.fixture
def voltdb(voltdb_servers: str) -> str:
    """The session's VoltDB with every CellCelly table empty (much cheaper than a new server)."""
    voltdb_truncate(voltdb_servers)
    return voltdb_servers


def _admin(url: str, statement: str) -> None:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            # a test that leaked a transaction makes this fail instead of hanging the run
            conn.execute(text("SET LOCAL lock_timeout = '20s'"))
            conn.execute(text(statement))
    finally:
        engine.dispose()


@pytest.fixture
def postgres_schema_url(postgres_url: str) -> Iterator[str]:
    """The server's database, with search_path on a schema of this test's own."""
    schema = f"t{os.getpid()}_{next(_schemas)}"
    _admin(postgres_url, f"CREATE SCHEMA {schema}")
    url = make_url(postgres_url).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        _admin(postgres_url, f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'records.db'}"
    return str(request.getfixturevalue("postgres_schema_url"))


@pytest.fixture
def records(db_url: str) -> Iterator[SqlRecords]:
    store = SqlRecords(db_url)
    try:
        store.migrate()
        yield store
    finally:
        store.close()


@pytest.fixture
async def peer(stack: EmbeddedStack) -> AsyncIterator[PeerConnection]:
    """A Gy client connected (CER/CEA done) to the DGW of the test module's own `stack` fixture."""
    conn = await connect("127.0.0.1", stack.dgw_port, CLIENT)
    yield conn
    await conn.disconnect()
