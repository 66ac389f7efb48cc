"""The embedded stack in one process: what `make run` starts, and what end-to-end tests drive.

OCS (HTTP API and the internal wire transport) and DGW share one event loop; the DGW charges
through the OCS in process. Account changes reach the DGW directly: a top-up or a package
re-authorises the subscriber's cut-off sessions (RAR), a suspension aborts them (ASR).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import uvicorn

from cellcelly.application.relay import OutboxRelay
from cellcelly.dgw.gateway import Gateway
from cellcelly.dgw.ocs_client import LocalOcs
from cellcelly.dgw.server import DgwServer
from cellcelly.diameter.peer import LocalPeer
from cellcelly.notifier.channels import EmailChannel
from cellcelly.notifier.service import Notifier, SentLog
from cellcelly.ocs.app import asgi_app
from cellcelly.ocs.wire import serve_wire
from cellcelly.ports.cache import SubscriberCache, SubscriberInfo
from cellcelly.ports.event_bus import EventBus
from cellcelly.settings import Settings
from cellcelly.sf.sync import SyncFunction
from cellcelly.wiring import Components, build_bus, build_cache

log = logging.getLogger(__name__)


def dgw_peer(settings: Settings) -> LocalPeer:
    return LocalPeer(
        settings.dgw_origin_host,
        settings.diameter_realm,
        host_ip=settings.dgw_host if settings.dgw_host[0].isdigit() else "127.0.0.1",
        watchdog_interval=settings.dgw_watchdog_seconds,
    )


@dataclass
class EmbeddedStack:
    components: Components
    ocs_port: int = 0
    wire_port: int = 0
    dgw_port: int = 0
    gateway: Gateway | None = None
    dgw: DgwServer | None = None
    _servers: list[asyncio.Server] = field(default_factory=list)
    _uvicorn: uvicorn.Server | None = None
    _uvicorn_task: asyncio.Task[None] | None = None
    _background: set[asyncio.Future[list[tuple[str, int | None]]]] = field(default_factory=set)
    bus: EventBus | None = None
    cache: SubscriberCache | None = None
    notifier: Notifier | None = None
    relay: OutboxRelay | None = None
    sf: SyncFunction | None = None
    _workers: list[asyncio.Task[None]] = field(default_factory=list)

    async def start(self) -> None:
        settings = self.components.settings
        store = self.components.store

        def lookup(msisdn: str) -> SubscriberInfo | None:
            account = store.get(msisdn)
            return None if account is None else SubscriberInfo(msisdn, account.status.value)

        # events: outbox -> bus (relay) -> system of record (SF)
        self.bus = build_bus(settings)
        self.relay = OutboxRelay(store, self.bus)
        self.sf = SyncFunction(self.bus, self.components.records, group=settings.sf_group)
        self._workers += [asyncio.ensure_future(self.relay.run()), asyncio.ensure_future(self.sf.run())]
        if settings.smtp_host:
            channel = EmailChannel(settings.smtp_host, settings.smtp_port, settings.smtp_sender)
            self.notifier = Notifier(
                self.bus,
                self.components.records,
                channel,
                SentLog(settings.data_dir / "notifier" / "sent.log"),
            )
            self._workers.append(asyncio.ensure_future(self.notifier.run()))

        cache = self.cache = build_cache(settings, lookup)
        local = dgw_peer(settings)
        self.gateway = Gateway(local, LocalOcs(self.components.charging), cache)
        self.dgw = DgwServer(self.gateway, local)
        self.dgw_port = await self.dgw.start(settings.dgw_host, settings.dgw_port)
        wire = await serve_wire(self.components.charging, settings.ocs_host, settings.ocs_wire_port)
        self._servers.append(wire)
        self.wire_port = int(wire.sockets[0].getsockname()[1])
        self.components.accounts.listeners.append(self._on_account_change(cache))

        config = uvicorn.Config(
            asgi_app(self.components, close_on_shutdown=False),
            host=settings.ocs_host,
            port=settings.ocs_port,
            log_level="warning",
            access_log=False,
            lifespan="on",
            http="httptools",
        )
        self._uvicorn = uvicorn.Server(config)
        self._uvicorn_task = asyncio.ensure_future(self._uvicorn.serve())
        while not self._uvicorn.started:
            if self._uvicorn_task.done():
                self._uvicorn_task.result()  # raises what stopped it (e.g. the port is taken)
            await asyncio.sleep(0.01)
        self.ocs_port = int(self._uvicorn.servers[0].sockets[0].getsockname()[1])

    def _on_account_change(self, cache: SubscriberCache) -> Callable[[str, str], None]:
        gateway = self.gateway
        assert gateway is not None

        def changed(kind: str, msisdn: str) -> None:
            cache.invalidate(msisdn)
            task: asyncio.Future[list[tuple[str, int | None]]] | None = None
            if kind in ("topup", "package"):
                task = asyncio.ensure_future(gateway.reauthorize(msisdn))
            elif kind == "suspended":
                task = asyncio.ensure_future(gateway.abort(msisdn))
            if task is not None:
                self._background.add(task)
                task.add_done_callback(self._background.discard)

        return changed

    def request_stop(self) -> None:
        """Ask the stack to wind down (signal handlers call this)."""
        if self._uvicorn is not None:
            self._uvicorn.should_exit = True

    async def serve_forever(self) -> None:
        assert self._uvicorn_task is not None
        await self._uvicorn_task

    async def stop(self) -> None:
        if self.dgw is not None:
            await self.dgw.stop()
        for server in self._servers:
            server.close()
            await server.wait_closed()
        if self._uvicorn is not None:
            self._uvicorn.should_exit = True
        if self._uvicorn_task is not None:
            await self._uvicorn_task
        for task in list(self._background):
            task.cancel()
        if self.notifier is not None:
            self.notifier.stop()
        if self.relay is not None and self.sf is not None:
            self.relay.stop()
            self.sf.stop()
            await asyncio.gather(*self._workers, return_exceptions=True)
            await self.sf.close()
        if self.notifier is not None:
            await self.notifier.close()
        if self.bus is not None:
            await self.bus.close()
        close = getattr(self.cache, "close", None)  # Hazelcast holds a client; the embedded one nothing
        if close is not None:
            close()
