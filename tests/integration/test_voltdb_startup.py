"""A service starting beside an empty VoltDB (the operator's managed one starts with no schema):
every starting process may load the schema from the packaged procedures jar, exactly one does, all
of them then charge; with no jar it says what is missing; a VoltDB that does not answer is waited
for as long as CELLCELLY_STARTUP_WAIT_SECONDS says, then reported."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from cellcelly.adapters.balance_voltdb import VoltBalanceStore, VoltSchemaMissing, VoltUnavailable
from cellcelly.deploy import backends
from cellcelly.deploy.backends import build_store
from cellcelly.errors import ConfigurationError
from cellcelly.settings import Settings
from cellcelly_testing import require, running_voltdb

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def empty_voltdb() -> Iterator[str]:
    with running_voltdb(schema=False) as servers:
        yield servers


@pytest.fixture(scope="module")
def jar(tmp_path_factory: pytest.TempPathFactory, empty_voltdb: str) -> Path:
    out = tmp_path_factory.mktemp("procedures") / "procedures.jar"
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "voltdb.sh"), "jar", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    require(done.returncode == 0, f"scripts/voltdb.sh jar failed: {done.stderr[-1000:]}")
    return out


def settings(servers: str, jar: Path | str, wait: float) -> Settings:
    return Settings(
        balance_store="voltdb",
        voltdb_servers=servers,
        voltdb_procedures_jar=str(jar),
        startup_wait_seconds=wait,
    )


def test_a_configured_jar_that_is_not_there_is_named(empty_voltdb: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="no file"):
        build_store(settings(empty_voltdb, tmp_path / "none.jar", 0))


def test_without_a_jar_an_empty_voltdb_is_named_at_once(
    empty_voltdb: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(backends, "procedures_jar", lambda settings: None)  # an image built without it
    plain = Settings(balance_store="voltdb", voltdb_servers=empty_voltdb, startup_wait_seconds=0)
    with pytest.raises(VoltSchemaMissing, match="no CellCelly schema"):
        build_store(plain)


def test_starting_processes_load_the_schema_once_and_all_charge(empty_voltdb: str, jar: Path) -> None:
    with ThreadPoolExecutor(4) as pool:  # four pods starting together
        stores = list(pool.map(lambda _: build_store(settings(empty_voltdb, jar, 60)), range(4)))
    try:
        for store in stores:
            assert isinstance(store, VoltBalanceStore)
            assert store.get("5490000000") is None
            assert store.outbox_size() == 0
    finally:
        for store in stores:
            store.close()
    again = build_store(settings(empty_voltdb, jar, 0))  # loaded: nothing to do, no wait
    again.close()


def test_a_voltdb_that_does_not_answer_is_waited_for_then_named(jar: Path) -> None:
    began = time.monotonic()
    with pytest.raises(VoltUnavailable):
        build_store(settings("127.0.0.1:9", jar, 3))
    assert time.monotonic() - began >= 3
