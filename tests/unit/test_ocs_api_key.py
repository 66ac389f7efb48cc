"""CELLCELLY_OCS_API_KEY: the setting, the key file `make run` keeps, the constant-time match, and the
distributed services that refuse to start without it."""

from __future__ import annotations

import argparse
import stat
from pathlib import Path

import pytest
from pydantic import ValidationError

from cellcelly import cli
from cellcelly.kept_secrets import kept_secret
from cellcelly.ocs.auth import KEY_FILE, MIN_LENGTH, ApiKey
from cellcelly.settings import Settings

KEY = "unit-test-key-0123456789"


def test_the_setting_is_a_secret_trimmed_and_never_short(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CELLCELLY_OCS_API_KEY", f"  {KEY}\n")  # a Secret made from a file keeps its newline
    settings = Settings()
    assert settings.ocs_api_key is not None and settings.ocs_api_key.get_secret_value() == KEY
    assert KEY not in repr(settings) and KEY not in str(settings.model_dump())
    monkeypatch.setenv("CELLCELLY_OCS_API_KEY", "")
    assert Settings().ocs_api_key is None
    monkeypatch.setenv("CELLCELLY_OCS_API_KEY", "short-secret")
    with pytest.raises(ValidationError) as refused:
        Settings()
    assert "short-secret" not in str(refused.value)  # a refused secret is not echoed either


def test_the_key_matches_only_itself() -> None:
    key = ApiKey(KEY)
    assert key.matches(KEY) and key.matches(KEY.encode())
    for other in ("", KEY[:-1], KEY + " ", KEY.upper(), None):
        assert not key.matches(other)
    assert key.matches_bearer(f"Bearer {KEY}") and key.matches_bearer(f"bearer  {KEY} ".encode())
    for header in (None, "", KEY, f"Basic {KEY}", f"Bearer{KEY}", "Bearer "):
        assert not key.matches_bearer(header)
    assert KEY not in repr(key)
    nothing = ApiKey(None)
    assert not nothing.configured and not nothing.matches("") and not nothing.matches_bearer("Bearer ")


def test_make_run_keeps_its_key_in_the_data_dir_owner_only_across_restarts(tmp_path: Path) -> None:
    key, path, created = kept_secret(tmp_path / "data", KEY_FILE, MIN_LENGTH)
    assert created and path == tmp_path / "data" / KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(key) >= 32 and path.read_text().strip() == key
    again, _, created_again = kept_secret(tmp_path / "data", KEY_FILE, MIN_LENGTH)
    assert again == key and not created_again  # a restart keeps it: curl's $(cat ...) still works
    path.chmod(0o644)
    assert kept_secret(tmp_path / "data", KEY_FILE, MIN_LENGTH)[0] == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # tightened, not trusted as it was
    path.write_text("tiny\n")
    with pytest.raises(SystemExit, match="at least 16"):
        kept_secret(tmp_path / "data", KEY_FILE, MIN_LENGTH)
    assert kept_secret(tmp_path / "other", KEY_FILE, MIN_LENGTH)[0] != key  # every data directory its own


@pytest.mark.parametrize("command", ["ocs", "dgw"])
def test_the_distributed_services_refuse_to_start_without_a_key(
    command: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("CELLCELLY_OCS_API_KEY", raising=False)
    monkeypatch.setenv("CELLCELLY_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CELLCELLY_OCS_PORT", "0")
    monkeypatch.setenv("CELLCELLY_OCS_WIRE_PORT", "0")
    monkeypatch.setenv("CELLCELLY_DGW_PORT", "0")
    monkeypatch.setattr(cli, "ask_for_slice", lambda microseconds: False)  # the test process's own
    with pytest.raises(SystemExit, match="CELLCELLY_OCS_API_KEY"):
        cli.cmd_service(argparse.Namespace(command=command, noop=False))  # `cellcelly ocs`, `cellcelly dgw`
    assert not (tmp_path / KEY_FILE).exists()  # only `cellcelly run` makes one
