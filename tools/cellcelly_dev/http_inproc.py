"""An HTTP charge's own CPU, without sockets or a server: the OCS's ASGI app (its charging fast path)
given the HTTP bench's requests in this process, `--sessions` charging sessions interleaved as the
bench's connections interleave them, on the embedded store.

    PYTHONPATH=services:tools .venv/bin/python -m cellcelly_dev.http_inproc [--requests N] [--rounds R]

A compiled build (`PYTHONPATH=build/sNN:tools`, `python -m cellcelly_dev.compiled`) measures what
`make run` runs. Each round prints the loop thread's CPU a request (`time.thread_time`: other
threads of the store are not counted) for `/noop` and for charging. `--only http` of
`cellcelly_dev.bench` puts the server around the same requests; the difference is uvicorn, the
sockets, and waking the client (docs/performance-log.md, issue 16).
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from collections.abc import Iterator, MutableMapping
from typing import Any

from cellcelly.runtime import tune_gc
from cellcelly_dev.bench import OCS_KEY, _http_script, provisioned_data_dir

log = logging.getLogger(__name__)
SUBSCRIBERS = 10_000

Request = tuple[str, list[tuple[bytes, bytes]], bytes]  # path, headers, body


def requests(noop: bool, first_sid: int, sessions: int, count: int) -> list[Request]:
    """`count` requests of `sessions` sessions at a time, one request of each in turn; a session
    that ends gives its place to the next."""
    scripts: list[Iterator[bytes]] = [_http_script(first_sid + i, SUBSCRIBERS, noop) for i in range(sessions)]
    started, out = sessions, list[Request]()
    while len(out) < count:
        for i in range(sessions):
            raw = next(scripts[i], None)
            if raw is None:
                scripts[i] = _http_script(first_sid + started, SUBSCRIBERS, noop)
                started += 1
                raw = next(scripts[i])
            head, body = raw.split(b"\r\n\r\n", 1)
            request_line, *fields = head.split(b"\r\n")
            headers = [(name.lower(), value) for name, value in (f.split(b": ", 1) for f in fields)]
            out.append((request_line.split(b" ")[1].decode(), headers, body))
    return out[:count]


async def drive(app: Any, batch: list[Request]) -> float:
    """The loop thread's CPU a request; every answer checked (a refusal is not a charge)."""
    answers: list[MutableMapping[str, Any]] = []

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            answers.append(message)

    started = time.thread_time()
    for path, headers, body in batch:
        message = {"type": "http.request", "body": body, "more_body": False}

        async def receive(message: dict[str, Any] = message) -> dict[str, Any]:
            return message

        await app({"type": "http", "method": "POST", "path": path, "headers": headers}, receive, send)
    spent = time.thread_time() - started
    refused = [a["status"] for a in answers if a["status"] >= 300]
    if len(answers) != len(batch) or refused:
        raise RuntimeError(f"{len(refused)} of {len(batch)} requests refused: {refused[:5]}")
    return spent / len(batch)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cellcelly_dev.http_inproc")
    parser.add_argument("--requests", type=int, default=30_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sessions", type=int, default=32, help="interleaved, as the bench's connections")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from cellcelly.adapters.balance_embedded import EmbeddedBalanceStore
    from cellcelly.deploy.backends import open_backends
    from cellcelly.deploy.ocs import ocs_app
    from cellcelly.settings import Settings

    with provisioned_data_dir(SUBSCRIBERS) as data:
        os.environ.update(
            {
                "CELLCELLY_BALANCE_STORE": "embedded",  # what `make run` charges on
                "CELLCELLY_DATA_DIR": str(data),
                "CELLCELLY_LOG_LEVEL": "WARNING",
                "CELLCELLY_DATABASE_URL": f"sqlite:///{data / 'sor.db'}",
                "CELLCELLY_OCS_API_KEY": OCS_KEY,
            }
        )
        settings = Settings()
        backends = open_backends(settings)
        try:
            assert isinstance(backends.store, EmbeddedBalanceStore)
            rounds(ocs_app(settings, backends), args)
        finally:
            backends.close()
    return 0


def rounds(app: Any, args: argparse.Namespace) -> None:
    import uvloop

    tune_gc()
    for r in range(args.rounds):
        noop = uvloop.run(drive(app, requests(True, 10_000_000 * (r + 50), args.sessions, args.requests)))
        charge = uvloop.run(drive(app, requests(False, 10_000_000 * (r + 1), args.sessions, args.requests)))
        log.info(
            "/noop %5.1f µs, charging %5.1f µs a request (%5.1f more)",
            noop * 1e6,
            charge * 1e6,
            (charge - noop) * 1e6,
        )


if __name__ == "__main__":
    raise SystemExit(main())
