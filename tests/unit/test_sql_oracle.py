"""Oracle compatibility of the system-of-record adapter, proven without an Oracle server.

There is no Oracle database on the build machines, so instead of running against one, these
tests compile with SQLAlchemy's Oracle dialect everything the adapter would send to Oracle:

* the CREATE TABLE / CREATE INDEX DDL of every table in `cellcelly.adapters.sql.schema`;
* the real statements the adapter runs (`queries.representative_statements()`, built by the
  same functions `SqlRecords` calls, not copies);
* the Alembic migration in offline mode (`as_sql=True`) for the Oracle dialect, upgrade and
  downgrade, which is exactly the script a DBA would run.

and check that the SQL stays within what Oracle accepts: identifiers of at most 30 characters
(Oracle before 12.2; newer versions allow 128, we keep to 30), no JSON, BOOLEAN, AUTOINCREMENT,
ON CONFLICT, LIMIT or TEXT types, and no reserved words as names. The same SQL is run for real
on SQLite and PostgreSQL by tests/integration/test_records.py.
"""

from __future__ import annotations

import re

import pytest
from sqlalchemy import Index, Table
from sqlalchemy.dialects import oracle
from sqlalchemy.dialects.oracle.base import RESERVED_WORDS
from sqlalchemy.schema import CreateIndex, CreateTable, DropTable
from sqlalchemy.sql.expression import Executable

from cellcelly.adapters.sql import queries
from cellcelly.adapters.sql.migrator import offline_sql
from cellcelly.adapters.sql.schema import MAX_IDENTIFIER_LENGTH, metadata

pytestmark = [pytest.mark.unit, pytest.mark.timeout(60)]

DIALECT = oracle.dialect()  # type: ignore[no-untyped-call]

FORBIDDEN = [
    re.compile(r"\bJSONB?\b"),
    re.compile(r"\bBOOLEAN\b"),
    re.compile(r"\bAUTOINCREMENT\b"),
    re.compile(r"\bAUTO_INCREMENT\b"),
    re.compile(r"\bSERIAL\b"),
    re.compile(r"\bON\s+CONFLICT\b"),
    re.compile(r"\bON\s+DUPLICATE\b"),
    re.compile(r"\bLIMIT\b"),
    re.compile(r"\bTEXT\b"),
    re.compile(r"\bTIMESTAMP\s+WITH"),
    re.compile(r"\bRETURNING\b.*\bINTO\b", re.S),
]

# Words in generated SQL that look like identifiers: anything quoted, plus unquoted names.
_QUOTED = re.compile(r'"([^"]+)"')
_WORD = re.compile(r"\b[A-Za-z_][A-Za-z0-9_$#]*\b")


def _check_sql(sql: str, where: str) -> None:
    upper = sql.upper()
    for pattern in FORBIDDEN:
        assert not pattern.search(upper), f"{where}: {pattern.pattern!r} in Oracle SQL:\n{sql}"
    for word in _WORD.findall(sql) + _QUOTED.findall(sql):
        assert len(word) <= MAX_IDENTIFIER_LENGTH, f"{where}: identifier {word!r} longer than 30"
    assert not _QUOTED.findall(sql), f"{where}: quoted identifiers (case-sensitive in Oracle):\n{sql}"


def _tables() -> list[Table]:
    return list(metadata.sorted_tables)


def _indexes() -> list[Index]:
    return [index for table in _tables() for index in sorted(table.indexes, key=lambda i: str(i.name))]


def test_every_schema_name_fits_oracle() -> None:
    names: list[str] = []
    for table in _tables():
        names.append(table.name)
        names.extend(column.name for column in table.columns)
        names.extend(str(constraint.name) for constraint in table.constraints)
        names.extend(str(index.name) for index in table.indexes)
    assert len(names) > 40
    for name in names:
        assert name and name != "None", f"unnamed constraint or index in {names}"
        assert len(name) <= MAX_IDENTIFIER_LENGTH, name
        assert name.lower() == name, name  # unquoted in Oracle, so case-insensitive
        assert name.upper() not in RESERVED_WORDS and name not in RESERVED_WORDS, name


