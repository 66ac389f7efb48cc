"""The bundled catalogue seeds a fresh data directory once; an existing one keeps its prices.

Prices change by a new catalogue version put in force (PUT /admin/catalogue), never by an
upgrade under a running deployment; the start says when the bundled version is not the one in force.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from cellcelly.deploy.backends import open_backends
from cellcelly.domain.units import Service
from cellcelly.settings import DEFAULT_CATALOGUE, Settings

pytestmark = pytest.mark.integration

MIB = 1024**2
# the catalogue as it was before issue 12 §3: data priced per MB, 1000x the seed
OLD = DEFAULT_CATALOGUE.read_text(encoding="utf-8")
OLD = OLD.replace('version: "2026-12-02.1"', 'version: "2026-11-25.1"').replace("per: 1000 MB", "per: 1 MB")


def test_a_fresh_data_dir_gets_the_bundled_catalogue(
    data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="cellcelly.deploy.backends")
    components = open_backends(Settings(data_dir=data_dir))
    try:
        assert (data_dir / "catalogue.yaml").read_text(encoding="utf-8") == DEFAULT_CATALOGUE.read_text(
            encoding="utf-8"
        )
        rule = components.catalogue.current.rate(Service.DATA, "90", "", 1)
        assert rule is not None and rule.cost(1000 * MIB) == 150
        record = components.records.latest_catalogue()
        assert record is not None and record.version == components.catalogue.current.version
        assert not [r for r in caplog.records if "not the bundled one" in r.getMessage()]
    finally:
        components.close()


def test_an_existing_data_dir_keeps_its_prices_and_is_told(
    data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert OLD != DEFAULT_CATALOGUE.read_text(encoding="utf-8")
    (data_dir / "catalogue.yaml").write_text(OLD, encoding="utf-8")
    caplog.set_level(logging.INFO, logger="cellcelly.deploy.backends")
    components = open_backends(Settings(data_dir=data_dir))
    try:
        assert components.catalogue.current.version == "2026-11-25.1"
        rule = components.catalogue.current.rate(Service.DATA, "90", "", 1)
        assert rule is not None and rule.cost(1000 * MIB) == 150_000  # the old price stays in force
        (told,) = [r for r in caplog.records if "not the bundled one" in r.getMessage()]
        assert (told.in_force, told.bundled) == ("2026-11-25.1", "2026-12-02.1")  # type: ignore[attr-defined]
        # a new version put in force is how the prices change
        components.catalogue.replace(DEFAULT_CATALOGUE.read_text(encoding="utf-8"))
        rule = components.catalogue.current.rate(Service.DATA, "90", "", 1)
        assert rule is not None and rule.cost(1000 * MIB) == 150
        record = components.records.latest_catalogue()
        assert record is not None and record.version == "2026-12-02.1"
    finally:
        components.close()
