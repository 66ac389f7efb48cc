"""The OCS: its HTTP API, the wire transport gateways charge through, and the outbox relay (the
outbox lives in the OCS's balance store, so the relay runs beside it)."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Sequence
from typing import Any

from prometheus_client.registry import Collector

from cellcelly.application.relay import BUSY, OutboxRelay
from cellcelly.deploy.backends import Backends, shared_api_key
from cellcelly.deploy.service import Alone, Group, HttpService, Lifecycle, Service, Worker
from cellcelly.loop_lag import LoopLag
from cellcelly.ocs.app import asgi_app, create_app
from cellcelly.ocs.wire import serve_wire, serve_wire_unix
from cellcelly.settings import Settings


def ocs_app(
    settings: Settings, backends: Backends, *, collectors: Sequence[Collector] = (), fast_path: bool = True
) -> Any:
    """The OCS's ASGI app over the backends (`fast_path=False`: the FastAPI routes alone)."""
    token, key = settings.admin_token, settings.ocs_api_key
    app = create_app(
        backends.charging,
        backends.accounts,
        backends.catalogue,
        backends.store,
        backends.records,
        admin_token=token.get_secret_value() if token else None,
        api_key=key.get_secret_value() if key else None,
        collectors=collectors,
    )
    return asgi_app(app) if fast_path else app


class Ocs(Group):
    def __init__(
        self,
        settings: Settings,
        backends: Backends,
        collectors: Sequence[Collector],
        relay_busy: float | None,
    ) -> None:
        key = settings.ocs_api_key  # None: the wire refuses every gateway
        self.relay = OutboxRelay(backends.store, backends.bus, busy=relay_busy)
        app = ocs_app(settings, backends, collectors=collectors)
        # on its /metrics: how late the loop that charges runs (in `make run`, everything's loop)
        self.loop_lag = LoopLag(app.state.metrics.registry)
        self.http = HttpService("ocs http", app, settings.ocs_host, settings.ocs_port)
        self.wire_port = 0
        wire: list[asyncio.Server] = []

        async def open_wire() -> None:
            secret = key.get_secret_value() if key else None
            server = await serve_wire(
                backends.charging, settings.ocs_host, settings.ocs_wire_port, api_key=secret
            )
            wire.append(server)
            self.wire_port = int(server.sockets[0].getsockname()[1])
            if settings.ocs_wire_socket:
                wire.append(
                    await serve_wire_unix(backends.charging, settings.ocs_wire_socket, api_key=secret)
                )

        async def close_wire() -> None:
            for server in wire:
                server.close()
                await server.wait_closed()
            wire.clear()
            if settings.ocs_wire_socket:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(settings.ocs_wire_socket)

        parts: list[Service] = [
            Worker("outbox relay", self.relay.run, self.relay.stop),
            Worker("event loop lag", self.loop_lag.run, self.loop_lag.stop),
            Lifecycle("ocs wire", open_wire, close_wire),
            self.http,
        ]
        super().__init__("ocs", parts)

    @property
    def port(self) -> int:
        return self.http.port


def build(
    settings: Settings,
    backends: Backends,
    *,
    collectors: Sequence[Collector] = (),
    relay_busy: float | None = BUSY,
) -> Ocs:
    """`collectors` join its /metrics and /readyz (the embedded stack's SF in the same process, or
    `make run`'s children); `relay_busy`: see `relay.BUSY` (None: the relay waits `idle` after
    every batch)."""
    return Ocs(settings, backends, collectors, relay_busy)


def alone(settings: Settings, backends: Backends) -> Alone:
    """`cellcelly ocs`: gateways reach its wire with the shared key, so it needs one."""
    shared_api_key(settings)
    service = build(settings, backends)
    host = settings.ocs_host
    return Alone(
        service,
        lambda: (
            f"OCS on http://{host}:{service.port}, wire {host}:{service.wire_port}"
            + (f" and {settings.ocs_wire_socket}" if settings.ocs_wire_socket else "")
            + ", "
            f"relaying the outbox to the {settings.event_bus} event bus"
        ),
    )
