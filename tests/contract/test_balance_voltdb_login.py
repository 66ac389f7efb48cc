"""The VoltDB balance store logging in to a real VoltDB 10.1.1 with security on (`VOLTDB_USERS` of
scripts/voltdb.sh: one administrator, started once for this module): what a secured, external
VoltDB of a CellCellyStack (CELLCELLY_VOLTDB_USERNAME/PASSWORD) needs from the services.

Skipped on a machine without Java (with javac) and Maven; a failure under CI=true.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from balance_store_contract import A, B, credit, normalised, on_a_loop, provision, state_of

from cellcelly.deploy.backends import build_store
from cellcelly.settings import Settings
from cellcelly_dev.devservers import voltdb_truncate
from cellcelly_testing import running_voltdb

pytestmark = pytest.mark.contract

USER = "cellcelly"
# a ':' past the name's, a blank, and what XML must escape (the script writes it into deployment.xml)
PASSWORD = 'v0lt-p@ss:w/rd &<"1>'


@pytest.fixture(scope="module")
def secured_voltdb() -> Iterator[str]:
    with running_voltdb(username=USER, password=PASSWORD) as servers:
        yield servers


@pytest.fixture()
def empty_secured_voltdb(secured_voltdb: str) -> str:
    voltdb_truncate(secured_voltdb, username=USER, password=PASSWORD)
    return secured_voltdb


def test_the_right_login_reads_and_writes(empty_secured_voltdb: str) -> None:
    from cellcelly.adapters.balance_voltdb import VoltBalanceStore

    with VoltBalanceStore(empty_secured_voltdb, username=USER, password=PASSWORD) as store:
        opened = provision(store, A)
        topped = credit(store, A, 5, "login-1")
        assert normalised(store.get(A)) == normalised(topped)
        assert topped.wallet == opened.wallet + 5
        assert list(store.msisdns()) == [A]

        async def on_the_loop() -> None:  # the loop's connections (voltdb_wire) log in the same way
            assert normalised(await store.get_async(A)) == normalised(topped)

        on_a_loop(store, on_the_loop)
    # a second store (new connections, a new handshake each) sees the same state
    with VoltBalanceStore(empty_secured_voltdb, username=USER, password=PASSWORD) as again:
        assert normalised(again.get(A)) == normalised(topped)


@pytest.mark.parametrize(
    ("username", "password"),
    [(USER, "not-" + PASSWORD), ("", ""), ("", PASSWORD), ("nobody", PASSWORD)],
    ids=["wrong-password", "no-login", "password-without-user", "unknown-user"],
)
def test_a_refused_login_is_voltunavailable_and_the_right_one_then_works(
    empty_secured_voltdb: str, username: str, password: str
) -> None:
    from cellcelly.adapters.balance_voltdb import VoltBalanceStore, VoltUnavailable

    with pytest.raises(VoltUnavailable, match="Authentication failed") as refused:
        VoltBalanceStore(empty_secured_voltdb, username=username, password=password, timeout=5.0)
    message = str(refused.value)
    assert empty_secured_voltdb in message  # which server refused
    assert PASSWORD not in message
    # the refusal leaves nothing behind in this process: the right login works at once
    with VoltBalanceStore(empty_secured_voltdb, username=USER, password=PASSWORD) as store:
        opened = provision(store, B)
        assert normalised(store.get(B)) == normalised(opened)


@pytest.mark.parametrize("source", ["arguments", "environment"])
def test_build_store_logs_in_with_the_settings(
    empty_secured_voltdb: str, source: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cellcelly.adapters.balance_voltdb import VoltBalanceStore

    values = {
        "balance_store": "voltdb",
        "voltdb_servers": empty_secured_voltdb,
        "voltdb_username": USER,
        "voltdb_password": PASSWORD,
    }
    if source == "environment":  # the names the operator's Deployment sets
        for key, value in values.items():
            monkeypatch.setenv(f"CELLCELLY_{key.upper()}", value)
        settings = Settings()
    else:
        settings = Settings(**values)  # type: ignore[arg-type]
    store = build_store(settings)
    try:
        assert isinstance(store, VoltBalanceStore)
        opened = provision(store, A)
        with VoltBalanceStore(empty_secured_voltdb, username=USER, password=PASSWORD) as other:
            assert state_of(other) == state_of(store)
            assert normalised(other.get(A)) == normalised(opened)
    finally:
        store.close()


def test_ensure_schema_logs_in(secured_voltdb: str) -> None:
    from cellcelly.adapters.balance_voltdb import VoltUnavailable, ensure_schema

    # the module's server has the schema (loaded with this login): found, nothing loaded again
    assert ensure_schema(secured_voltdb, b"", username=USER, password=PASSWORD) is False
    with pytest.raises(VoltUnavailable, match="Authentication failed"):
        ensure_schema(secured_voltdb, b"", timeout=5.0)
