"""The embedded stack in one process: what `make run` starts, and what end-to-end tests drive.

OCS (HTTP API and the internal wire transport) and DGW share one event loop; the DGW charges
through the OCS in process. Account changes reach the DGW directly: a top-up or a package
re-authorises the subscriber's cut-off sessions (RAR), a suspension aborts them (ASR).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import uvicorn

from cellcelly.adapters.sql import SqlNoticeLedger
from cellcelly.application.relay import OutboxRelay
from cellcelly.application.selfcare import SelfCare, StoreBalanceLookup
from cellcelly.catalogue_store import CatalogueHolder
from cellcelly.dgw.gateway import Gateway
from cellcelly.dgw.ocs_client import LocalOcs
from cellcelly.dgw.server import DgwServer
from cellcelly.diameter.peer import LocalPeer
from cellcelly.ivr.prompt import PromptAudio, tools_missing
from cellcelly.ivr.service import IvrService
from cellcelly.mw.service import build_app, build_selfcare
from cellcelly.notifier.channels import Channel, EmailChannel
from cellcelly.notifier.service import Notifier
from cellcelly.ocs.app import asgi_app
from cellcelly.ocs.wire import serve_wire
from cellcelly.ports.cache import SubscriberCache, SubscriberInfo
from cellcelly.ports.event_bus import EventBus
from cellcelly.settings import Settings
from cellcelly.sf.metrics import SfCollector
from cellcelly.sf.sync import SyncFunction
from cellcelly.sms.gateway import SmsGateway
from cellcelly.web import http_server
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
    mw_port: int = 0
    ivr_port: int = 0
    _http: list[tuple[uvicorn.Server, asyncio.Future[None]]] = field(default_factory=list)
    _background: set[asyncio.Future[list[tuple[str, int | None]]]] = field(default_factory=set)
    bus: EventBus | None = None
    cache: SubscriberCache | None = None
    notifier: Notifier | None = None
    relay: OutboxRelay | None = None
    sf: SyncFunction | None = None
    sms: SmsGateway | None = None
    ivr: IvrService | None = None
    selfcare: SelfCare | None = None
    _workers: list[asyncio.Task[None]] = field(default_factory=list)

    async def start(self, before_serving: Callable[[EmbeddedStack], Awaitable[None]] | None = None) -> None:
        settings = self.components.settings
        store = self.components.store

        def lookup(msisdn: str) -> SubscriberInfo | None:
            account = store.get(msisdn)
            return None if account is None else SubscriberInfo(msisdn, account.status.value)

        balances = StoreBalanceLookup(store)
        if settings.smsc_host:  # binds in the background and keeps retrying
            self.sms = sms_gateway(settings, balances, self.components.catalogue)
            await self.sms.start()

        # events: outbox -> bus (relay) -> system of record (SF); notices to the subscriber
        self.bus = build_bus(settings)
        self.relay = OutboxRelay(store, self.bus)
        self.sf = SyncFunction(
            self.bus, self.components.records, group=settings.sf_group, stall_after=settings.sf_stall_seconds
        )
        self._workers += [asyncio.ensure_future(self.relay.run()), asyncio.ensure_future(self.sf.run())]
        channel: Channel | None = self.sms.channel if self.sms is not None else None
        if channel is None and settings.smtp_host:
            channel = EmailChannel(settings.smtp_host, settings.smtp_port, settings.smtp_sender)
        if channel is not None:
            self.notifier = Notifier(
                self.bus,
                self.components.records,
                channel,
                SqlNoticeLedger.beside(self.components.records),
                package_name=package_namer(self.components.catalogue),
            )
            self._workers.append(asyncio.ensure_future(self.notifier.run()))

        cache = self.cache = build_cache(settings, lookup)
        local = dgw_peer(settings)
        self.gateway = Gateway(local, LocalOcs(self.components.charging), cache)
        self.dgw = DgwServer.from_settings(settings, self.gateway, local)
        self.dgw_port = await self.dgw.start(settings.dgw_host, settings.dgw_port)
        key = settings.ocs_api_key  # None: the wire refuses every gateway (`make run` always sets one)
        wire = await serve_wire(
            self.components.charging,
            settings.ocs_host,
            settings.ocs_wire_port,
            api_key=key.get_secret_value() if key else None,
        )
        self._servers.append(wire)
        self.wire_port = int(wire.sockets[0].getsockname()[1])
        self.components.accounts.listeners.append(self._on_account_change(cache))

        self.selfcare = build_selfcare(
            self.components, send_sms=self.sms.channel.send_sms if self.sms is not None else None
        )
        if before_serving is not None:  # e.g. seeding: done before any HTTP client can be told "ready"
            await before_serving(self)
        # the SF runs in this process: its lag and counts are on the OCS's /metrics
        ocs = asgi_app(self.components, close_on_shutdown=False, collectors=[SfCollector(self.sf)])
        self.ocs_port = await self._serve_http(ocs, settings.ocs_host, settings.ocs_port)
        prompt = None
        if settings.ivr_port >= 0 and not tools_missing():
            audio = PromptAudio(settings.ivr_voice, settings.ivr_speed)
            prompt = audio.wav  # the web's WAV is what callers hear (and shares their phrase cache)
            self.ivr = IvrService(
                settings.ivr_host,
                settings.ivr_port,
                balances,
                number=settings.ivr_number,
                audio=audio,
                advertise_host=settings.ivr_advertise_host or None,
                trusted_peers=settings.ivr_trusted_peers,
            )
            await self.ivr.start()
            self.ivr_port = self.ivr.port
        elif settings.ivr_port >= 0:
            log.warning(
                "IVR off: %s not installed (apt-get install espeak-ng sox)", " and ".join(tools_missing())
            )
        self.mw_port = await self._serve_http(
            build_app(self.components, self.selfcare, prompt), settings.mw_host, settings.mw_port
        )

    async def _serve_http(self, app: Any, host: str, port: int) -> int:
        """Run an ASGI app under uvicorn on this loop; the port it listens on."""
        server = http_server(app, host, port, lifespan="on")
        task = asyncio.ensure_future(server.serve())
        while not server.started:
            if task.done():
                task.result()  # raises what stopped it (e.g. the port is taken)
            await asyncio.sleep(0.01)
        self._http.append((server, task))
        return int(server.servers[0].sockets[0].getsockname()[1])

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
        for server, _ in self._http:
            server.should_exit = True

    async def serve_forever(self) -> None:
        """Until a stop is asked for, or one of the HTTP servers ends (then the stack ends)."""
        await asyncio.wait([task for _, task in self._http], return_when=asyncio.FIRST_COMPLETED)

    async def stop(self) -> None:
        if self.dgw is not None:
            await self.dgw.stop()
        if self.ivr is not None:
            await self.ivr.stop()
        for server in self._servers:
            server.close()
            await server.wait_closed()
        self.request_stop()
        for _, serving in self._http:
            await serving
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
        if self.sms is not None:
            await self.sms.stop()
        if self.bus is not None:
            await self.bus.close()
        close = getattr(self.cache, "close", None)  # Hazelcast holds a client; the embedded one nothing
        if close is not None:
            close()


def package_namer(catalogue: CatalogueHolder) -> Callable[[str], str]:
    """A package's name as subscribers know it ("Diyarbakır"), from its code."""

    def package_name(code: str) -> str:
        package = catalogue.current.packages.get(code)
        return package.name if package else code

    return package_name


def sms_gateway(settings: Settings, lookup: StoreBalanceLookup, catalogue: CatalogueHolder) -> SmsGateway:
    return SmsGateway(
        settings.smsc_host,
        settings.smsc_port,
        settings.smsc_system_id,
        settings.smsc_password.get_secret_value(),
        lookup,
        package_name=package_namer(catalogue),
        short_code=settings.sms_short_code,
        notice_sender=settings.sms_sender,
        system_type=settings.smsc_system_type,
        enquire_link_interval=settings.smsc_enquire_link_seconds,
    )
