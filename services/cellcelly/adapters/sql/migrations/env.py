"""Alembic environment for the system of record; driven by `cellcelly.adapters.sql.migrator`.

Online: `config.attributes["connection"]` is an open Connection (inside a transaction) given by
`migrator.migrate`; failing that, `sqlalchemy.url` from the Config. Offline (`--sql`):
`config.attributes["dialect_name"]` or `sqlalchemy.url` picks the dialect and the SQL is written
to the Config's output buffer.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection
from sqlalchemy.pool import NullPool

from cellcelly.adapters.sql.engine import make_engine
from cellcelly.adapters.sql.schema import metadata

config = context.config


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_offline() -> None:
    dialect_name = config.attributes.get("dialect_name")
    url = config.get_main_option("sqlalchemy.url")
    context.configure(
        url=None if dialect_name else url,
        dialect_name=dialect_name,
        target_metadata=metadata,
        literal_binds=True,
    )
    # Alembic inserts the version with a literal_column value, which Oracle's compiler turns
    # into "RETURNING ... INTO :ret_0": useless in a script and an undeclared bind in SQL*Plus.
    context.get_context().dialect.insert_returning = False
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no connection and no sqlalchemy.url given to the migrations")
    engine = make_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            _configure(connection)
            connection.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
