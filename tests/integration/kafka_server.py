"""A throwaway single-node Apache Kafka 4.4 (KRaft) for the integration tests.

    with kafka_server() as server:      # server.bootstrap == "127.0.0.1:PORT"
        ...
        server.stop(); server.start()   # same data dir: what was acknowledged is still there

Runs `scripts/kafka.sh fetch` (Maven, cached under ~/.cache/cellcelly, skipped when present) and
`scripts/kafka.sh start DIR PORT` in a temporary directory on a free port; stopped and deleted on
exit. With `CELLCELLY_TEST_KAFKA` (a bootstrap "host:port") set, that cluster is used instead and
nothing is started (nor can it be restarted: `server.external`). Without Java or Maven, or when
the fetch fails, `KafkaUnavailable` is raised; the fixture turns it into a skip (a failure when
CI=true).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cellcelly_dev.devservers import KAFKA_SCRIPT, KafkaUnavailable, fetch_kafka, free_port, run_script

__all__ = ["KafkaServer", "KafkaUnavailable", "fetch", "kafka_server"]

log = logging.getLogger(__name__)

ENV_BOOTSTRAP = "CELLCELLY_TEST_KAFKA"
# the broker's second listener (SASL_PLAINTEXT, PLAIN and SCRAM-SHA-512) knows this one user
SASL_USER = "cellcelly"
SASL_PASSWORD = "k@fka-p:w/rd 1"


def fetch() -> None:
    fetch_kafka()


class KafkaServer:
    def __init__(
        self, root: Path | None = None, bootstrap: str | None = None, sasl_users: dict[str, str] | None = None
    ) -> None:
        self.external = bootstrap is not None
        # the SASL listener's users (name -> password); the one test user unless given
        self.sasl_users = sasl_users or {SASL_USER: SASL_PASSWORD}
        self.root = root
        self.port = 0 if bootstrap is None else int(bootstrap.rsplit(":", 1)[1])
        self.bootstrap = bootstrap or ""
        self.running = False

    @property
    def log_path(self) -> Path | None:
        return None if self.root is None else self.root / "kafka.log"

    def start(self) -> str:
        if self.external:
            return self.bootstrap
        assert self.root is not None
        began = time.monotonic()
        if not self.port:
            self.port = free_port()
        run_script(
            KAFKA_SCRIPT,
            RuntimeError,
            "start",
            str(self.root),
            str(self.port),
            timeout=150,
            env={"KAFKA_SASL_USERS": ",".join(f"{u}:{p}" for u, p in self.sasl_users.items())},
        )
        self.running = True
        self.bootstrap = f"127.0.0.1:{self.port}"
        log.info("kafka on %s ready in %.2fs", self.bootstrap, time.monotonic() - began)
        return self.bootstrap

    @property
    def sasl_bootstrap(self) -> str | None:
        """The SASL listener ("127.0.0.1:PORT"); None on a cluster this module did not start."""
        if self.external or self.root is None or not (self.root / "sasl.port").exists():
            return None
        return f"127.0.0.1:{(self.root / 'sasl.port').read_text().strip()}"

    def stop(self) -> None:
        if self.external or self.root is None:
            return
        self.running = False
        run_script(KAFKA_SCRIPT, RuntimeError, "stop", str(self.root), timeout=60)


@contextmanager
def kafka_server(sasl_users: dict[str, str] | None = None) -> Iterator[KafkaServer]:
    """A broker of its own; with `sasl_users`, always started here (a cluster named by
    CELLCELLY_TEST_KAFKA does not know those users)."""
    bootstrap = os.environ.get(ENV_BOOTSTRAP)
    if bootstrap and sasl_users is None:
        yield KafkaServer(bootstrap=bootstrap)
        return
    fetch()
    root = Path(tempfile.mkdtemp(prefix="cellcelly-kafka-"))
    server = KafkaServer(root, sasl_users=sasl_users)
    try:
        server.start()
        yield server
    finally:
        try:
            server.stop()
        finally:
            shutil.rmtree(root, ignore_errors=True)
