"""The database login given apart from the URL (CELLCELLY_DATABASE_USERNAME/PASSWORD, from a Secret)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import settings as examples
from hypothesis import strategies as st
from sqlalchemy import make_url

from cellcelly.adapters.sql.engine import make_engine
from cellcelly.settings import Settings

pytestmark = pytest.mark.unit

ORACLE = "oracle+oracledb://db.example:1521/?service_name=CELLCELLY"


def test_no_login_leaves_the_url_alone() -> None:
    assert Settings(database_url=ORACLE).sor_url() == make_url(ORACLE)


def test_the_url_is_parsed_once() -> None:
    """One parsed value: the engine, the migrator and the logs all get the same `URL`, never text to
    parse again."""
    settings = Settings(database_url=ORACLE, database_username="app", database_password="pw")
    assert settings.sor_url() is settings.sor_url()
    assert settings.sor_url_shown() == settings.sor_url().render_as_string(hide_password=True)


def test_login_replaces_the_urls_own_and_keeps_the_rest() -> None:
    url = make_url(
        Settings(
            database_url="oracle+oracledb://old:secret@db.example:1521/?service_name=X",
            database_username="app",
            database_password="n3w",
        ).sor_url()
    )
    assert (url.username, url.password, url.host, url.port) == ("app", "n3w", "db.example", 1521)
    assert url.query == {"service_name": "X"}


def test_a_password_alone_keeps_the_urls_user() -> None:
    url = make_url(Settings(database_url="postgresql+psycopg://me@h/db", database_password="pw").sor_url())
    assert (url.username, url.password) == ("me", "pw")


def test_sqlite_has_no_login(tmp_path: object) -> None:
    s = Settings(database_url="sqlite:///x.db", database_username="app", database_password="pw")
    assert s.sor_url() == make_url("sqlite:///x.db")


def test_the_password_is_masked_when_shown() -> None:
    shown = Settings(database_url=ORACLE, database_username="app", database_password="p@ss").sor_url_shown()
    assert "p@ss" not in shown and "app:***@db.example" in shown


@examples(deadline=None)  # the first engine imports the Oracle driver
@given(
    user=st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=30),
    password=st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=40),
)
def test_any_login_comes_back_unchanged(user: str, password: str) -> None:
    """What a URL-encoding slip breaks: @ : / % # ? & + and spaces in a generated password."""
    settings = Settings(database_url=ORACLE, database_username=user, database_password=password)
    # what the engine connects with: no text form in between to get the quoting wrong
    url = make_engine(settings.sor_url()).url
    assert (url.username, url.password, url.host, url.port) == (user, password, "db.example", 1521)
    assert url.query == {"service_name": "CELLCELLY"}
