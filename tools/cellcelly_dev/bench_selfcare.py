"""Self-care over HTTP: balance queries/s and logins/s, each beside a baseline from the same run.

    rows = bench_selfcare(seconds=10.0)

Starts the MW app (the one `make run` serves on :8080, with SQLite and the embedded balance store)
in a process of its own, pinned to core 0, with `SUBSCRIBERS` signed up; the load comes from this
process on core 1, over keep-alive connections. Rows:

1. HTTP baseline: `GET /healthz` on the same server (routing, middleware, JSON; no work);
2. balance queries: `GET /api/v1/me/balance` with each subscriber's access token (token check,
   balance-store read, summary, JSON);
3. raw argon2id verify in this process, one thread on one core like the server (the cost a login
   must pay, at the MW's settings, with nothing else): the baseline for
4. logins: `POST /api/v1/auth/login` (credential read, argon2id verify, refresh token written to
   the system of record, access token signed).

The argon2 cost is in the row names; it is the MW's (`CELLCELLY_MW_ARGON2_*`, default t=2, m=19 MiB,
p=1), which is the point: a login is meant to cost that much.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import orjson

from cellcelly_dev import with_tools_path
from cellcelly_dev.benchhttp import drive
from cellcelly_dev.benchstats import summarise
from cellcelly_dev.devservers import free_port

SUBSCRIBERS = 64
PASSWORD = "Bench-Parola1"
CONNECTIONS = 16


def _msisdn(i: int) -> str:
    return f"55{i:08d}"


def serve(port: int) -> None:
    """The MW app on `port`, pinned to core 0, after signing SUBSCRIBERS up."""

    from cellcelly.deploy import mw
    from cellcelly.deploy.backends import open_backends
    from cellcelly.logs import setup_logging
    from cellcelly.runtime import tune_gc
    from cellcelly.settings import Settings
    from cellcelly.web import http_server

    settings = Settings()
    setup_logging(settings.log_level, settings.log_format)
    with contextlib.suppress(AttributeError, OSError):
        if (os.cpu_count() or 1) > 1:
            os.sched_setaffinity(0, {0})
    components = open_backends(settings)
    selfcare = mw.selfcare(settings, components.accounts, components.credentials, email=components.email)

    async def sign_up() -> None:
        for i in range(SUBSCRIBERS):
            await selfcare.register(
                "Ayşe", "Yılmaz", _msisdn(i), "b@example.com", PASSWORD, "anahtar", "ANKARA"
            )

    asyncio.run(sign_up())
    tune_gc()
    token = settings.admin_token
    web = mw.build(settings, selfcare, admin_token=token.get_secret_value() if token else None)
    http_server(web.app, "127.0.0.1", port, loop="uvloop").run()


def _request(method: str, path: str, body: bytes = b"", token: str = "") -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    if token:
        head += f"Authorization: Bearer {token}\r\n"
    if body:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return (head + "\r\n").encode() + body


def _raw_argon2(seconds: float, threads: int = 1) -> dict[str, Any]:
    """argon2id verifies at the MW's cost, in `threads` threads (argon2-cffi releases the GIL)."""
    from argon2 import PasswordHasher

    from cellcelly.settings import Settings

    s = Settings()
    hasher = PasswordHasher(s.mw_argon2_time_cost, s.mw_argon2_memory_kib, s.mw_argon2_parallelism)
    stored = hasher.hash(PASSWORD)
    latencies: list[int] = []
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def work() -> None:
        mine = []
        while time.perf_counter() < deadline:
            t0 = time.perf_counter_ns()
            hasher.verify(stored, PASSWORD)
            mine.append(time.perf_counter_ns() - t0)
        with lock:
            latencies.extend(mine)

    start = time.perf_counter()
    pool = [threading.Thread(target=work) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return summarise(
        f"raw argon2id verify in process, {threads} threads ({cost_text()})",
        len(latencies),
        time.perf_counter() - start,
        latencies,
    )


def cost_text() -> str:
    from cellcelly.settings import Settings

    s = Settings()
    memory = s.mw_argon2_memory_kib // 1024
    return f"argon2id t={s.mw_argon2_time_cost} m={memory} MiB p={s.mw_argon2_parallelism}"


def bench_selfcare(seconds: float = 10.0) -> list[dict[str, Any]]:
    import uvloop

    with tempfile.TemporaryDirectory(prefix="cellcelly-bench-mw-") as tmp:
        port = free_port()
        env = {
            **os.environ,
            "CELLCELLY_DATA_DIR": str(Path(tmp) / "data"),
            "CELLCELLY_LOG_LEVEL": "WARNING",
            "CELLCELLY_MW_TOKEN_SECRET": "b" * 48,
        }
        server = subprocess.Popen(
            [sys.executable, "-m", "cellcelly_dev.bench_selfcare", "--serve", str(port)],
            env=with_tools_path(env),
        )
        allowed = os.sched_getaffinity(0)
        try:
            _wait(port, server)
            with contextlib.suppress(AttributeError, OSError):
                if (os.cpu_count() or 1) > 1:
                    os.sched_setaffinity(0, {1})

            def login(i: int) -> bytes:
                body = orjson.dumps({"msisdn": _msisdn(i % SUBSCRIBERS), "password": PASSWORD})
                return _request("POST", "/api/v1/auth/login", body)

            sessions: list[bytes] = []
            rows = []
            healthz = _request("GET", "/healthz")
            uvloop.run(drive(port, 1.0, CONNECTIONS, lambda i: [healthz]))  # warm-up
            ops, errors, lat, secs = uvloop.run(drive(port, seconds, CONNECTIONS, lambda i: [healthz]))
            rows.append(
                summarise("HTTP baseline: MW GET /healthz (same server, no work)", ops, secs, lat, errors)
            )
            # logins: as many connections as the server verifies at once, so latency is the hash's
            ops, errors, lat, secs = uvloop.run(drive(port, seconds, 4, lambda i: [login(i)], sessions))
            login_row = summarise(f"logins over HTTP ({cost_text()})", ops, secs, lat, errors)
            tokens = [orjson.loads(b)["accessToken"] for b in sessions[:SUBSCRIBERS]]
            balance = [_request("GET", "/api/v1/me/balance", token=t) for t in tokens]
            ops, errors, lat, secs = uvloop.run(
                drive(port, seconds, CONNECTIONS, lambda i: [balance[i % len(balance)]])
            )
            rows.append(
                summarise("balance queries over HTTP (GET /api/v1/me/balance)", ops, secs, lat, errors)
            )
            raw = _raw_argon2(seconds)  # still on core 1: one core, as the server has
            rows += [raw, login_row]
        finally:
            with contextlib.suppress(OSError):
                os.sched_setaffinity(0, allowed)
            server.terminate()
            server.wait(10)
    for row, base in ((rows[1], rows[0]), (rows[3], rows[2])):
        row["baseline_ops_per_s"] = base["ops_per_s"]
        row["ratio_to_baseline"] = (
            round(row["ops_per_s"] / base["ops_per_s"], 3) if base["ops_per_s"] else 0.0
        )
    return rows


def _wait(port: int, server: subprocess.Popen[bytes]) -> None:
    import socket

    deadline = time.time() + 120
    while time.time() < deadline:
        if server.poll() is not None:
            raise RuntimeError("the MW benchmark server exited")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.1)
    raise RuntimeError("the MW benchmark server did not start")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--serve":
        serve(int(sys.argv[2]))
