"""A real PostgreSQL asking for a password: the login from CELLCELLY_DATABASE_USERNAME/PASSWORD reaches
it intact, whatever characters the password holds (the operator gives them from a Secret)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import URL, create_engine, make_url, text
from sqlalchemy.pool import NullPool

from cellcelly.adapters.sql import SqlRecords
from cellcelly.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.postgres, pytest.mark.timeout(120)]

PASSWORD = "p@ss:w/rd%#?&+ ş"  # every character a URL would need quoted, and one that is not ASCII


def _run(url: str | URL, *statements: str) -> list[object]:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            results = [conn.execute(text(s)) for s in statements]
            return [r.scalar() if r.returns_rows else None for r in results]
    finally:
        engine.dispose()


@pytest.fixture()
def login(postgres_url: str) -> Iterator[str]:
    """A role that must give its password (scram-sha-256 in pg_hba.conf, ahead of the test server's trust)."""
    role = f"cc_{uuid.uuid4().hex[:8]}"
    quoted = PASSWORD.replace("'", "''")
    (hba,) = _run(postgres_url, "SHOW hba_file")
    hba_file = Path(str(hba))
    try:
        before = hba_file.read_text()
    except OSError as exc:  # a server of someone else's (CELLCELLY_TEST_POSTGRES_URL)
        pytest.skip(f"cannot change that server's pg_hba.conf: {exc}")
    _run(
        postgres_url,
        f"CREATE ROLE {role} LOGIN PASSWORD '{quoted}'",
        f"GRANT ALL ON DATABASE {make_url(postgres_url).database} TO {role}",
    )
    hba_file.write_text(f"host all {role} 127.0.0.1/32 scram-sha-256\n{before}")
    _run(postgres_url, "SELECT pg_reload_conf()")
    try:
        yield role
    finally:
        hba_file.write_text(before)
        _run(postgres_url, "SELECT pg_reload_conf()", f"DROP OWNED BY {role}", f"DROP ROLE {role}")


def test_the_login_apart_from_the_url_connects(postgres_url: str, login: str, tmp_path: Path) -> None:
    bare = make_url(postgres_url).set(username=None, password=None).render_as_string(hide_password=False)
    settings = Settings(
        data_dir=tmp_path, database_url=bare, database_username=login, database_password=PASSWORD
    )
    assert _run(settings.sor_url(), "SELECT current_user") == [login]
    records = SqlRecords(settings.sor_url())
    try:
        with records.engine.connect() as conn:
            assert conn.execute(text("SELECT session_user")).scalar() == login
    finally:
        records.engine.dispose()


def test_a_wrong_password_is_refused(postgres_url: str, login: str, tmp_path: Path) -> None:
    """The server really checks: the test above is not passing on trust."""
    bare = make_url(postgres_url).set(username=None, password=None).render_as_string(hide_password=False)
    settings = Settings(
        data_dir=tmp_path, database_url=bare, database_username=login, database_password="wrong"
    )
    with pytest.raises(Exception, match="password authentication failed"):
        _run(settings.sor_url(), "SELECT 1")
