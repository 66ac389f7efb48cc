"""The system of record on SQLAlchemy Core + Alembic: one adapter for SQLite, PostgreSQL, Oracle.

from cellcelly.adapters.sql import SqlRecords, migrate

records = SqlRecords("sqlite:///cellcelly.db")   # or postgresql+psycopg://, oracle+oracledb://
records.migrate()                                # same as migrate(records.engine)
"""

from cellcelly.adapters.sql.migrator import downgrade, migrate
from cellcelly.adapters.sql.notices import SqlNoticeLedger
from cellcelly.adapters.sql.records import SqlRecords

__all__ = ["SqlNoticeLedger", "SqlRecords", "downgrade", "migrate"]
