"""A throwaway PostgreSQL server for the integration tests (the code lives in `cellcelly_dev.devservers`).

    with postgres_server() as url:   # postgresql+psycopg://postgres@127.0.0.1:PORT/cellcelly
        ...

With `CELLCELLY_TEST_POSTGRES_URL` set, that server is used instead and nothing is started.
Without binaries, `PostgresUnavailable` is raised; the fixture turns it into a skip (a failure
when CI=true).
"""

from __future__ import annotations

from cellcelly_dev.devservers import (
    DATABASE,
    ENV_URL,
    OS_USER,
    PostgresUnavailable,
    ThrowawayPostgres,
    find_bindir,
    free_port,
    postgres_server,
)

__all__ = [
    "DATABASE",
    "ENV_URL",
    "OS_USER",
    "PostgresUnavailable",
    "ThrowawayPostgres",
    "find_bindir",
    "free_port",
    "postgres_server",
]