@pytest.mark.parametrize("table", _tables(), ids=lambda t: t.name)
def test_create_and_drop_table_compile_for_oracle(table: Table) -> None:
    ddl = str(CreateTable(table).compile(dialect=DIALECT))
    _check_sql(ddl, f"CREATE TABLE {table.name}")
    assert "VARCHAR2(" in ddl and " CHAR)" in ddl  # lengths in characters: Turkish letters are 2 bytes
    _check_sql(str(DropTable(table).compile(dialect=DIALECT)), f"DROP TABLE {table.name}")


@pytest.mark.parametrize("index", _indexes(), ids=lambda i: str(i.name))
def test_create_index_compiles_for_oracle(index: Index) -> None:
    _check_sql(str(CreateIndex(index).compile(dialect=DIALECT)), f"CREATE INDEX {index.name}")


def test_datetime_and_integer_types_map_to_oracle_types() -> None:
    ddl = "\n".join(str(CreateTable(t).compile(dialect=DIALECT)) for t in _tables())
    assert "DATE NOT NULL" in ddl  # DateTime -> DATE (seconds are all we store)
    assert "NUMBER(19)" in ddl  # BigInteger
    assert "CLOB" in ddl  # Text


STATEMENTS = queries.representative_statements()


@pytest.mark.parametrize("name", sorted(STATEMENTS))
def test_adapter_statements_compile_for_oracle(name: str) -> None:
    statement: Executable = STATEMENTS[name]
    compiled = statement.compile(dialect=DIALECT)  # type: ignore[attr-defined]
    _check_sql(str(compiled), name)
    for bind in compiled.binds:  # Oracle bind names obey the identifier limit too
        assert len(bind) <= MAX_IDENTIFIER_LENGTH, (name, bind)
    literal = statement.compile(dialect=DIALECT, compile_kwargs={"literal_binds": True})  # type: ignore[attr-defined]
    _check_sql(str(literal), f"{name} (literal)")


def test_statements_cover_the_adapter() -> None:
    assert {"insert_usage_records", "existing_usage", "select_usage", "select_wallet_balance"} <= set(
        STATEMENTS
    )
    wallet = str(STATEMENTS["select_wallet_balance"].compile(dialect=DIALECT))  # type: ignore[attr-defined]
    assert "FROM DUAL" in wallet
    paged = str(STATEMENTS["select_subscribers"].compile(dialect=DIALECT))  # type: ignore[attr-defined]
    assert "FETCH FIRST" in paged or "ROWNUM" in paged


def test_alembic_offline_upgrade_for_oracle() -> None:
    sql = offline_sql("oracle")
    _check_sql(sql, "alembic upgrade --sql")
    for table in _tables():
        assert f"CREATE TABLE {table.name} (" in sql
    for index in _indexes():
        assert f"CREATE INDEX {index.name} ON" in sql
    assert "INSERT INTO alembic_version (version_num) VALUES ('0001')" in sql
    assert "CREATE TABLE alembic_version" in sql


def test_alembic_offline_downgrade_for_oracle() -> None:
    sql = offline_sql("oracle", upgrade=False)
    _check_sql(sql, "alembic downgrade --sql")
    for table in _tables():
        assert f"DROP TABLE {table.name}" in sql


def test_offline_migration_creates_what_the_metadata_describes() -> None:
    sql = offline_sql("oracle")
    for table in _tables():
        ddl = str(CreateTable(table).compile(dialect=DIALECT))
        body = [line for line in ddl.splitlines() if line.startswith((" ", "\t"))]
        assert len(body) >= len(table.columns)
        for line in body:
            assert line.strip().rstrip(",") in sql, f"{table.name}: {line.strip()} not in the migration"
