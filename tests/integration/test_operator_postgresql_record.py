"""The record on an external PostgreSQL, as the operator wires it (spec.record: PostgreSQL): the DSN in
the ConfigMap and the login behind the Secret the stack names, resolved as the kubelet would, bring a
real PostgreSQL to the newest schema through `cellcelly migrate`, logged in as that login and no other.

The password holds the characters a URL would need quoted (`@ : / % #`): the services join the login to
the DSN themselves (Settings.sor_url), so nothing renders it into a URL string on the way.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from cellcelly_operator import services, spec
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.pool import NullPool
from stack_apart import resolve

from cellcelly.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.postgres, pytest.mark.timeout(120)]

UID = "0b6a3f52-8c1d-4e2f-9a47-5d6e7f8a9b0c"


def _autocommit(url: str, *statements: str) -> None:
    engine = create_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")  # CREATE DATABASE needs it
    try:
        with engine.connect() as conn:
            for statement in statements:
                conn.execute(text(statement))
    finally:
        engine.dispose()


def test_cellcelly_migrate_runs_on_an_external_postgresql_record_the_operator_wires(
    postgres_url: str, tmp_path: Path
) -> None:
    server = make_url(postgres_url)
    tag = secrets.token_hex(4)
    role, database, password = f"cc_{tag}", f"record_{tag}", f"p@ss:/%#{tag}"
    _autocommit(
        postgres_url,
        f"CREATE ROLE {role} LOGIN PASSWORD '{password}'",
        f"CREATE DATABASE {database} OWNER {role}",
    )
    dsn = f"postgresql+psycopg://{server.host}:{server.port}/{database}"
    stack = spec.from_body(
        {
            "metadata": {"name": "demo", "namespace": "telco", "uid": UID},
            "spec": {
                # Kafka without a login: the SF's other Secret is none of this test's business
                "kafka": {"mode": "external", "external": {"bootstrapServers": "127.0.0.1:9092"}},
                "record": "PostgreSQL",
                "postgresql": {
                    "mode": "external",
                    "external": {"dsn": dsn, "secretRef": {"name": "pg-creds"}},
                },
            },
        }
    )
    config = services.config_data(stack)
    assert config["CELLCELLY_DATABASE_URL"] == dsn  # as given: no login in a ConfigMap
    env = {
        **config,
        **resolve(services.env(stack, "sf"), {"pg-creds": {"username": role, "password": password}}),
    }
    env = {
        k: v for k, v in env.items() if k.startswith("CELLCELLY_DATABASE_")
    }  # migrate reads the record only
    base = {k: v for k, v in os.environ.items() if not k.startswith("CELLCELLY_")}
    done = subprocess.run(
        [sys.executable, "-m", "cellcelly.cli", "migrate"],
        env={**base, **env},
        cwd=tmp_path,  # no .env of the checkout is read
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert password not in done.stdout + done.stderr  # shown masked
    # the schema is there, made by the login from the Secret (it owns every table), in the DSN's database
    url = Settings(
        database_url=env["CELLCELLY_DATABASE_URL"],
        database_username=env["CELLCELLY_DATABASE_USERNAME"],
        database_password=env["CELLCELLY_DATABASE_PASSWORD"],
    ).sor_url()
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            owners = dict(
                conn.execute(
                    text("SELECT tablename, tableowner FROM pg_tables WHERE schemaname = 'public'")
                ).all()
            )
            assert conn.execute(text("SELECT current_database()")).scalar() == database
    finally:
        engine.dispose()
    assert {"subscribers", "wallet_ledger", "usage_records"} <= set(owners), owners
    assert set(owners.values()) == {role}
