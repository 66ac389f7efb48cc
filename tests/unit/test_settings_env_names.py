"""The scripts' download directory is no setting of the services: it was `CELLCELLY_CACHE`, which is also
`Settings.cache` (embedded|hazelcast) through the CELLCELLY_ prefix, so exporting the directory for
scripts/kafka.sh made every `Settings()` in that shell fail validation."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from cellcelly.settings import Settings

pytestmark = pytest.mark.unit

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
# `${NAME:-$HOME/.cache/cellcelly}`: how each script names the directory its downloads are kept in
DOWNLOADS = re.compile(r"\$\{(CELLCELLY_[A-Z_]+):-\$HOME/\.cache/cellcelly\}")


def download_variables() -> set[str]:
    return {m for script in SCRIPTS.glob("*.sh") for m in DOWNLOADS.findall(script.read_text())}


def test_every_script_names_its_download_directory_alike() -> None:
    assert download_variables() == {"CELLCELLY_DOWNLOADS"}


def test_settings_validate_with_the_download_directory_exported(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in download_variables():
        assert name.removeprefix("CELLCELLY_").lower() not in Settings.model_fields, name
        monkeypatch.setenv(name, str(tmp_path))
    assert Settings().cache == "embedded"


def test_the_old_name_was_the_cache_setting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Why the directory was renamed (the test above fails with the old name)."""
    monkeypatch.setenv("CELLCELLY_CACHE", str(tmp_path))
    with pytest.raises(ValidationError):
        Settings()
