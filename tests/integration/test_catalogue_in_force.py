"""The catalogue in force lives in the system of record: a change through one OCS is charged by
every other within one poll, a restart keeps it, and a refused catalogue changes nothing anywhere.

Two OCS here are two `open_backends()`s (holder, charging engine, own data dir and balance store, own file)
on one record, SQLite and PostgreSQL, each with its real polling thread.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cellcelly.deploy.backends import CATALOGUE_POLL_SECONDS, Backends, open_backends
from cellcelly.domain.charging import ChargeRequest, RequestType, ResultCode, ServiceUsage
from cellcelly.domain.errors import CatalogueError
from cellcelly.domain.units import Service
from cellcelly.settings import DEFAULT_CATALOGUE, Settings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

SEED = DEFAULT_CATALOGUE.read_text(encoding="utf-8")
# an SMS from Turkey abroad: 4.00 TL in the seed, 7.00 TL in the new version
DEARER = SEED.replace('version: "2026-12-02.1"', 'version: "2026-12-02.2"').replace(
    'except: "90", price: "4.00"', 'except: "90", price: "7.00"'
)
MSISDN = "5340000001"
WITHIN = CATALOGUE_POLL_SECONDS * 3 + 2  # seconds: a poll, with room for a slow machine


def ocs(root: Path, name: str, db_url: str) -> Backends:
    return open_backends(Settings(data_dir=root / name, database_url=db_url, balance_fsync="never"))


def sms_abroad(components: Backends, n: int) -> int:
    """Charge one SMS to Germany; what it cost the wallet, in kuruş."""
    before = components.store.get(MSISDN)
    assert before is not None
    answer = components.charging.charge(
        ChargeRequest(
            f"sms-{n}", RequestType.EVENT, 0, MSISDN, (ServiceUsage(2, Service.SMS, 1, 0, "4915112345678"),)
        )
    )
    assert answer.result_code == ResultCode.SUCCESS
    after = components.store.get(MSISDN)
    assert after is not None
    return before.wallet - after.wallet


def until(condition: object, seconds: float) -> float:
    """Wait for `condition()` to hold; how long it took."""
    began = time.monotonic()
    while not condition():  # type: ignore[operator]
        assert time.monotonic() - began < seconds, f"not within {seconds}s"
        time.sleep(0.05)
    return time.monotonic() - began


@pytest.fixture
def two(tmp_path: Path, db_url: str) -> Iterator[tuple[Backends, Backends]]:
    a, b = ocs(tmp_path, "a", db_url), ocs(tmp_path, "b", db_url)
    try:
        b.accounts.provision(MSISDN, "")
        b.accounts.top_up(MSISDN, 10_000, "v-1", notify=False)
        yield a, b
    finally:
        a.close()
        b.close()


def test_a_change_through_one_ocs_is_charged_by_the_other_within_seconds(
    two: tuple[Backends, Backends],
) -> None:
    a, b = two
    assert sms_abroad(b, 1) == 400
    a.catalogue.replace(DEARER)
    assert a.catalogue.current.version == "2026-12-02.2"
    took = until(lambda: b.catalogue.current.version == "2026-12-02.2", WITHIN)
    assert took <= WITHIN
    assert sms_abroad(b, 2) == 700
    in_force = b.records.catalogue_in_force()
    assert in_force is not None and in_force.version == "2026-12-02.2"
    # back to the older version: a generation, not the order of versions, says what is in force
    b.catalogue.replace(SEED)
    until(lambda: a.catalogue.current.version == "2026-12-02.1", WITHIN)
    latest = a.records.latest_catalogue()
    assert latest is not None and latest.version == "2026-12-02.1"
    assert sms_abroad(b, 3) == 400


def test_a_restarted_ocs_starts_on_the_version_in_force_not_its_file(tmp_path: Path, db_url: str) -> None:
    a = ocs(tmp_path, "a", db_url)
    try:
        a.catalogue.replace(DEARER, persist=False)  # its file keeps the seed
    finally:
        a.close()
    assert (tmp_path / "a" / "catalogue.yaml").read_text(encoding="utf-8") == SEED
    for name in ("a", "fresh"):  # the same data dir, and one whose file is the seed
        again = ocs(tmp_path, name, db_url)
        try:
            assert again.catalogue.current.version == "2026-12-02.2"
            assert again.catalogue.current.source == DEARER
        finally:
            again.close()


def test_a_bad_catalogue_changes_nothing_anywhere(two: tuple[Backends, Backends]) -> None:
    a, b = two
    a.catalogue.replace(DEARER)
    until(lambda: b.catalogue.current.version == "2026-12-02.2", WITHIN)
    generation = a.records.catalogue_in_force()
    broken = DEARER.replace('version: "2026-12-02.2"', 'version: "2026-12-02.3"').replace(
        'price: "7.00"', 'price: "seven"'
    )
    with pytest.raises(CatalogueError):
        a.catalogue.replace(broken)
    # a version on record with other content, through the other OCS: refused by the record
    with pytest.raises(CatalogueError, match="on record with other content"):
        b.catalogue.replace(DEARER.replace('version: "2026-12-02.2"', 'version: "2026-12-02.1"'))
    time.sleep(CATALOGUE_POLL_SECONDS * 2)
    assert a.records.catalogue_in_force() == generation
    assert a.records.catalogue_version("2026-12-02.3") is None
    for components in (a, b):
        assert components.catalogue.current.source == DEARER
    assert sms_abroad(b, 1) == 700
