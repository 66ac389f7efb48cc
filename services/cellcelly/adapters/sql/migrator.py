"""Run the Alembic migrations shipped inside the package, without an alembic.ini.

    migrate("sqlite:///records.db")           # or an Engine
    downgrade(engine, "base")
    print(offline_sql("oracle"))              # the DDL a DBA can review and run by hand

The `Config` is built in code with `script_location` pointing at the `migrations` directory
next to this module (shipped as package data), so users need no Alembic files of their own.
"""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import URL, Engine, text
from sqlalchemy.pool import NullPool

from cellcelly.adapters.sql.engine import SQLITE_WRITE_OPTION, make_engine

__all__ = [
    "MIGRATIONS_DIR",
    "alembic_config",
    "current_revision",
    "downgrade",
    "head_revision",
    "migrate",
    "offline_sql",
]

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().with_name("migrations")

# Two services starting at once on a fresh PostgreSQL must not both create the tables: the
# migration holds this transaction-scoped advisory lock (SQLite: BEGIN IMMEDIATE does the same).
PG_MIGRATION_LOCK = 0x63656C6C79  # "celly"

# Alembic's `context` and `op` are module-level proxies: one migration at a time per process.
_ALEMBIC_LOCK = threading.RLock()


def alembic_config(
    url: str | None = None, output_buffer: io.StringIO | None = None, **attributes: object
) -> Config:
    """An Alembic Config for the packaged migrations; `attributes` reach env.py."""
    config = Config(output_buffer=output_buffer)
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes.update(attributes)
    return config


@contextmanager
def _engine(engine_or_url: Engine | str | URL) -> Iterator[Engine]:
    if isinstance(engine_or_url, Engine):
        yield engine_or_url
        return
    engine = make_engine(engine_or_url, poolclass=NullPool)
    try:
        yield engine
    finally:
        engine.dispose()


def _run(engine_or_url: Engine | str | URL, upgrade: bool, revision: str) -> None:
    with _ALEMBIC_LOCK, _engine(engine_or_url) as engine:
        with engine.connect() as connection:
            connection.execution_options(**{SQLITE_WRITE_OPTION: True})
            with connection.begin():
                if connection.dialect.name == "postgresql":
                    connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_MIGRATION_LOCK})
                config = alembic_config(connection=connection)
                if upgrade:
                    command.upgrade(config, revision)
                else:
                    command.downgrade(config, revision)
        log.info(
            "schema %s to %s on %s",
            "upgraded" if upgrade else "downgraded",
            revision,
            engine.url.render_as_string(hide_password=True),
        )


def migrate(engine_or_url: Engine | str | URL, revision: str = "head") -> None:
    """Bring the schema up to `revision` (the newest by default).

    One transaction on SQLite and PostgreSQL (Oracle commits each DDL statement by itself), with
    concurrent migrators of the same database serialised: BEGIN IMMEDIATE on SQLite, an
    advisory lock on PostgreSQL, a lock within this process. Nothing happens when at `revision`.
    """
    _run(engine_or_url, upgrade=True, revision=revision)


def downgrade(engine_or_url: Engine | str | URL, revision: str = "base") -> None:
    """Take the schema down to `revision` (`base`: drop every table)."""
    _run(engine_or_url, upgrade=False, revision=revision)


def current_revision(engine_or_url: Engine | str | URL) -> str | None:
    """The revision the database is at, None when unmigrated."""
    with _engine(engine_or_url) as engine, engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def offline_sql(dialect_name: str, upgrade: bool = True) -> str:
    """The migration as SQL text for `dialect_name` (Alembic offline mode), nothing executed."""
    buffer = io.StringIO()
    config = alembic_config(output_buffer=buffer, dialect_name=dialect_name)
    with _ALEMBIC_LOCK:
        if upgrade:
            command.upgrade(config, "head", sql=True)
        else:
            command.downgrade(config, "head:base", sql=True)
    return buffer.getvalue()
