"""The one settings object. Every value comes from the environment (prefix CELLCELLY_) or a .env."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_CATALOGUE = Path(__file__).parent / "catalogue" / "default.yaml"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CELLCELLY_", env_file=".env", extra="ignore")

    data_dir: Path = Path("data")
    # the catalogue in force; created from the bundled seed catalogue when missing
    catalogue_file: Path | None = None

    # system of record: SQLite by default; postgresql+psycopg://... or oracle+oracledb://...
    database_url: str = ""

    # real-time balance store
    balance_store: Literal["embedded"] = "embedded"
    balance_fsync: Literal["always", "interval", "never"] = "interval"

    ocs_host: str = "127.0.0.1"
    ocs_port: int = 8081

    admin_token: SecretStr | None = Field(
        default=None, description="bearer token for /admin; admin is off without it"
    )

    log_level: str = "INFO"
    log_format: Literal["json", "text"] = "json"

    def catalogue_path(self) -> Path:
        return self.catalogue_file or self.data_dir / "catalogue.yaml"

    def sor_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'cellcelly.db'}"
